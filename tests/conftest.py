"""Shared fixtures: a tiny exported artifact (seeded random weights) that the runtime accepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgat.model.labels import NUM_CLASSES


def make_checkpoint(directory, seed: int = 0, **config):
    """A seeded random frontend file + MMGAT checkpoint in `directory`; returns the checkpoint."""
    from mmgat.model.checkpoint import save_checkpoint
    from mmgat.model.frontend import Frontend, save_frontend, seeded_init
    from mmgat.model.mmgat import MMGAT, MMGATConfig

    frontend = seeded_init(Frontend(), seed).eval()
    frontend_file = directory / "frontend-test.pt"
    fingerprint = save_frontend(frontend, frontend_file, {"seed": seed})
    torch.manual_seed(seed)
    model_config = MMGATConfig(**config)
    text = torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (NUM_CLASSES, model_config.text_dim)).astype(np.float32))
    model = MMGAT(model_config, text if model_config.label_embeddings else None).eval()
    return save_checkpoint(
        directory / "ckpt", model, thresholds=[0.5] * NUM_CLASSES, group_thresholds=[0.5] * 3,
        second_thresholds=[0.5] * NUM_CLASSES,
        text_encoder="random-test", window=10, hop=1.0, training={"clips": 0, "note": "test"},
        frontend={"name": frontend.name, "fingerprint": fingerprint, "file": str(frontend_file)},
        metrics={})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint, tmp_path_factory):
    """Path of an exported artifact with its frontend beside it."""
    from mmgat.export.onnx import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("artifact") / "tiny.onnx")

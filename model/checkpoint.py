"""MMGAT checkpoints: one torch file holding the weights and everything needed to rebuild,
threshold and describe the model (written by the trainer, read by eval and the exporter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmgat.model.frontend import Frontend, save_frontend, seeded_init
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS
from mmgat.model.mmgat import MMGAT, MMGATConfig

CHECKPOINT_FILE = "model.pt"


def save_checkpoint(path, model: MMGAT, **fields) -> Path:
    """fields: thresholds, group_thresholds, second_thresholds, text_encoder,
    frontend {name, fingerprint, file}, training (data summary), metrics, window, hop."""
    path = Path(path)
    if path.suffix != ".pt":
        path = path / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = model.labels.text if model.config.label_embeddings else None
    torch.save({"config": model.config.to_dict(), "text_embeddings": text,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                **fields}, path)
    return path


def load_checkpoint(path) -> tuple[MMGAT, dict]:
    """A checkpoint file or a directory holding `model.pt` -> (model in eval mode, its dict)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ValueError(f"{path} is not a readable MMGAT checkpoint") from None
    model = MMGAT(MMGATConfig.from_dict(checkpoint["config"]), checkpoint.get("text_embeddings"))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def random_checkpoint(directory, seed: int = 0, **config) -> Path:
    """A seeded random-weight frontend file (frontend-test.npz) and MMGAT checkpoint (ckpt/) in
    `directory`, of MMGATConfig(**config); returns the checkpoint. For tests and benchmarks: the
    shapes and costs of a trained model, none of its outputs."""
    directory = Path(directory)
    frontend = seeded_init(Frontend(), seed).eval()
    frontend_file = directory / "frontend-test.npz"
    fingerprint = save_frontend(frontend, frontend_file, {"seed": seed})
    torch.manual_seed(seed)  # MMGAT's own initialisation
    model_config = MMGATConfig(**config)
    text = torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (NUM_CLASSES, model_config.text_dim)).astype(np.float32))
    model = MMGAT(model_config, text if model_config.label_embeddings else None).eval()
    return save_checkpoint(
        directory / "ckpt", model, thresholds=[0.5] * NUM_CLASSES, group_thresholds=[0.5] * NUM_GROUPS,
        second_thresholds=[0.5] * NUM_CLASSES, text_encoder="random-test", window=10, hop=1.0,
        training={"clips": 0, "note": "test"},
        frontend={"name": frontend.name, "fingerprint": fingerprint, "file": str(frontend_file)},
        metrics={})

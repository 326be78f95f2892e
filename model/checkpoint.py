"""MMGAT checkpoints: one torch file holding the weights and everything needed to rebuild,
threshold and describe the model (written by the trainer, read by eval and the exporter)."""

from __future__ import annotations

from pathlib import Path

import torch

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

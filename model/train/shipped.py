"""The shipped default (model/assets) as a checkpoint that training can continue.

Only the artifact ships (`mmgat.onnx` + its frontend file), not the torch checkpoint it was
exported from, so the checkpoint is rebuilt from the ONNX weights. The exporter renames some
weights (a transposed Linear weight becomes `onnx::MatMul_582`, a slice of a parameter its own
constant), so the mapping is found, not written down: a model of the same configuration whose
every weight element holds its own index is exported, and each of its initializers then says
which elements of which weights it carries. The rebuilt model must agree with the artifact (the
exporter's parity check) or nothing is written. The label decoder (used only by the training
loss, not exported) stays at its seeded initialisation.

This module is the one place that reads the artifact format and calls the exporter for
training (`mmgat.export.onnx`: `export_model`, `verify`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from mmgat.model.checkpoint import save_checkpoint
from mmgat.model.frontend_file import ASSETS
from mmgat.model.mmgat import MMGAT, MMGATConfig

SHIPPED_MODEL = ASSETS / "mmgat.onnx"
FIRST_INDEX = 1_000_000  # element indices start far from every constant the graph holds
NOT_EXPORTED = ("labels.decoder.",)  # trained by Loss_label only


def read_artifact(path) -> tuple[dict, dict[str, np.ndarray]]:
    """-> (metadata, float initializers by name) of an exported artifact."""
    import onnx
    from onnx import numpy_helper

    from mmgat.export.artifact import METADATA_KEY

    proto = onnx.load(str(path))
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return metadata, {k: v for k, v in weights.items() if v.dtype.kind == "f"}


def config_of(metadata: dict, text_dim: int | None) -> MMGATConfig:
    """The configuration the artifact was trained with (its recorded fit options)."""
    options = metadata["training"].get("options", {})
    defaults = MMGATConfig()
    return MMGATConfig(
        input_dim=metadata.get("input_dim", defaults.input_dim),
        scales=(1,) if options.get("single_scale") else defaults.scales,
        label_embeddings=options.get("label_embeddings", True),
        auxiliary=options.get("auxiliary", True),
        second_readout=options.get("second_readout", False),
        similarity=metadata["similarity"], neighbours=metadata["neighbours"],
        heads=options.get("heads", defaults.heads), text_dim=text_dim or defaults.text_dim,
        extra={"input": "embedding"})


def indexed_copy(model: MMGAT) -> tuple[MMGAT, list[tuple[str, int]]]:
    """A copy of `model` whose weight elements hold FIRST_INDEX + their running index, and the
    (name, numel) of each weight in that order."""
    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    layout, start, indexed = [], FIRST_INDEX, {}
    for name, value in state.items():
        indexed[name] = torch.arange(start, start + value.numel(), dtype=torch.float32).view_as(value)
        layout.append((name, value.numel()))
        start += value.numel()
    if start >= 2 ** 24:  # float32 holds every integer below 2**24 exactly
        raise ValueError("the model has too many weights to index them in float32")
    copy = MMGAT(model.config, indexed.get("labels.text"))
    copy.load_state_dict(indexed, strict=False)
    return copy, layout


def load_onnx_weights(model: MMGAT, metadata: dict, weights: dict[str, np.ndarray]) -> None:
    """Copy an artifact's `weights` into `model` (same configuration), in place."""
    from mmgat.export.onnx import export_model

    copy, layout = indexed_copy(model)
    with tempfile.TemporaryDirectory() as scratch:
        _, indexed = read_artifact(export_model(copy, Path(scratch) / "indexed.onnx", metadata))
    flat = torch.cat([v.flatten() for v in (model.state_dict()[n] for n, _ in layout)]).numpy()
    found = np.zeros(len(flat), dtype=bool)
    for name, index in indexed.items():
        if name not in weights or weights[name].shape != index.shape:
            continue
        position = index.astype(np.float64).ravel() - FIRST_INDEX
        if not np.all((position >= 0) & (position < len(flat)) & (position == np.round(position))):
            continue  # a constant of the graph, not a weight
        position = position.astype(np.int64)
        flat[position] = weights[name].ravel()
        found[position] = True
    state, start = {}, 0
    for name, size in layout:
        if not found[start: start + size].all() and not name.startswith(NOT_EXPORTED):
            raise ValueError(f"{name} is not in the artifact (another model version?)")
        state[name] = torch.from_numpy(flat[start: start + size].copy()).view_as(
            model.state_dict()[name])
        start += size
    model.load_state_dict(state, strict=False)


def shipped_checkpoint(out, model_path=SHIPPED_MODEL, seed: int = 0) -> Path:
    """Rebuild the checkpoint of artifact `model_path` (default: the shipped one) into `out`
    (a .pt file or a directory); its frontend file is the one beside the artifact."""
    from mmgat.export.onnx import verify

    model_path = Path(model_path)
    metadata, weights = read_artifact(model_path)
    text = weights.get("model.labels.text")
    torch.manual_seed(seed)  # the decoder's initialisation
    model = MMGAT(config_of(metadata, None if text is None else text.shape[1]),
                  None if text is None else torch.from_numpy(text.copy()))
    load_onnx_weights(model, metadata, weights)
    frontend_file = model_path.parent / metadata["frontend_file"]
    path = save_checkpoint(
        out, model.eval(), **{k: metadata[k] for k in ("thresholds", "group_thresholds",
                                                        "second_thresholds", "window", "hop")},
        text_encoder=metadata["text_encoder"], training=metadata["training"],
        metrics=metadata.get("metrics", {}),
        frontend={"name": metadata["frontend_name"], "file": str(frontend_file),
                  "fingerprint": metadata["frontend_fingerprint"]})
    report = verify(model_path, path)
    if report["parity"] != "ok":
        path.unlink()
        raise ValueError(f"the checkpoint rebuilt from {model_path} does not reproduce it "
                         f"(max difference {max(report['parity_max_abs'].values()):.2g})")
    return path

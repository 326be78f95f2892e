"""Export an MMGAT checkpoint to ONNX (dynamic batch and node count) with its metadata, and
verify an artifact (hash, metadata, torch/ONNX Runtime parity)."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from mmgat.export.artifact import INPUTS, METADATA_KEY, OUTPUTS, check_metadata
from mmgat.export.runtime import MMGATSession
from mmgat.model.checkpoint import load_checkpoint
from mmgat.model.graph import build_graph
from mmgat.model.int8 import OPSET
from mmgat.model.labels import CLASSES, GROUPS
from mmgat.model.mmgat import MMGAT
from mmgat.model.scorer import Scorer
from mmgat.model.sidecar import sidecar, write_with_sidecar

PARITY_WINDOWS = (1, 2, 10, 37, 64)
PARITY_TOLERANCE = 1e-4


def example_inputs(model: MMGAT, n: int, batch: int = 1, seed: int = 0):
    """Random graphs of n nodes built the way the runtime builds them."""
    generator = torch.Generator().manual_seed(seed)
    nodes = torch.randn(batch, n, model.config.input_dim, generator=generator)
    node_mask = torch.ones(batch, n, dtype=torch.bool)
    weights, scale_masks = build_graph(nodes, node_mask, model.config.neighbours,
                                       model.config.similarity)
    return nodes, weights.float(), scale_masks, node_mask


def build_metadata(checkpoint: dict, model: MMGAT) -> dict:
    frontend = checkpoint["frontend"]
    return {
        "classes": list(CLASSES), "groups": list(GROUPS),
        "thresholds": [float(t) for t in checkpoint["thresholds"]],
        "group_thresholds": [float(t) for t in checkpoint["group_thresholds"]],
        "second_thresholds": [float(t) for t in checkpoint["second_thresholds"]],
        "window": int(checkpoint["window"]), "hop": float(checkpoint["hop"]),
        "neighbours": model.config.neighbours, "similarity": model.config.similarity,
        "input_dim": model.config.input_dim,
        "frontend_name": frontend["name"], "frontend_fingerprint": frontend["fingerprint"],
        "frontend_file": Path(frontend["file"]).name if frontend.get("file") else None,
        "text_encoder": checkpoint.get("text_encoder") or "none",
        "version": version("mmgat-live"), "training": checkpoint.get("training", {}),
        "metrics": checkpoint.get("metrics", {}),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_model(model: MMGAT, out_path, metadata: dict) -> Path:
    """Write `out_path` (ONNX, metadata inside) and `out_path.sha256`."""
    import onnx

    out_path = Path(out_path)
    check_metadata(metadata, out_path)
    scorer = Scorer(model.eval()).eval()  # the exporter follows the root module's mode
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {"nodes": {0: "batch", 1: "n"}, "weights": {0: "batch", 1: "n", 2: "n"},
               "scale_masks": {0: "batch", 2: "n", 3: "n"}, "node_mask": {0: "batch", 1: "n"},
               "probs": {0: "batch"}, "group_probs": {0: "batch"},
               "node_probs": {0: "batch", 1: "n"}}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(scorer, example_inputs(model, 10), str(out_path), dynamo=False,
                          input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes=dynamic, opset_version=OPSET)
    proto = onnx.load(str(out_path))
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata)})
    return write_with_sidecar(out_path, proto.SerializeToString())


def export_checkpoint(checkpoint_path, out_path) -> Path:
    """Checkpoint -> artifact; the frontend file the model was trained on is copied beside it."""
    model, checkpoint = load_checkpoint(checkpoint_path)
    out_path = Path(out_path)
    frontend_file = Path(checkpoint["frontend"].get("file") or "")
    if frontend_file.is_file() and frontend_file.parent.resolve() != out_path.parent.resolve():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        for source in (frontend_file, sidecar(frontend_file)):
            shutil.copyfile(source, out_path.parent / source.name)
    return export_model(model, out_path, build_metadata(checkpoint, model))


def parity(model: MMGAT, session: MMGATSession, windows=PARITY_WINDOWS) -> dict[int, float]:
    """Max |torch - ORT| over all three probability outputs, per window size."""
    scorer = Scorer(model.eval()).eval()
    differences = {}
    for n in windows:
        inputs = example_inputs(model, n, batch=2, seed=n)
        with torch.no_grad():
            expected = [t.numpy() for t in scorer(*inputs)]
        actual = session.score(*[t.numpy() for t in inputs])
        differences[n] = float(max(np.abs(actual[k] - e).max() for k, e in zip(OUTPUTS, expected)))
    return differences


def verify(model_path, checkpoint_path=None) -> dict:
    """Hash and metadata (by loading), plus parity against the checkpoint when given."""
    session = MMGATSession(model_path, cpu=True)
    report = {"model": str(session.path), "provider": session.provider, "hash": "ok",
              "metadata": "ok", "frontend": session.metadata["frontend_name"]}
    if checkpoint_path is not None:
        model, _ = load_checkpoint(checkpoint_path)
        differences = parity(model, session)
        report["parity_max_abs"] = differences
        report["parity"] = "ok" if max(differences.values()) <= PARITY_TOLERANCE else "FAILED"
    return report

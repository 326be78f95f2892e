"""The inference runtime of `mmgat-live`, `mmgat-tag` and evaluation: an exported MMGAT artifact
(export/artifact.py) scored with ONNX Runtime (CUDA EP -> CPU), paired with the frontend file
it names, which must lie beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmgat.export.artifact import (INPUTS, METADATA_KEY, OUTPUTS, ModelError, check_metadata,
                                   graph_settings, sha256_bytes)
from mmgat.model.frontend import ASSETS, Frontend, default_device, load_frontend, serving_precision

DEFAULT_MODEL = ASSETS / "mmgat.onnx"
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def choose_providers(cpu: bool, available: list[str]) -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU and the user did not ask for CPU."""
    return [CUDA, CPU] if CUDA in available and not cpu else [CPU]


class MMGATSession:
    """One ONNX Runtime session of an MMGAT artifact; `score` takes padded batches of graphs."""

    def __init__(self, path=None, cpu: bool = False, intra_op_threads: int = 1):
        import onnxruntime as ort

        from mmgat.model.int8 import session_options

        self.path = Path(path or DEFAULT_MODEL)
        if not self.path.is_file():
            raise ModelError(f"model not found: {self.path}")
        data = self.path.read_bytes()
        recorded = Path(f"{self.path}.sha256")
        if not recorded.is_file():
            raise ModelError(f"{self.path}: no recorded hash ({recorded.name} is missing)")
        if sha256_bytes(data) != recorded.read_text().split()[0]:
            raise ModelError(f"{self.path}: sha256 differs from {recorded.name} (corrupt or truncated)")
        try:
            self.session = ort.InferenceSession(
                data, session_options(intra_op_threads), providers=choose_providers(cpu, ort.get_available_providers()))
            metadata = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception:
            raise ModelError(f"{self.path}: not a valid MMGAT ONNX artifact") from None
        self.metadata = check_metadata(metadata, self.path)
        self.graph = graph_settings(self.metadata, self.path)  # Stream / InstanceGraph keywords
        self.provider = self.session.get_providers()[0]
        self.thresholds = np.asarray(self.metadata["thresholds"], dtype=np.float32)  # clip probs
        self.second_thresholds = np.asarray(self.metadata["second_thresholds"], dtype=np.float32)

    def score(self, nodes, weights, scale_masks, node_mask) -> dict:
        """nodes (B, N, D) f32, weights (B, N, N) f32, scale_masks (B, 3, N, N) bool,
        node_mask (B, N) bool -> probs (B, C), group_probs (B, G), node_probs (B, N, C)."""
        feeds = dict(zip(INPUTS, (np.asarray(nodes, np.float32), np.asarray(weights, np.float32),
                                  np.asarray(scale_masks, bool), np.asarray(node_mask, bool))))
        return dict(zip(OUTPUTS, self.session.run(OUTPUTS, feeds)))

    def check_frontend(self, frontend: Frontend) -> None:
        expected = self.metadata["frontend_fingerprint"]
        actual = frontend.recorded_fingerprint or frontend.fingerprint()
        if frontend.name != self.metadata["frontend_name"] or actual != expected:
            raise ModelError(
                f"{self.path.name} was trained on frontend {self.metadata['frontend_name']} "
                f"({expected}), not {frontend.name} ({actual})")


def frontend_path_for(session: MMGATSession) -> Path:
    name = session.metadata["frontend_file"]
    if not name:  # e.g. trained on OpenMIC's AudioSet-VGGish features
        raise ModelError(f"{session.path.name} names no frontend file (it was trained on "
                         f"{session.metadata['frontend_name']}); it cannot run live")
    beside = session.path.parent / name
    if not beside.is_file():  # mmgat-export copies it there; a model alone is not enough
        raise ModelError(f"{session.path.name} needs its frontend {name} beside it: "
                         f"{beside} not found")
    return beside


def load_runtime(model_path=None, cpu: bool = False, intra_op_threads: int = 1,
                 precision: str | None = None) -> tuple[MMGATSession, Frontend]:
    """The artifact and the frontend it names, on CUDA when present (unless cpu), in
    `precision` (default: the serving precision of the device)."""
    session = MMGATSession(model_path, cpu=cpu, intra_op_threads=intra_op_threads)
    device = default_device(cpu)
    frontend = load_frontend(frontend_path_for(session), device=device,
                             precision=precision or serving_precision(device),
                             threads=intra_op_threads)
    session.check_frontend(frontend)
    return session, frontend

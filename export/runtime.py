"""The artifact loader: an exported MMGAT artifact (export/artifact.py) scored with ONNX Runtime
(CUDA EP -> CPU), paired with the frontend file it names, which must lie beside it. Used by
`mmgat-live`, `mmgat-tag`, evaluation and `mmgat-export --verify`.

On the CPU the frontend runs in ONNX Runtime too (int8, model/int8.py): nothing here needs
torch unless the frontend runs in torch (CUDA, or fp32/bf16 asked for).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmgat.commands.install import GPU_EXTRAS, InstallError
from mmgat.export.artifact import INPUTS, METADATA_KEY, OUTPUTS, ModelError, check_metadata, graph_settings
from mmgat.model.frontend_file import ASSETS, check_device, frontend_device, serving_precision
from mmgat.model.sidecar import read_checked

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
        data = read_checked(self.path, ModelError, "model")
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

    def check_frontend(self, frontend) -> None:
        """`frontend` (model.frontend.Frontend or model.int8.OnnxFrontend) is the one the model
        was trained on, by name and fingerprint."""
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


def load_frontend_for(path, device: str, precision: str, threads: int):
    """The frontend file at `path` running where and how it was asked: int8 in ONNX Runtime
    (no torch), fp32 and bf16 in torch (InstallError when torch is not installed)."""
    check_device(precision, device)
    if precision == "int8":
        from mmgat.model.int8 import OnnxFrontend

        return OnnxFrontend.load(path, precision, threads)
    try:
        from mmgat.model.frontend import load_frontend
    except ImportError:
        raise InstallError(f"the {precision} frontend runs in torch, which is not installed: "
                           f"{GPU_EXTRAS} (or use the int8 frontend)") from None
    return load_frontend(path, device=device, precision=precision, threads=threads)


def load_runtime(model_path=None, cpu: bool = False, intra_op_threads: int = 1,
                 precision: str | None = None) -> tuple[MMGATSession, object]:
    """The artifact and the frontend it names, on CUDA when present (unless cpu), in
    `precision` (default: the serving precision of the device)."""
    session = MMGATSession(model_path, cpu=cpu, intra_op_threads=intra_op_threads)
    device = frontend_device(cpu)
    frontend = load_frontend_for(frontend_path_for(session), device,
                                 precision or serving_precision(device), intra_op_threads)
    session.check_frontend(frontend)
    return session, frontend

"""The frontend file: a frontend's name, weights and fingerprint, readable without torch.

A frontend file is a NumPy `.npz` archive (read with `allow_pickle=False`: arrays only, never
code) holding the network's state dict in fp16 under its torch keys and, under `__mmgat__`, a
JSON header: format, name, fingerprint and free-form meta (how it was trained). `NAME.sha256`
lies beside it. Both runtimes load the same file: torch builds the network from the arrays
(model/frontend.py), ONNX Runtime builds its int8 graph from them (model/int8.py).

The fingerprint hashes the weights as stored (fp16, in a fixed key order), so it is the same on
every machine: an artifact records the fingerprint its MMGAT was trained on, and the runtime
refuses any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmgat.model.sidecar import read_checked, write_with_sidecar

AUDIOSET = "vggish-audioset"
TRUNK = "vggish-trunk"
NAMES = (AUDIOSET, TRUNK)
FRONTEND_FORMAT = "mmgat-frontend/2"  # /1 was a torch pickle (read by model/frontend.py)
HEADER = "__mmgat__"
ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_FRONTEND = ASSETS / "frontend-vggish-trunk.npz"
# Of the network's arithmetic (the log-mel is always fp32); int8 runs in ONNX Runtime, CPU only;
# fp32 and bf16 run in torch (the `gpu` or `train` extra).
PRECISIONS = ("fp32", "bf16", "int8")


class FrontendError(ValueError):
    """A frontend file that cannot be used: wrong hash, wrong keys, truncated, or unsafe."""


@dataclass
class FrontendFile:
    """What a frontend file holds: `state` maps torch state-dict keys to fp16 arrays."""

    name: str
    fingerprint: str
    state: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)


def weights_fingerprint(name: str, state: dict) -> str:
    """sha256 (16 hex) of the name and the weights rounded to fp16, key by key in sorted order
    (key, shape, bytes): identical on every machine, unlike a hash of computed outputs.
    `state` holds numpy arrays (torch tensors go through `.numpy()` first)."""
    digest = hashlib.sha256(name.encode())
    for key in sorted(state):
        value = np.ascontiguousarray(np.asarray(state[key]), dtype=np.float16)
        digest.update(f"{key}{tuple(value.shape)}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def write_frontend(path, name: str, state: dict, meta: dict | None = None) -> str:
    """Write `state` (numpy arrays) as fp16 with its header, and `path.sha256` beside (`path`
    as given: no suffix is added); returns the fingerprint."""
    state = {key: np.asarray(value, dtype=np.float16) for key, value in state.items()}
    fingerprint = weights_fingerprint(name, state)
    header = {"format": FRONTEND_FORMAT, "name": name, "fingerprint": fingerprint,
              "meta": dict(meta or {})}
    buffer = io.BytesIO()
    np.savez(buffer, **{HEADER: np.array(json.dumps(header))}, **state)
    write_with_sidecar(path, buffer.getvalue())
    return fingerprint


def is_frontend_archive(data: bytes) -> bool:
    """True for our .npz format (a torch file is a zip archive too, without our header)."""
    try:
        return f"{HEADER}.npy" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        return False


def read_frontend(path=None) -> FrontendFile:
    """A frontend file (default: the shipped `vggish-trunk`), hash-checked, without torch."""
    path = Path(path or DEFAULT_FRONTEND)
    data = read_checked(path, FrontendError, "frontend file")
    if not is_frontend_archive(data):
        raise FrontendError(f"cannot load {path}: it is truncated or not an mmgat frontend file "
                            "(a torch .pt frontend of an older version loads where torch is installed)")
    return parse_frontend(data, path)


def parse_frontend(data: bytes, path) -> FrontendFile:
    """The FrontendFile in `data` (our .npz format, already hash-checked)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(str(archive[HEADER]))
            state = {key: archive[key] for key in archive.files if key != HEADER}
    except Exception:  # a damaged member, or one that would need pickle
        raise FrontendError(f"cannot load {path}: it is truncated or holds objects other than "
                            "arrays (refused)") from None
    if not isinstance(header, dict) or header.get("format") != FRONTEND_FORMAT:
        raise FrontendError(f"{path}: not an mmgat frontend file")
    if header.get("name") not in NAMES:
        raise FrontendError(f"{path}: unknown frontend {header.get('name')!r}; known: {', '.join(NAMES)}")
    return FrontendFile(header["name"], header["fingerprint"], state, header.get("meta", {}))


def check_names(source, state: dict, expected: dict) -> None:
    """FrontendError unless `state` has exactly `expected`'s keys, each of its shape
    (`expected` maps keys to shapes)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise FrontendError(f"{source}: wrong keys (missing: {missing[:4]}, unexpected: "
                            f"{unexpected[:4]})")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key]):
            raise FrontendError(f"{source}: {key} has shape {tuple(value.shape)}, "
                                f"expected {tuple(expected[key])}")


def frontend_device(cpu: bool = False) -> str:
    """Where the frontend runs: "cuda" when torch is installed and sees a GPU (and `cpu` was not
    asked for), else "cpu". Without torch this costs nothing; with it, torch's import."""
    if cpu:
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_type(device) -> str:
    """"cpu" / "cuda" of a device given as a string ("cuda:1") or a torch.device."""
    return getattr(device, "type", None) or str(device).split(":")[0]


def precisions_on(device) -> tuple[str, ...]:
    """The precisions a frontend runs in on `device`: int8 is ONNX Runtime's CPU kernels."""
    return PRECISIONS if device_type(device) == "cpu" else tuple(p for p in PRECISIONS if p != "int8")


def check_device(precision: str, device) -> None:
    if precision not in PRECISIONS:
        raise FrontendError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision not in precisions_on(device):
        raise FrontendError("the int8 frontend runs on the CPU only (use bf16 or fp32 on CUDA)")


def serving_precision(device) -> str:
    """What mmgat-live and mmgat-tag run by default: the fastest frontend whose whole-model F1
    stays within 0.01 of fp32 (benchmarks/RESULTS.md): int8 on the CPU, bf16 on CUDA."""
    return "int8" if device_type(device) == "cpu" else "bf16"

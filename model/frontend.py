"""VGGish frontends: 1 s frames of audio -> 128-d instances.

Two named frontends share torchvggish's convolutional trunk (state-dict keys `features.*`):
- `vggish-audioset`: the full AudioSet VGGish with its PCA/whitening + 8-bit quantisation
  post-processing; loads the release files `vggish-10086976.pth` and
  `vggish_pca_params-970ea276.pth` (sha256 prefix in the name, as torch hub names them).
- `vggish-trunk`: the same trunk with a light head (mean and max over time and frequency of
  each conv block's output -> 1,920 values -> linear -> 128), trained by `mmgat-train
  frontend` and shipped as fp16 with a sidecar `.sha256`.

A frontend's fingerprint hashes its weights (as the fp16 the file stores, in a fixed key
order), so it is the same on every machine: an artifact records the fingerprint its MMGAT was
trained on, and the runtime refuses any other.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvggish.torchvggish import VGG, make_layers

from mmgat.model.audio import EMBED_DIM, LogMel, load_audio, split_frames

AUDIOSET = "vggish-audioset"
TRUNK = "vggish-trunk"
FRONTEND_FORMAT = "mmgat-frontend/1"
# Of the network's arithmetic (the log-mel is always fp32); int8 runs in ONNX Runtime, CPU only.
PRECISIONS = ("fp32", "bf16", "int8")
ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_FRONTEND = ASSETS / "frontend-vggish-trunk.pt"
# int8 activation ranges come from the demo clip, which ships: with them the whole model scored
# F1 micro 0.816 on the first 400 test clips, against 0.817 with ranges from 512 training
# seconds and 0.819 in fp32.
INT8_CALIBRATION = ASSETS / "demo.flac"

# Indices in make_layers()' Sequential of the ReLU closing each conv block (before its pool).
BLOCK_OUTPUTS = (1, 4, 9, 14)
BLOCK_CHANNELS = (64, 128, 256, 512)
POOLED_DIM = 2 * sum(BLOCK_CHANNELS)  # mean and max per channel of every block: 1,920


class FrontendError(ValueError):
    """A frontend file that cannot be used: wrong hash, wrong keys, truncated, or unsafe."""


class VGGishTrunk(nn.Module):
    """VGGish conv trunk + pooled all-blocks head. Input (B, 1, 96, 64) log-mel examples."""

    def __init__(self):
        super().__init__()
        self.features = make_layers()
        self.head = nn.Sequential(nn.LayerNorm(POOLED_DIM), nn.Linear(POOLED_DIM, EMBED_DIM))

    def block_outputs(self, examples: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], examples
        for index, layer in enumerate(self.features[: BLOCK_OUTPUTS[-1] + 1]):
            x = layer(x)
            if index in BLOCK_OUTPUTS:
                outputs.append(x)
        return outputs

    def pooled(self, examples: torch.Tensor) -> torch.Tensor:
        """(B, POOLED_DIM): mean and max over time and frequency of every block's channels
        (adaptive pooling: the same values as mean/amax, and 1.2x faster training steps on
        channels-last tensors)."""
        return torch.cat([torch.cat([nn.functional.adaptive_avg_pool2d(b, 1).flatten(1),
                                     nn.functional.adaptive_max_pool2d(b, 1).flatten(1)], dim=1)
                          for b in self.block_outputs(examples)], dim=1)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(examples))


class PCAQuantize(nn.Module):
    """AudioSet's embedding post-processing: PCA/whitening, clip to [-2, 2], 8-bit quantisation."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pca_eigen_vectors", torch.eye(EMBED_DIM))
        self.register_buffer("pca_means", torch.zeros(EMBED_DIM))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        projected = (embeddings - self.pca_means) @ self.pca_eigen_vectors.T
        return torch.round((torch.clamp(projected, -2.0, 2.0) + 2.0) * (255.0 / 4.0))


class VGGishAudioSet(nn.Module):
    """The AudioSet VGGish (torchvggish's architecture) followed by its PCA post-processing."""

    def __init__(self):
        super().__init__()
        self.vgg = VGG(make_layers(), postprocess=False)  # postprocess=True would download
        self.postprocess = PCAQuantize()

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        return self.postprocess(self.vgg(examples))


NETWORKS = {AUDIOSET: VGGishAudioSet, TRUNK: VGGishTrunk}


class Frontend(nn.Module):
    """1 s waveform frames (B, FRAME_SAMPLES) -> (B, EMBED_DIM) instances."""

    def __init__(self, name: str = TRUNK, precision: str = "fp32", threads: int = 1):
        """`threads`: ONNX Runtime's, for int8 (the torch network follows torch's setting)."""
        super().__init__()
        if name not in NETWORKS:
            raise FrontendError(f"unknown frontend {name!r}; known: {', '.join(NETWORKS)}")
        if precision not in PRECISIONS:
            raise FrontendError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
        self.name, self.precision, self.threads = name, precision, threads
        self.int8_session = None  # built from the weights on the first int8 call (~1.5 s;
        # the runtime's warm-up makes that call before the first live frame)
        self.recorded_fingerprint: str | None = None  # as written in the file it was loaded from
        self.log_mel = LogMel()
        self.net = NETWORKS[name]()

    def examples(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, FRAME_SAMPLES) -> the network's (B, 1, 96, 64) log-mel input, channels last:
        batched convolutions run 1.4-1.7x faster on CPU (oneDNN; measured at batch 64, 1-2
        threads; batch 1 unchanged), same values to ~1e-5."""
        return self.log_mel.examples(frames).contiguous(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        examples = self.examples(frames)
        if self.precision == "int8":
            feeds = {"examples": examples.contiguous().numpy()}
            return torch.from_numpy(self.quantized().run(None, feeds)[0])
        with torch.autocast(examples.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            return self.net(examples).float()

    def quantized(self):
        """The network in int8 as its weights are now, built on first use."""
        if self.int8_session is None:
            check_device(self.precision, self.device)
            from mmgat.model.int8 import quantized_session

            with torch.inference_mode():
                calibration = self.examples(torch.from_numpy(split_frames(load_audio(INT8_CALIBRATION))))
            self.int8_session = quantized_session(self.net, calibration.contiguous().numpy(), self.threads)
        return self.int8_session

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.inference_mode()
    def embed(self, frames) -> np.ndarray:
        """Frames as numpy or torch, any device -> float32 numpy (B, EMBED_DIM)."""
        frames = torch.as_tensor(frames, dtype=torch.float32).to(self.device)
        return self(frames).float().cpu().numpy()

    def fingerprint(self) -> str:
        return weights_fingerprint(self.name, self.net.state_dict())


def weights_fingerprint(name: str, state: dict) -> str:
    """sha256 (16 hex) of the name and the weights rounded to fp16, key by key in sorted order
    (key, shape, bytes): identical on every machine, unlike a hash of computed outputs."""
    digest = hashlib.sha256(name.encode())
    for key in sorted(state):
        value = torch.as_tensor(state[key]).detach().cpu().half().contiguous()
        digest.update(f"{key}{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()[:16]


def seeded_init(module: nn.Module, seed: int = 0) -> nn.Module:
    """He-uniform weights, zero biases, from numpy's PCG64 (bit-identical on every platform and
    torch version, unlike torch's own RNG). For initialisation and tests only."""
    rng = np.random.Generator(np.random.PCG64(seed))
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim == 1:
                param.copy_(torch.ones_like(param) if "head.0" in name else torch.zeros_like(param))
                continue
            bound = np.sqrt(6.0 / (param[0].numel()))
            values = (rng.random(param.numel()) * 2.0 - 1.0) * bound
            param.copy_(torch.from_numpy(values.reshape(param.shape)))
    return module


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _safe_load(path: Path) -> dict:
    """torch.load with weights_only: tensors, numpy arrays and plain containers, never code."""
    numpy_globals = [np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType,
                     np._core.multiarray._reconstruct]
    try:
        with torch.serialization.safe_globals(numpy_globals):
            return torch.load(io.BytesIO(Path(path).read_bytes()), map_location="cpu",
                              weights_only=True)
    except FileNotFoundError:
        raise FrontendError(f"frontend file not found: {path}") from None
    except Exception as error:  # torch reports truncation and unsafe pickles as many types
        reason = "it holds objects other than weights (refused)" if "weights_only" in str(error) \
            else "it is truncated or not a torch file"
        raise FrontendError(f"cannot load {path}: {reason}") from None


def _load_state(net: nn.Module, state: dict, source: Path) -> None:
    state = {k: torch.as_tensor(v).float() for k, v in state.items()}
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise FrontendError(f"{source}: wrong keys (missing: {missing[:4]}, unexpected: "
                            f"{unexpected[:4]})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise FrontendError(f"{source}: {key} has shape {tuple(value.shape)}, "
                                f"expected {tuple(expected[key].shape)}")
    net.load_state_dict(state)


def _check_release_hash(path: Path) -> None:
    match = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
    if not match:
        raise FrontendError(f"{path.name}: an AudioSet release file name ends in -<sha256 prefix>.pth")
    if not sha256_file(path).startswith(match.group(1)):
        raise FrontendError(f"{path}: sha256 does not match the {match.group(1)} in its name "
                            "(corrupt or truncated download?)")


def load_audioset(vggish_path, pca_path, device=None) -> Frontend:
    """The AudioSet VGGish from torchvggish's release files (which the user brings)."""
    vggish_path, pca_path = Path(vggish_path), Path(pca_path)
    for path in (vggish_path, pca_path):
        if not path.is_file():
            raise FrontendError(f"AudioSet VGGish file not found: {path}")
        _check_release_hash(path)
    frontend = Frontend(AUDIOSET)
    _load_state(frontend.net.vgg, _safe_load(vggish_path), vggish_path)
    pca = _safe_load(pca_path)
    _load_state(frontend.net.postprocess, {
        "pca_eigen_vectors": pca.get("pca_eigen_vectors"), "pca_means": pca.get("pca_means")}
        if {"pca_eigen_vectors", "pca_means"} <= set(pca) else pca, pca_path)
    frontend.recorded_fingerprint = frontend.fingerprint()
    return frontend.eval().to(device or "cpu")


def save_frontend(frontend: Frontend, path, meta: dict | None = None) -> str:
    """Write fp16 weights + name + fingerprint, and `path.sha256` beside; returns the fingerprint."""
    path = Path(path)
    state = {k: v.detach().cpu().half() for k, v in frontend.net.state_dict().items()}
    fingerprint = weights_fingerprint(frontend.name, state)
    buffer = io.BytesIO()
    torch.save({"format": FRONTEND_FORMAT, "name": frontend.name, "fingerprint": fingerprint,
                "meta": dict(meta or {}), "state_dict": state}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    Path(f"{path}.sha256").write_text(f"{hashlib.sha256(buffer.getvalue()).hexdigest()}  {path.name}\n")
    return fingerprint


def precisions_on(device) -> tuple[str, ...]:
    """The precisions a frontend runs in on `device`: int8 is ONNX Runtime's CPU kernels."""
    return PRECISIONS if torch.device(device).type == "cpu" else tuple(p for p in PRECISIONS if p != "int8")


def check_device(precision: str, device) -> None:
    if precision in PRECISIONS and precision not in precisions_on(device):
        raise FrontendError("the int8 frontend runs on the CPU only (use bf16 or fp32 on CUDA)")


def load_frontend(path=None, device=None, precision: str = "fp32", threads: int = 1) -> Frontend:
    """One of our frontend files (default: the shipped `vggish-trunk`), hash-checked."""
    path = Path(path or DEFAULT_FRONTEND)
    check_device(precision, device or "cpu")
    recorded = Path(f"{path}.sha256")
    if not path.is_file():
        raise FrontendError(f"frontend file not found: {path}")
    if not recorded.is_file():
        raise FrontendError(f"{path}: no recorded hash ({recorded.name} is missing)")
    if sha256_file(path) != recorded.read_text().split()[0]:
        raise FrontendError(f"{path}: sha256 differs from {recorded.name} (corrupt or truncated)")
    blob = _safe_load(path)
    if not isinstance(blob, dict) or blob.get("format") != FRONTEND_FORMAT:
        raise FrontendError(f"{path}: not an mmgat frontend file")
    frontend = Frontend(blob["name"], precision, threads)
    _load_state(frontend.net, blob["state_dict"], path)
    frontend.recorded_fingerprint = blob["fingerprint"]
    frontend.meta = blob.get("meta", {})
    return frontend.eval().to(device or "cpu")


def default_device(cpu: bool = False) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def native_bf16(device: torch.device) -> bool:
    """bf16 pays on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX); elsewhere it is
    emulated and slower than fp32."""
    return device.type == "cuda" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def serving_precision(device) -> str:
    """What mmgat-live and mmgat-tag run by default: the fastest frontend whose whole-model F1
    stays within 0.01 of fp32 (benchmarks/RESULTS.md): int8 on the CPU, bf16 on CUDA."""
    return "int8" if torch.device(device).type == "cpu" else "bf16"

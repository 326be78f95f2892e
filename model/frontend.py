"""VGGish frontends in torch: 1 s frames of audio -> 128-d instances, for training and the GPU.

Two named frontends share torchvggish's convolutional trunk (state-dict keys `features.*`):
- `vggish-audioset`: the full AudioSet VGGish with its PCA/whitening + 8-bit quantisation
  post-processing; loads the release files `vggish-10086976.pth` and
  `vggish_pca_params-970ea276.pth` (sha256 prefix in the name, as torch hub names them).
- `vggish-trunk`: the same trunk with a light head (mean and max over time and frequency of
  each conv block's output -> 1,920 values -> linear -> 128), trained by `mmgat-train
  frontend` and shipped as fp16 in a frontend file (model/frontend_file.py, no torch needed to
  read it). The CPU runtime runs the same file in ONNX Runtime (model/int8.py).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvggish.torchvggish import VGG, make_layers

from mmgat.commands.install import import_torchaudio
from mmgat.model.audio import (EMBED_DIM, EXAMPLE_FRAMES, FFT_SIZE, LOG_OFFSET, STFT_HOP_SAMPLES,
                               STFT_WINDOW_SAMPLES, mel_matrix)
from mmgat.model.frontend_file import (AUDIOSET, DEFAULT_FRONTEND, PRECISIONS, TRUNK, FrontendError,
                                       FrontendFile, check_device, check_names, frontend_device,
                                       is_frontend_archive, parse_frontend, weights_fingerprint,
                                       write_frontend)
from mmgat.model.int8 import POOLED_DIM, network_session
from mmgat.model.sidecar import read_checked, sha256_file

torchaudio = import_torchaudio()  # built for another torch: one clear line, not a traceback

# Indices in make_layers()' Sequential of the ReLU closing each conv block (before its pool).
BLOCK_OUTPUTS = (1, 4, 9, 14)
LEGACY_FORMAT = "mmgat-frontend/1"  # the torch pickle earlier versions wrote


class LogMel(nn.Module):
    """Waveforms (B, samples) at SAMPLE_RATE -> log-mel (B, frames, N_MELS): audio.log_mel in
    torch (for batches on the GPU and training)."""

    def __init__(self):
        super().__init__()
        # Periodic Hann (AudioSet's `periodic_hann`) is torch's default window. torch centres a
        # short window inside the FFT frame; padding both sides by the difference makes frame t
        # start at t * hop as AudioSet's framing does (zero-padded FFT, same magnitudes).
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=FFT_SIZE, win_length=STFT_WINDOW_SAMPLES, hop_length=STFT_HOP_SAMPLES,
            pad=(FFT_SIZE - STFT_WINDOW_SAMPLES) // 2, center=False, power=1.0)
        self.register_buffer("mel", torch.from_numpy(mel_matrix()).float(), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        magnitude = self.spectrogram(waveforms).transpose(-1, -2)  # (B, frames, bins)
        return torch.log(magnitude @ self.mel + LOG_OFFSET)

    def examples(self, frames: torch.Tensor) -> torch.Tensor:
        """1 s frames (B, FRAME_SAMPLES) -> VGGish examples (B, 1, EXAMPLE_FRAMES, N_MELS)."""
        return self(frames)[:, None, :EXAMPLE_FRAMES, :]


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


def numpy_state(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's state dict as float32 numpy arrays on the CPU."""
    return {key: value.detach().cpu().float().numpy() for key, value in net.state_dict().items()}


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
        self.int8_session = None  # built from the weights on the first int8 call (~1 s;
        # the runtime's warm-up makes that call before the first live frame)
        self.recorded_fingerprint: str | None = None  # as written in the file it was loaded from
        self.meta: dict = {}
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
        """The network in int8 (ONNX Runtime) as its weights are now, built on first use."""
        if self.int8_session is None:
            check_device(self.precision, self.device)
            self.int8_session = network_session(self.name, numpy_state(self.net), "int8", self.threads)
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
        return weights_fingerprint(self.name, numpy_state(self.net))


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


def _safe_load(data: bytes, path: Path) -> dict:
    """torch.load with weights_only: tensors, numpy arrays and plain containers, never code."""
    numpy_globals = [np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType,
                     np._core.multiarray._reconstruct]
    try:
        with torch.serialization.safe_globals(numpy_globals):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch reports truncation and unsafe pickles as many types
        reason = "it holds objects other than weights (refused)" if "weights_only" in str(error) \
            else "it is truncated or not a torch file"
        raise FrontendError(f"cannot load {path}: {reason}") from None


def _load_state(net: nn.Module, state: dict, source) -> None:
    state = {k: torch.as_tensor(v).float() for k, v in state.items()}
    check_names(source, state, {key: tuple(value.shape) for key, value in net.state_dict().items()})
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
    _load_state(frontend.net.vgg, _safe_load(vggish_path.read_bytes(), vggish_path), vggish_path)
    pca = _safe_load(pca_path.read_bytes(), pca_path)
    _load_state(frontend.net.postprocess, {
        "pca_eigen_vectors": pca.get("pca_eigen_vectors"), "pca_means": pca.get("pca_means")}
        if {"pca_eigen_vectors", "pca_means"} <= set(pca) else pca, pca_path)
    frontend.recorded_fingerprint = frontend.fingerprint()
    return frontend.eval().to(device or "cpu")


def save_frontend(frontend: Frontend, path, meta: dict | None = None) -> str:
    """Write a frontend file (fp16 weights, name, fingerprint, meta; model/frontend_file.py)
    and `path.sha256` beside; returns the fingerprint."""
    return write_frontend(path, frontend.name, numpy_state(frontend.net), meta)


def read_frontend_file(path) -> FrontendFile:
    """A frontend file, hash-checked: ours, or the torch pickle of earlier versions."""
    data = read_checked(path, FrontendError, "frontend file")
    if is_frontend_archive(data):
        return parse_frontend(data, path)
    blob = _safe_load(data, path)
    if not isinstance(blob, dict) or blob.get("format") != LEGACY_FORMAT:
        raise FrontendError(f"{path}: not an mmgat frontend file")
    return FrontendFile(blob["name"], blob["fingerprint"],
                        {k: torch.as_tensor(v).numpy() for k, v in blob["state_dict"].items()},
                        blob.get("meta", {}))


def load_frontend(path=None, device=None, precision: str = "fp32", threads: int = 1) -> Frontend:
    """One of our frontend files (default: the shipped `vggish-trunk`), hash-checked, as a torch
    module (which runs int8 in ONNX Runtime)."""
    path = Path(path or DEFAULT_FRONTEND)
    check_device(precision, device or "cpu")
    file = read_frontend_file(path)
    frontend = Frontend(file.name, precision, threads)
    _load_state(frontend.net, file.state, path)
    frontend.recorded_fingerprint, frontend.meta = file.fingerprint, file.meta
    return frontend.eval().to(device or "cpu")


def default_device(cpu: bool = False) -> torch.device:
    return torch.device(frontend_device(cpu))


def native_bf16(device: torch.device) -> bool:
    """bf16 pays on CUDA and on CPUs with native bf16 (AVX512-BF16 / AMX); elsewhere it is
    emulated and slower than fp32."""
    return device.type == "cuda" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())

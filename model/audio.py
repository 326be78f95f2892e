"""Audio constants (defined once, derived from each other), loading and the VGGish log-mel.

The log-mel follows the AudioSet VGGish release exactly (periodic Hann, magnitude STFT on a
power-of-two FFT, HTK mel triangles laid out in the mel domain, log(mel + 0.01)), so our
frontend can take the published VGGish weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mmgat.model.install import import_torchaudio

torchaudio = import_torchaudio()  # built for another torch: one clear line, not a traceback

SAMPLE_RATE = 16_000
FRAME_SECONDS = 1.0  # one instance (graph node) per second of audio
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_SECONDS)
STFT_WINDOW_SAMPLES = int(round(SAMPLE_RATE * 0.025))  # 25 ms
STFT_HOP_SAMPLES = int(round(SAMPLE_RATE * 0.010))  # 10 ms
FFT_SIZE = 2 ** int(math.ceil(math.log2(STFT_WINDOW_SAMPLES)))
N_MELS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames: one VGGish example
EMBED_DIM = 128


class AudioError(ValueError):
    """Audio a user handed us that cannot be used (unreadable, empty, too short)."""


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_matrix(dtype=torch.float64) -> torch.Tensor:
    """(FFT_SIZE // 2 + 1, N_MELS) weights, triangles linear in mel, DC bin zeroed (as AudioSet)."""
    n_bins = FFT_SIZE // 2 + 1
    bins_mel = _hz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, n_bins, dtype=torch.float64))
    edges = torch.linspace(
        float(_hz_to_mel(torch.tensor(MEL_MIN_HZ))), float(_hz_to_mel(torch.tensor(MEL_MAX_HZ))),
        N_MELS + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0
    return weights.to(dtype)


class LogMel(torch.nn.Module):
    """Waveforms (B, samples) at SAMPLE_RATE -> log-mel (B, frames, N_MELS)."""

    def __init__(self):
        super().__init__()
        # Periodic Hann (AudioSet's `periodic_hann`) is torch's default window. torch centres a
        # short window inside the FFT frame; padding both sides by the difference makes frame t
        # start at t * hop as AudioSet's framing does (zero-padded FFT, same magnitudes).
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=FFT_SIZE, win_length=STFT_WINDOW_SAMPLES, hop_length=STFT_HOP_SAMPLES,
            pad=(FFT_SIZE - STFT_WINDOW_SAMPLES) // 2, center=False, power=1.0)
        self.register_buffer("mel", mel_matrix(torch.float32), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        magnitude = self.spectrogram(waveforms).transpose(-1, -2)  # (B, frames, bins)
        return torch.log(magnitude @ self.mel + LOG_OFFSET)

    def examples(self, frames: torch.Tensor) -> torch.Tensor:
        """1 s frames (B, FRAME_SAMPLES) -> VGGish examples (B, 1, EXAMPLE_FRAMES, N_MELS)."""
        return self(frames)[:, None, :EXAMPLE_FRAMES, :]


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """(samples,) or (samples, channels) at any rate -> float32 mono at SAMPLE_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = torchaudio.functional.resample(
            torch.from_numpy(np.ascontiguousarray(samples)), rate, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(samples, dtype=np.float32)


def open_sound(path: str | Path):
    """A soundfile.SoundFile reading `path`; AudioError when it cannot be opened."""
    import soundfile

    if not str(path):  # Path("") is the current directory
        raise AudioError("the file name is empty")
    if not Path(path).exists():  # libsndfile would say only "System error."
        raise AudioError(f"no such file: {path}")
    if Path(path).is_dir():
        raise AudioError(f"{path} is a directory, not an audio file")
    try:
        return soundfile.SoundFile(str(path))
    except Exception as error:  # libsndfile reports unreadable and unknown formats alike
        raise AudioError(f"cannot read audio file {path}: {error}") from None


def load_audio(path: str | Path, min_samples: int = FRAME_SAMPLES) -> np.ndarray:
    """Any file soundfile reads -> float32 mono at SAMPLE_RATE; AudioError when unusable."""
    with open_sound(path) as sound:
        try:
            samples = sound.read(dtype="float32", always_2d=True)
        except Exception as error:  # a header that promised more than the data holds, ...
            raise AudioError(f"cannot read audio file {path}: {error}") from None
        rate = sound.samplerate
    samples = to_mono_16k(samples, rate)
    if len(samples) < min_samples:
        raise AudioError(
            f"{path} holds {len(samples) / SAMPLE_RATE:.2f} s of audio; "
            f"at least {min_samples / SAMPLE_RATE:.2f} s is needed")
    return samples


def split_frames(samples: np.ndarray) -> np.ndarray:
    """Whole 1 s frames, back to back: (n_frames, FRAME_SAMPLES); a trailing partial frame is dropped."""
    n = len(samples) // FRAME_SAMPLES
    return samples[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)

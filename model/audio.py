"""Audio constants (defined once, derived from each other), loading, resampling and the VGGish
log-mel, in numpy (the live runtime needs no torch; model/frontend.py has the torch twin).

The log-mel follows the AudioSet VGGish release exactly (periodic Hann, magnitude STFT on a
power-of-two FFT, HTK mel triangles laid out in the mel domain, log(mel + 0.01)), so our
frontend can take the published VGGish weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soxr

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


RESAMPLE_QUALITY = "HQ"  # soxr's 20-bit preset; the streaming resampler uses the same


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(FFT_SIZE // 2 + 1, N_MELS) float64 weights, triangles linear in mel, DC bin zeroed (as
    AudioSet)."""
    bins_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1))
    # The band edges in float32, as the torch frontend that made the training data computed
    # them: the shipped weights and every log-mel cache saw exactly this matrix.
    low, high = (float(np.float32(_hz_to_mel(hz))) for hz in (MEL_MIN_HZ, MEL_MAX_HZ))
    edges = np.linspace(low, high, N_MELS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(np.minimum(rising, falling), 0.0)
    weights[0] = 0.0
    return weights


def periodic_hann() -> np.ndarray:
    """AudioSet's `periodic_hann` (torch's default Hann window), STFT_WINDOW_SAMPLES long."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(STFT_WINDOW_SAMPLES) / STFT_WINDOW_SAMPLES)


_HANN = periodic_hann().astype(np.float32)
# The mel matrix by its nonzero weights, band after band (each band weights 1-17 of the 257 bins,
# 461 in all): sums over those replace a dense product, which ran through multithreaded BLAS at
# 13-25 ms a frame on a busy 2-core machine, against 0.1 ms here.
_BAND_BINS = [np.flatnonzero(column) for column in mel_matrix().T]
_MEL_BINS = np.concatenate(_BAND_BINS)
_MEL_WEIGHTS = mel_matrix()[_MEL_BINS, np.repeat(np.arange(N_MELS), [len(b) for b in _BAND_BINS])].astype(np.float32)
_MEL_STARTS = np.cumsum([0] + [len(b) for b in _BAND_BINS[:-1]])


def log_mel(waveforms: np.ndarray) -> np.ndarray:
    """Waveforms (B, samples) at SAMPLE_RATE -> float32 log-mel (B, frames, N_MELS). Frame t
    windows samples [t * hop, t * hop + window), zero-padded to FFT_SIZE, as AudioSet frames."""
    waveforms = np.asarray(waveforms, np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(waveforms, STFT_WINDOW_SAMPLES, axis=-1)
    magnitude = np.abs(np.fft.rfft(windows[..., ::STFT_HOP_SAMPLES, :] * _HANN, n=FFT_SIZE))
    mel = np.add.reduceat(magnitude[..., _MEL_BINS] * _MEL_WEIGHTS, _MEL_STARTS, axis=-1)
    return np.log(mel + np.float32(LOG_OFFSET))


def log_mel_examples(frames: np.ndarray) -> np.ndarray:
    """1 s frames (B, FRAME_SAMPLES) -> VGGish examples (B, 1, EXAMPLE_FRAMES, N_MELS) float32."""
    return np.ascontiguousarray(log_mel(frames)[:, None, :EXAMPLE_FRAMES, :])


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """(samples,) or (samples, channels) at any rate -> float32 mono at SAMPLE_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY)
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

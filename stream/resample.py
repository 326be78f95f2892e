"""Streaming conversion of native-rate, multi-channel blocks to 16 kHz mono, by libsoxr.

soxr's streaming resampler (`soxr.ResampleStream`) carries its filter state from block to block,
so the blocks' outputs, with its tail at the end of the stream, are exactly the whole-signal
resampling (`to_mono_16k`, soxr's one-shot call at the same quality): no clicks at block edges,
no drift. It holds some output back while its filter waits for input; the most it holds is
`backlog_of(rate)`, which a Stream keeps room for.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

from mmgat.model.audio import FRAME_SAMPLES, RESAMPLE_QUALITY, SAMPLE_RATE, AudioError

MAX_BACKLOG = FRAME_SAMPLES // 4  # held-back outputs; a Stream keeps more room than this at any hop
# The most soxr (HQ) held back, measured with blocks of 1-2500 samples at 1 kHz-768 kHz, plus
# a margin: about a thousand input samples when it upsamples (1,027 at most), 1,265 outputs when
# it downsamples.
HELD_INPUT, HELD_OUTPUT = 1100, 1400
MIN_RATE = math.ceil(HELD_INPUT * SAMPLE_RATE / MAX_BACKLOG)  # 4,400 Hz: lower would hold back more
MAX_RATE = 768_000  # the highest rate audio interfaces offer; beyond it the measurements stop
MAX_AMPLITUDE = 1e3  # 60 dB over full scale; louder finite samples are clipped, or sums overflow


def backlog_of(rate: int) -> int:
    """The most 16 kHz samples a StreamResampler at `rate` holds back (0 at 16 kHz)."""
    if rate == SAMPLE_RATE:
        return 0
    return max(HELD_OUTPUT, math.ceil(HELD_INPUT * SAMPLE_RATE / rate))


def check_rate(rate: int, what: str = "the input") -> int:
    """`rate` if StreamResampler can take it; AudioError for a rate below MIN_RATE (the
    resampler would hold back more than a stream buffers: a hang) or above MAX_RATE."""
    rate = int(rate)
    if rate < 1:
        raise AudioError(f"{what}: sample rate {rate} Hz is not a rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{what}: cannot resample {rate} Hz to {SAMPLE_RATE} Hz as a stream (it takes "
                         f"{MIN_RATE}-{MAX_RATE} Hz); convert it to a common rate first")
    return rate


class StreamResampler:
    """feed((frames, channels) float32 at `rate`) -> float32 mono at SAMPLE_RATE; flush() at the end.
    Non-finite samples become silence."""

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = check_rate(rate), int(channels)
        self.backlog = backlog_of(self.rate)
        self._soxr = None if self.rate == SAMPLE_RATE else \
            soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)

    def feed(self, block: np.ndarray) -> np.ndarray:
        # NaN and infinite samples (a broken file or device) carry no sound: silence, so that one
        # bad sample cannot turn a whole window of scores into NaN. Finite float samples can be
        # absurdly loud too (up to 3e38): clipped, or the downmix or the STFT overflows to inf.
        block = np.clip(np.nan_to_num(np.asarray(block, np.float32), nan=0.0, posinf=0.0, neginf=0.0),
                        -MAX_AMPLITUDE, MAX_AMPLITUDE)
        mono = np.ascontiguousarray(block.mean(axis=1) if block.ndim == 2 else block, np.float32)
        if self._soxr is None:  # already 16 kHz: downmix only, nothing held back
            return mono
        return self._soxr.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """The outputs still held back, as whole-signal resampling ends them."""
        if self._soxr is None:
            return np.zeros(0, np.float32)
        return self._soxr.resample_chunk(np.zeros(0, np.float32), last=True)

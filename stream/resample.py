"""Streaming conversion of native-rate, multi-channel blocks to 16 kHz mono.

torchaudio's sinc resampler (the one `to_mono_16k` uses) maps each period of `rate / gcd` input
samples onto `SAMPLE_RATE / gcd` outputs, and every output reads only the inputs within
`width` samples of its period. So a block that starts on a period boundary and carries enough
history yields exactly the whole-signal outputs for the periods it fully covers: we emit those,
keep the history the next periods need, and resample the remainder at the end of the stream
(where the zero padding is the whole signal's own). No clicks at block edges, no drift.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError
from mmgat.model.install import import_torchaudio

torchaudio = import_torchaudio()  # built for another torch: one clear line, not a traceback

LOWPASS_WIDTH, ROLLOFF = 6, 0.99  # torchaudio.transforms.Resample's defaults, which we use
MAX_FILTER_TAPS = 2 ** 24  # period_out x taps of the filter torchaudio builds (float64 while it does)
MAX_BACKLOG = FRAME_SAMPLES // 4  # held-back outputs; a Stream keeps more room than this at any hop
MAX_AMPLITUDE = 1e3  # 60 dB over full scale; louder finite samples are clipped, or sums overflow


def check_rate(rate: int, what: str = "the input") -> int:
    """`rate` if StreamResampler can take it; AudioError for a rate whose ratio to 16 kHz reduces
    to no small fraction (44101 Hz: a 16000 x 44135 filter, 5.6 GB to build) or that is so low
    that the resampler would hold back more than a stream buffers (a few Hz: a hang)."""
    rate = int(rate)
    if rate < 1:
        raise AudioError(f"{what}: sample rate {rate} Hz is not a rate")
    divisor = math.gcd(rate, SAMPLE_RATE)
    period_in, period_out = rate // divisor, SAMPLE_RATE // divisor
    if rate != SAMPLE_RATE:
        width = math.ceil(LOWPASS_WIDTH * period_in / (ROLLOFF * min(period_in, period_out)))
        backlog = (-(-(width + period_in) // period_in) + 1) * period_out
        if period_out * (2 * width + period_in) > MAX_FILTER_TAPS or backlog > MAX_BACKLOG:
            raise AudioError(f"{what}: cannot resample {rate} Hz to {SAMPLE_RATE} Hz as a stream (the ratio "
                             f"reduces to {period_in}/{period_out}); convert it to a common rate first")
    return rate


class StreamResampler:
    """feed((frames, channels) float32 at `rate`) -> float32 mono at SAMPLE_RATE; flush() at the end.
    Non-finite samples become silence."""

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = check_rate(rate), int(channels)
        divisor = math.gcd(self.rate, SAMPLE_RATE)
        self.period_in, self.period_out = self.rate // divisor, SAMPLE_RATE // divisor
        if self.rate == SAMPLE_RATE:
            self._resample, self.width = None, 0
        else:
            self._resample = torchaudio.transforms.Resample(self.rate, SAMPLE_RATE)
            self.width = self._resample.width  # kernel half-width, in input samples
        # Periods of history an output needs to the left of its own period.
        self._history_periods = -(-self.width // self.period_in)
        self._pending = np.zeros(0, np.float32)  # mono input from `_start` on
        self._start = 0  # input index of _pending[0], always a period boundary
        self._next_period = 0  # first period whose outputs have not been emitted
        # Outputs held back at most: those of the periods inside the right-hand lookahead.
        self.backlog = 0 if self._resample is None else \
            (-(-(self.width + self.period_in) // self.period_in) + 1) * self.period_out

    def feed(self, block: np.ndarray) -> np.ndarray:
        # NaN and infinite samples (a broken file or device) carry no sound: silence, so that one
        # bad sample cannot turn a whole window of scores into NaN. Finite float samples can be
        # absurdly loud too (up to 3e38): clipped, or the downmix or the STFT overflows to inf.
        block = np.clip(np.nan_to_num(np.asarray(block, np.float32), nan=0.0, posinf=0.0, neginf=0.0),
                        -MAX_AMPLITUDE, MAX_AMPLITUDE)
        mono = block.mean(axis=1) if block.ndim == 2 else block
        if self._resample is None:  # already 16 kHz: downmix only, nothing held back
            return np.ascontiguousarray(mono, np.float32)
        self._pending = np.concatenate((self._pending, mono))
        end = self._start + len(self._pending)
        # Period p reads inputs [p*period_in - width, (p+1)*period_in + width).
        complete = (end - self.width) // self.period_in  # periods p < complete are covered
        return self._emit(max(complete, self._next_period))

    def flush(self) -> np.ndarray:
        """The outputs of the periods still open, as whole-signal resampling ends them."""
        if self._resample is None:
            return np.zeros(0, np.float32)
        end = self._start + len(self._pending)
        total = -(-end * self.period_out // self.period_in)  # torchaudio's output length
        return self._emit(-(-total // self.period_out), total)

    def _emit(self, stop_period: int, stop_output: int | None = None) -> np.ndarray:
        if stop_period <= self._next_period:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            out = self._resample(torch.from_numpy(self._pending)).numpy()
        first_period = self._start // self.period_in
        lo = (self._next_period - first_period) * self.period_out
        hi = (stop_period - first_period) * self.period_out
        if stop_output is not None:
            hi = min(hi, stop_output - first_period * self.period_out)
        emitted = out[lo:hi].copy()
        self._next_period = stop_period
        keep_from = max(0, self._next_period - self._history_periods) * self.period_in
        self._pending = self._pending[keep_from - self._start:]
        self._start = keep_from
        return emitted

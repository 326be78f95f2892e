"""Streamed resampling equals whole-signal resampling (to_mono_16k), whatever the block sizes."""

import numpy as np
import pytest

from mmgat.model.audio import SAMPLE_RATE, to_mono_16k
from mmgat.stream.resample import StreamResampler


def stream_through(resampler: StreamResampler, signal: np.ndarray, rng) -> np.ndarray:
    out, position, emitted = [], 0, 0
    while position < len(signal):
        block = signal[position:position + int(rng.integers(1, 2500))]
        position += len(block)
        out.append(resampler.feed(block))
        fed, emitted = position, emitted + len(out[-1])
        # Never ahead of the input, never further behind than its declared backlog.
        assert emitted <= fed * SAMPLE_RATE / resampler.rate + 1e-9
        assert fed * SAMPLE_RATE / resampler.rate - emitted <= resampler.backlog + 1
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 1), (22050, 2), (8000, 1), (96000, 3),
                                            (11025, 1), (SAMPLE_RATE, 2)])
def test_streamed_equals_whole_signal(rate, channels):
    rng = np.random.default_rng(rate + channels)
    signal = (0.3 * rng.standard_normal((2 * rate + 777, channels))).astype(np.float32)
    streamed = stream_through(StreamResampler(rate, channels), signal, rng)
    whole = to_mono_16k(signal, rate)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_no_clicks_at_block_edges():
    """A pure tone streamed in tiny blocks stays a pure tone: its sample-to-sample steps never
    exceed the tone's own (a block-edge discontinuity would)."""
    rate = 44100
    t = np.arange(3 * rate) / rate
    signal = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[:, None]
    streamed = stream_through(StreamResampler(rate, 1), signal, np.random.default_rng(0))
    steady = streamed[200:-200]  # away from the signal's own start and end
    largest_step = 0.5 * 2 * np.pi * 1000 / SAMPLE_RATE
    assert np.abs(np.diff(steady)).max() <= largest_step * 1.01

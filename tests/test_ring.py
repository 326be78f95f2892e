"""RingBuffer: order across wraparound, overrun counting, no allocation on the write path."""

import threading
import tracemalloc

import numpy as np
import pytest

from mmgat.stream.ring import RingBuffer


def ramp(start, count, channels=1):
    return (np.arange(start, start + count, dtype=np.float32)[:, None] * np.ones(channels, np.float32))


def test_reads_come_back_in_order_across_wraparound():
    ring = RingBuffer(capacity=10, channels=2)
    written, got = 0, []
    for size, take in [(7, 5), (6, 4), (3, 8), (9, 9), (1, 3)]:  # crosses the end several times
        ring.write(ramp(written, size, 2))
        written += size
        got.append(ring.read(take))
    got.append(ring.read(100))
    samples = np.concatenate(got)
    assert samples.shape == (written, 2)
    np.testing.assert_array_equal(samples[:, 0], np.arange(written))
    assert ring.overruns == 0 and ring.available() == 0


def test_a_full_ring_drops_the_newest_samples_and_counts_them():
    ring = RingBuffer(capacity=8)
    assert ring.write(ramp(0, 5)) == 5
    assert ring.write(ramp(5, 6)) == 3  # 3 fit, 3 dropped
    assert ring.overruns == 3
    assert ring.write(ramp(11, 4)) == 0
    assert ring.overruns == 7
    np.testing.assert_array_equal(ring.read(100)[:, 0], np.arange(8))  # what was kept is intact
    ring.write(ramp(20, 2))
    np.testing.assert_array_equal(ring.read(100)[:, 0], [20, 21])
    assert ring.overruns == 7  # never reset: records report the running total


def test_read_never_returns_more_than_available():
    ring = RingBuffer(capacity=4)
    assert ring.read(3).shape == (0, 1)
    ring.write(ramp(0, 2))
    assert len(ring.read(3)) == 2


def test_write_path_allocates_nothing_that_stays():
    ring = RingBuffer(capacity=4096, channels=2)
    block = np.ones((333, 2), np.float32)
    ring.write(block)  # first call: any lazy initialisation happens here
    ring.read(4096)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):  # wraps ~1,600 times and overruns when the reader lags
            ring.write(block)
            if i % 3 == 0:
                ring.read(500)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024
    assert peak - before < 16 * 1024  # transient views only, never a copy of the block
    assert ring.overruns > 0


def test_concurrent_producer_and_consumer_lose_nothing_but_the_counted_overruns():
    ring = RingBuffer(capacity=1000)
    total, block = 200_000, 100
    received = []

    def produce():
        for start in range(0, total, block):
            ring.write(ramp(start, block))

    producer = threading.Thread(target=produce)
    producer.start()
    while producer.is_alive() or ring.available():
        received.append(ring.read(250))
    producer.join()
    values = np.concatenate(received)[:, 0]
    assert len(values) + ring.overruns == total
    assert np.all(np.diff(values) > 0)  # in order, no sample twice


@pytest.mark.parametrize("capacity, channels", [(0, 1), (4, 0)])
def test_rejects_empty_shapes(capacity, channels):
    with pytest.raises(ValueError):
        RingBuffer(capacity, channels)

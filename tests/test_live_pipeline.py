"""Stream framing, batched Pipeline.step across streams, and the scheduler under a slow consumer."""

import threading
import time
import tracemalloc

import numpy as np
import pytest

from mmgat.model.audio import EMBED_DIM, FRAME_SAMPLES, SAMPLE_RATE
from mmgat.stream.pipeline import Pipeline
from mmgat.stream.ring import RingBuffer
from mmgat.stream.scheduler import run
from mmgat.stream.sources import ArraySource
from mmgat.stream.settings import StreamSettings, hop_samples
from mmgat.stream.stream import MAX_PENDING_FRAMES, Stream


def fed_stream(window: int, hop_s: float, samples=None, limit=None) -> Stream:
    """A Stream whose audio the test feeds itself (samples: fed now)."""
    stream = Stream.fed(StreamSettings(window, hop_s), limit=limit)
    if samples is not None:
        stream.feed(samples)
    return stream


@pytest.fixture(scope="module")
def runtime(tiny_model):
    from mmgat.export.runtime import load_runtime

    return load_runtime(tiny_model, cpu=True)


class CountingFrontend:
    """Wraps a frontend and records the batch size of every call."""

    def __init__(self, frontend):
        self.frontend, self.batches = frontend, []

    def embed(self, frames):
        self.batches.append(len(frames))
        return self.frontend.embed(frames)


class CountingSession:
    """Wraps a session and records the batch size of every score call."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def __getattr__(self, name):  # metadata, thresholds, ...
        return getattr(self.session, name)

    def score(self, nodes, *rest):
        self.batches.append(len(nodes))
        return self.session.score(nodes, *rest)


@pytest.mark.parametrize("seconds, expected", [(1.0, 16000), (0.5, 8000), (0.25, 4000), (0.1, 1600)])
def test_hop_samples_accepts_hops_that_divide_a_frame(seconds, expected):
    assert hop_samples(seconds) == expected


@pytest.mark.parametrize("seconds", [0.0, -1.0, 0.3, 2.0, 0.01, float("nan"), 1 / 3])
def test_hop_samples_rejects_the_rest(seconds):
    with pytest.raises(ValueError, match="hop must divide"):
        hop_samples(seconds)


def test_frames_are_one_second_every_hop_and_the_buffer_never_grows():
    stream = fed_stream(window=4, hop_s=0.25)
    hop = stream.settings.hop_samples
    capacity = len(stream.audio)
    ramp = np.arange(6 * SAMPLE_RATE, dtype=np.float32)
    taken, position = [], 0
    while position < len(ramp):
        block = ramp[position:position + min(stream.room(), 3000)]
        stream.feed(block)
        position += len(block)
        taken += stream.take()
        assert len(stream.audio) == capacity
    assert [frame.index for frame in taken] == list(range(21))  # frames ending at 1.00, 1.25, ... 6.00 s
    for frame in taken:
        np.testing.assert_array_equal(frame.samples, ramp[frame.index * hop:frame.index * hop + FRAME_SAMPLES])
    assert stream.end_sample(20) == 6 * SAMPLE_RATE


def test_feeding_more_than_the_room_is_refused_and_the_limit_truncates():
    stream = fed_stream(window=2, hop_s=1.0, limit=int(2.5 * SAMPLE_RATE))
    with pytest.raises(ValueError):
        stream.feed(np.zeros(stream.room() + 1, np.float32))
    stream.feed(np.zeros(3 * SAMPLE_RATE, np.float32))
    assert stream.received == int(2.5 * SAMPLE_RATE) and stream.complete and stream.ready() == 2


def test_each_hop_phase_keeps_its_own_graph_of_back_to_back_seconds(runtime):
    session, frontend = runtime
    stream = fed_stream(3, 0.5,
                        np.random.default_rng(0).standard_normal(4 * SAMPLE_RATE).astype(np.float32) * 0.1)
    updates = Pipeline(session, frontend).step([stream])
    # Frames end at 1.0, 1.5, ..., 4.0 s; the window ending at t holds the seconds t, t-1, ... >= 1.
    assert [u.t for u in updates] == [1.0 + 0.5 * k for k in range(7)]
    assert [len(u.node_probs) for u in updates] == [min(3, int(u.t)) for u in updates]
    assert len(stream.graphs) == 2


def test_streams_share_one_frontend_call_and_one_padded_mmgat_call(runtime):
    session, frontend = runtime
    rng = np.random.default_rng(1)
    audio = [rng.standard_normal(s * SAMPLE_RATE).astype(np.float32) * 0.1 for s in (3, 5)]

    def alone(samples):
        return Pipeline(session, frontend).step([fed_stream(10, 1.0, samples)])

    expected = [alone(samples) for samples in audio]
    counting_frontend, counting_session = CountingFrontend(frontend), CountingSession(session)
    pipeline = Pipeline(counting_session, counting_frontend)
    streams = [fed_stream(10, 1.0, samples) for samples in audio]
    updates = pipeline.step(streams)

    assert counting_frontend.batches == [8] and counting_session.batches == [8]  # 3 + 5 frames, one call each
    for stream, wanted in zip(streams, expected):
        mine = [u for u in updates if u.stream is stream]
        assert [u.t for u in mine] == [u.t for u in wanted]
        for got, want in zip(mine, wanted):  # padding to the batch's largest graph changes nothing
            np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
            np.testing.assert_allclose(got.node_probs, want.node_probs, atol=1e-5)


def test_a_stream_that_fell_behind_is_caught_up_in_one_frontend_batch(runtime):
    """Its frames share one graph: each is scored on the graph as of its own push, exactly as
    when they come one per step."""
    session, frontend = runtime
    counting = CountingFrontend(frontend)
    pipeline = Pipeline(session, counting)
    audio = np.random.default_rng(2).standard_normal(SAMPLE_RATE * MAX_PENDING_FRAMES).astype(np.float32) * 0.1
    stream = fed_stream(3, 1.0)
    stream.feed(audio[:stream.room()])  # as much as a stream may hold pending
    updates = pipeline.step([stream])
    assert counting.batches == [MAX_PENDING_FRAMES] and len(updates) == MAX_PENDING_FRAMES
    one_by_one, paced = [], fed_stream(3, 1.0)
    for second in range(MAX_PENDING_FRAMES):
        paced.feed(audio[second * SAMPLE_RATE:(second + 1) * SAMPLE_RATE])
        one_by_one += pipeline.step([paced])
    for got, want in zip(updates, one_by_one):
        assert len(got.node_probs) == len(want.node_probs) == min(3, round(got.t))
        np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
        np.testing.assert_allclose(got.node_probs, want.node_probs, atol=1e-5)


def test_silence_is_the_floor_level_and_latency_is_this_frames_compute(runtime):
    session, frontend = runtime
    stream = fed_stream(10, 1.0, np.zeros(2 * SAMPLE_RATE, np.float32))
    for update in Pipeline(session, frontend).step([stream]):
        assert update.level_dbfs == -120.0
        assert set(update.latency_ms) == {"read", "frontend", "graph", "mmgat", "compute"}
        ms = update.latency_ms
        assert ms["compute"] == pytest.approx(ms["frontend"] + ms["graph"] + ms["mmgat"])


def test_loss_counts_run_on_across_a_replaced_source():
    """A device reopened after it went away: the stream's counts are running totals."""

    class Lossy(ArraySource):
        def __init__(self, overruns, overflows):
            super().__init__(np.zeros(SAMPLE_RATE, np.float32))
            self.overruns, self.input_overflows = overruns, overflows

    stream = Stream(Lossy(5, 1), StreamSettings(2, 1.0))
    stream.replace_source(Lossy(7, 2))
    assert (stream.overruns, stream.input_overflows) == (12, 3)


class RingFedSource:
    """Stands in for DeviceSource: a thread plays the audio callback, writing into a RingBuffer
    much faster than real time, so the consumer cannot keep up."""

    rate, channels, description, finished = SAMPLE_RATE, 1, "fast producer", False
    input_overflows = 0

    def __init__(self, ring_seconds: float, block: int, every_s: float):
        self.ring = RingBuffer(int(ring_seconds * SAMPLE_RATE), 1)
        self.block, self.every_s = np.full((block, 1), 0.1, np.float32), every_s
        self.written = self.handed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    @property
    def overruns(self):
        return self.ring.overruns

    def _produce(self):
        while not self._stop.is_set():
            self.ring.write(self.block)
            self.written += len(self.block)
            time.sleep(self.every_s)

    def start(self):
        self._thread.start()

    def read(self, max_frames):
        block = self.ring.read(max_frames)
        self.handed += len(block)
        return block

    def close(self):
        self._stop.set()
        self._thread.join()


class SlowFrontend:
    """50 ms per frame, whatever the batch: a consumer slower than the producer."""

    def embed(self, frames):
        time.sleep(0.05 * len(frames))
        return np.random.default_rng(len(frames)).standard_normal((len(frames), EMBED_DIM)).astype(np.float32)


def test_a_slow_consumer_counts_overruns_with_flat_memory(runtime):
    session, _ = runtime
    source = RingFedSource(ring_seconds=2.0, block=3200, every_s=0.005)  # ~40x real time
    stream = Stream(source, StreamSettings(10, 1.0), limit=40 * SAMPLE_RATE)
    pipeline = Pipeline(session, SlowFrontend())
    updates, memory = [], []

    def emit(update):
        updates.append(update.overruns)
        memory.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        run(pipeline, [stream], emit)
    finally:
        source.close()
        tracemalloc.stop()
    assert len(updates) == 40
    assert updates[-1] > 0 and updates == sorted(updates)  # counted, a running total
    assert source.written == source.handed + source.ring.available() + source.ring.overruns  # nothing else lost
    assert max(memory[10:]) - memory[10] < 256 * 1024  # flat once warm: bounded buffers only


def test_device_overflows_reported_by_portaudio_are_counted():
    import sounddevice as sd

    from mmgat.stream.sources import DeviceSource

    source = object.__new__(DeviceSource)  # the callback alone: no device needed
    source.ring, source.input_overflows = RingBuffer(SAMPLE_RATE, 1), 0
    block, fine, overflowed = np.zeros((160, 1), np.float32), sd.CallbackFlags(), sd.CallbackFlags()
    overflowed.input_overflow = True
    for status in (fine, overflowed, fine, overflowed):
        source._callback(block, len(block), None, status)
    assert source.input_overflows == 2 and source.ring.available() == 4 * len(block)

"""StreamState framing, batched Pipeline.step across streams, and the runner under a slow consumer."""

import threading
import time
import tracemalloc

import numpy as np
import pytest

from mmgat.model.audio import EMBED_DIM, FRAME_SAMPLES, SAMPLE_RATE
from mmgat.stream.pipeline import MAX_PENDING_FRAMES, Pipeline, StreamState, hop_samples
from mmgat.stream.ring import RingBuffer
from mmgat.stream.runner import LiveStream, run


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
    def __init__(self, session):
        self.session, self.batches = session, []

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
    hop = hop_samples(0.25)
    state = StreamState(window=4, hop=hop)
    capacity = len(state.audio)
    ramp = np.arange(6 * SAMPLE_RATE, dtype=np.float32)
    taken, position = [], 0
    while position < len(ramp):
        block = ramp[position:position + min(state.room(), 3000)]
        state.feed(block)
        position += len(block)
        taken += state.take(state.ready())
        assert len(state.audio) == capacity
    assert [index for index, _ in taken] == list(range(21))  # frames ending at 1.00, 1.25, ... 6.00 s
    for index, frame in taken:
        np.testing.assert_array_equal(frame, ramp[index * hop:index * hop + FRAME_SAMPLES])
    assert state.end_seconds(20) == 6.0


def test_feeding_more_than_the_room_is_refused_and_the_limit_truncates():
    state = StreamState(window=2, hop=hop_samples(1.0), limit=int(2.5 * SAMPLE_RATE))
    with pytest.raises(ValueError):
        state.feed(np.zeros(state.room() + 1, np.float32))
    state.feed(np.zeros(3 * SAMPLE_RATE, np.float32))
    assert state.received == int(2.5 * SAMPLE_RATE) and state.complete and state.ready() == 2


def test_each_hop_phase_keeps_its_own_graph_of_back_to_back_seconds(runtime):
    session, frontend = runtime
    state = StreamState(window=3, hop=hop_samples(0.5))
    pipeline = Pipeline(session, frontend)
    state.feed(np.random.default_rng(0).standard_normal(4 * SAMPLE_RATE).astype(np.float32) * 0.1)
    updates = pipeline.step([state])
    # Frames end at 1.0, 1.5, ..., 4.0 s; the window ending at t holds the seconds t, t-1, ... >= 1.
    assert [u.t for u in updates] == [1.0 + 0.5 * k for k in range(7)]
    assert [len(u.node_probs) for u in updates] == [min(3, int(u.t)) for u in updates]
    assert len(state.graphs) == 2


def test_streams_share_one_frontend_call_and_one_padded_mmgat_call(runtime):
    session, frontend = runtime
    rng = np.random.default_rng(1)
    audio = [rng.standard_normal(s * SAMPLE_RATE).astype(np.float32) * 0.1 for s in (3, 5)]

    def alone(samples):
        state = StreamState(window=10, hop=hop_samples(1.0))
        state.feed(samples)
        return Pipeline(session, frontend).step([state])

    expected = [alone(samples) for samples in audio]
    counting_frontend, counting_session = CountingFrontend(frontend), CountingSession(session)
    pipeline = Pipeline(counting_session, counting_frontend)
    states = [StreamState(window=10, hop=hop_samples(1.0)) for _ in audio]
    for state, samples in zip(states, audio):
        state.feed(samples)
    updates = pipeline.step(states)

    assert counting_frontend.batches == [8] and counting_session.batches == [8]  # 3 + 5 frames, one call each
    for state, wanted in zip(states, expected):
        mine = [u for u in updates if u.stream is state]
        assert [u.t for u in mine] == [u.t for u in wanted]
        for got, want in zip(mine, wanted):  # padding to the batch's largest graph changes nothing
            np.testing.assert_allclose(got.probs, want.probs, atol=1e-5)
            np.testing.assert_allclose(got.node_probs, want.node_probs, atol=1e-5)


def test_a_stream_that_fell_behind_is_caught_up_in_one_frontend_batch(runtime):
    session, frontend = runtime
    counting = CountingFrontend(frontend)
    pipeline = Pipeline(session, counting)
    state = StreamState(window=10, hop=hop_samples(1.0))
    state.feed(np.zeros(state.room(), np.float32))  # as much as a stream may hold pending
    updates = pipeline.step([state])
    assert counting.batches == [MAX_PENDING_FRAMES] and len(updates) == MAX_PENDING_FRAMES
    assert all(u.level_dbfs == -120.0 for u in updates)


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
    state = StreamState(window=10, hop=hop_samples(1.0), limit=40 * SAMPLE_RATE)
    stream, pipeline = LiveStream(source, state), Pipeline(session, SlowFrontend())
    updates, memory = [], []

    def emit(update):
        updates.append(update.overruns)
        memory.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        run([stream], pipeline, emit)
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

"""Per-stream state and one batched compute step shared by any number of streams.

    StreamState (one per input): the 16 kHz audio from the next frame's start on, the frame
    clock, and the instance graphs. Pipeline.step(states): every ready 1 s frame of every stream
    -> one frontend batch -> graph pushes -> one padded MMGAT batch -> one Update per frame.

Frames are 1 s long and start every hop. With a hop shorter than a frame, consecutive frames
overlap, so each hop phase keeps its own graph of back-to-back seconds (hop 0.25 s: four graphs,
each advanced once a second). Every update therefore scores the last W seconds ending now,
with the non-overlapping 1 s instances the model was trained on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mmgat.model.audio import EMBED_DIM, FRAME_SAMPLES, SAMPLE_RATE
from mmgat.model.graph import MAX_WINDOW, NUM_SCALES, InstanceGraph
from mmgat.stream.latency import LatencyStats

MAX_PENDING_FRAMES = 8  # ready frames a stream may hold: bounds its audio and its batch share
MAX_PHASES = 20  # hops per frame at most (hop >= 50 ms): bounds the graphs per stream
SILENCE_DBFS = -120.0  # level shown for digital silence


def check_window(window: int) -> int:
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW} frames, got {window}")
    return int(window)


def hop_samples(hop_seconds: float) -> int:
    """Hop in samples; it must split a frame into whole hops of whole samples."""
    samples = round(hop_seconds * SAMPLE_RATE) if math.isfinite(hop_seconds) else 0
    if (samples < 1 or abs(samples - hop_seconds * SAMPLE_RATE) > 1e-6
            or FRAME_SAMPLES % samples or FRAME_SAMPLES // samples > MAX_PHASES):
        choices = ", ".join(f"{FRAME_SAMPLES / k / SAMPLE_RATE:g}" for k in range(1, MAX_PHASES + 1)
                            if FRAME_SAMPLES % k == 0)
        raise ValueError(f"hop must divide the {FRAME_SAMPLES / SAMPLE_RATE:g} s frame into whole "
                         f"hops ({choices} s), got {hop_seconds:g}")
    return samples


def level_dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class StreamState:
    """One stream's clock, audio and graphs, in buffers sized once.

    Frame k covers stream samples [k * hop, k * hop + FRAME_SAMPLES). `audio` holds the samples
    from the next frame's start on, up to MAX_PENDING_FRAMES ready frames; a caller feeds at most
    `room()` samples, so a stream that falls behind pushes back on its source (whose ring buffer
    counts what it then drops) instead of growing.
    """

    def __init__(self, window: int, hop: int, neighbours: int = 2, limit: int | None = None,
                 name: str = "", similarity: str = "cosine"):
        self.window, self.hop, self.limit, self.name = check_window(window), hop, limit, name
        self.graphs = [InstanceGraph(window, EMBED_DIM, neighbours, similarity=similarity)
                       for _ in range(FRAME_SAMPLES // hop)]
        self.audio = np.zeros(FRAME_SAMPLES + (MAX_PENDING_FRAMES - 1) * hop, np.float32)
        self.start = 0  # stream sample index of audio[0]
        self.filled = 0
        self.frames = 0  # frames taken so far
        self.overruns = 0  # samples the source dropped (copied from it by the caller)
        self.input_overflows = 0  # times the device lost input before the source saw it (ditto)
        self.read_ms = 0.0  # reading + resampling time not yet charged to a frame
        self.output_ms = 0.0  # display + sink time of the previous update

    @property
    def received(self) -> int:
        """Stream samples fed so far."""
        return self.start + self.filled

    @property
    def complete(self) -> bool:
        """True once `limit` samples have been fed."""
        return self.limit is not None and self.received >= self.limit

    def room(self) -> int:
        """Samples the buffer can take now."""
        return len(self.audio) - self.filled

    def feed(self, samples: np.ndarray) -> None:
        """Append at most `room()` 16 kHz mono samples; those past `limit` are discarded."""
        if len(samples) > self.room():
            raise ValueError(f"fed {len(samples)} samples with room for {self.room()}")
        if self.limit is not None:
            samples = samples[: max(0, self.limit - self.received)]
        self.audio[self.filled:self.filled + len(samples)] = samples
        self.filled += len(samples)

    def samples_to_next_frame(self) -> int:
        return self.frames * self.hop + FRAME_SAMPLES - self.received

    def ready(self) -> int:
        if self.received < FRAME_SAMPLES:
            return 0
        return (self.received - FRAME_SAMPLES) // self.hop + 1 - self.frames

    def take(self, count: int) -> list[tuple[int, np.ndarray]]:
        """The next `count` ready frames as (frame index, samples); drops audio no frame needs."""
        if count == 0:
            return []
        taken = []
        for index in range(self.frames, self.frames + count):
            offset = index * self.hop - self.start
            taken.append((index, self.audio[offset:offset + FRAME_SAMPLES].copy()))
        self.frames += count
        drop = self.frames * self.hop - self.start
        self.audio[: self.filled - drop] = self.audio[drop:self.filled]
        self.start += drop
        self.filled -= drop
        return taken

    def graph_for(self, index: int) -> InstanceGraph:
        return self.graphs[index % len(self.graphs)]

    def end_seconds(self, index: int) -> float:
        return (index * self.hop + FRAME_SAMPLES) / SAMPLE_RATE


@dataclass
class Update:
    """What one frame produced: the window's scores as of the frame's end."""

    stream: StreamState
    t: float  # stream seconds at the end of the window
    probs: np.ndarray  # (C,)
    group_probs: np.ndarray  # (G,)
    node_probs: np.ndarray  # (n, C): per-second activity, oldest second first
    level_dbfs: float  # input level of the frame's newest hop
    overruns: int  # samples dropped by the source so far
    input_overflows: int  # times the device itself lost input so far (PortAudio's flag)
    latency_ms: dict[str, float]  # per stage, for this frame; output: the previous update's


class Pipeline:
    """Frontend + graphs + MMGAT for many streams at once (see the module docstring)."""

    def __init__(self, session, frontend):
        self.session, self.frontend = session, frontend
        self.stats = LatencyStats()

    def warm_up(self) -> None:
        """One silent frame through the frontend and MMGAT: first calls allocate and pick
        kernels (hundreds of ms), which must not land on the first live frame."""
        instance = self.frontend.embed(np.zeros((1, FRAME_SAMPLES), np.float32))[0]
        self.session.score(*pad_graphs([(instance[None], np.ones((1, 1), np.float32),
                                         np.ones((NUM_SCALES, 1, 1), bool))]))

    def step(self, states: list[StreamState]) -> list[Update]:
        jobs = []  # (state, frame index, frame samples, read ms charged to it)
        for state in states:
            taken = state.take(state.ready())
            for index, frame in taken:
                jobs.append((state, index, frame, state.read_ms / len(taken)))
            if taken:
                state.read_ms = 0.0
        if not jobs:
            return []

        started = time.perf_counter()
        embeddings = self.frontend.embed(np.stack([frame for _, _, frame, _ in jobs]))
        frontend_ms = (time.perf_counter() - started) * 1e3 / len(jobs)

        graphs, graph_ms = [], []  # copies: the next push overwrites a graph's views
        for (state, index, _, _), instance in zip(jobs, embeddings):
            started = time.perf_counter()
            graph = state.graph_for(index)
            graph.push(instance)
            graphs.append((graph.nodes.copy(), graph.weights.copy(), graph.scale_masks.copy()))
            graph_ms.append((time.perf_counter() - started) * 1e3)

        started = time.perf_counter()
        scores = self.session.score(*pad_graphs(graphs))
        mmgat_ms = (time.perf_counter() - started) * 1e3 / len(jobs)

        updates = []
        for b, (state, index, frame, read_ms) in enumerate(jobs):
            n = len(graphs[b][0])
            latency = {"read": read_ms, "frontend": frontend_ms, "graph": graph_ms[b], "mmgat": mmgat_ms,
                       "compute": frontend_ms + graph_ms[b] + mmgat_ms, "output": state.output_ms}
            for stage, ms in latency.items():
                if stage != "output":  # timed by whoever displays and writes the update
                    self.stats.add(stage, ms)
            updates.append(Update(
                stream=state, t=state.end_seconds(index), probs=scores["probs"][b],
                group_probs=scores["group_probs"][b], node_probs=scores["node_probs"][b, :n],
                level_dbfs=level_dbfs(frame[-state.hop:]), overruns=state.overruns,
                input_overflows=state.input_overflows, latency_ms=latency))
        return updates


def pad_graphs(graphs):
    """[(nodes, weights, scale_masks)] of varying n -> the padded batch MMGAT takes
    (real nodes first, node_mask marks them)."""
    size = max(len(nodes) for nodes, _, _ in graphs)
    batch = len(graphs)
    nodes = np.zeros((batch, size, EMBED_DIM), np.float32)
    weights = np.zeros((batch, size, size), np.float32)
    scale_masks = np.zeros((batch, NUM_SCALES, size, size), bool)
    node_mask = np.zeros((batch, size), bool)
    for b, (x, w, m) in enumerate(graphs):
        n = len(x)
        nodes[b, :n], weights[b, :n, :n], scale_masks[b, :, :n, :n], node_mask[b, :n] = x, w, m, True
    return nodes, weights, scale_masks, node_mask

"""One batched compute step for any number of streams: every ready 1 s frame of every stream
-> one frontend batch -> graph pushes -> one padded MMGAT batch -> one Update per frame.

Each Update holds only numbers of its own frame: its scores, its level, the loss counts as of
it, and the time each stage spent on it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mmgat.model.audio import EMBED_DIM, FRAME_SAMPLES, SAMPLE_RATE
from mmgat.model.graph import NUM_SCALES
from mmgat.model.serving import active_classes
from mmgat.stream.latency import LatencyStats
from mmgat.stream.stream import Stream

SILENCE_DBFS = -120.0  # level shown for digital silence


def level_dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


@dataclass
class Update:
    """What one frame produced: the window's scores as of the frame's end."""

    stream: Stream
    end_sample: int  # stream samples at the end of the window
    probs: np.ndarray  # (C,)
    group_probs: np.ndarray  # (G,)
    node_probs: np.ndarray  # (n, C): per-second activity, oldest second first
    active: list[str]  # classes at or over the model's thresholds: what users are shown as playing
    level_dbfs: float  # input level of the frame's newest hop
    overruns: int  # samples dropped by the source so far
    input_overflows: int  # times the device itself lost input so far (PortAudio's flag)
    latency_ms: dict[str, float]  # per compute stage, for this frame (latency.STAGES but output)

    @property
    def t(self) -> float:
        """Stream seconds at the end of the window."""
        return self.end_sample / SAMPLE_RATE


class Pipeline:
    """Frontend + graphs + MMGAT for many streams at once (see the module docstring)."""

    def __init__(self, session, frontend):
        self.session, self.frontend = session, frontend
        self.classes = tuple(session.metadata["classes"])
        self.stats = LatencyStats()

    def warm_up(self) -> None:
        """One silent frame through the frontend and MMGAT: first calls allocate and pick
        kernels (hundreds of ms), which must not land on the first live frame."""
        instance = self.frontend.embed(np.zeros((1, FRAME_SAMPLES), np.float32))[0]
        batch = GraphBatch([1])
        batch.put(0, instance[None], np.ones((1, 1), np.float32), np.ones((NUM_SCALES, 1, 1), bool))
        self.session.score(*batch.arrays())

    def step(self, streams: list[Stream]) -> list[Update]:
        jobs = [(stream, frame) for stream in streams for frame in stream.take()]
        if not jobs:
            return []

        started = time.perf_counter()
        embeddings = self.frontend.embed(np.stack([frame.samples for _, frame in jobs]))
        frontend_ms = (time.perf_counter() - started) * 1e3 / len(jobs)

        # Each graph is written into the batch right after its push: the next push (a later
        # frame of the same stream) overwrites the graph's views.
        batch, graph_ms = GraphBatch(node_counts(jobs)), []
        for b, ((stream, frame), instance) in enumerate(zip(jobs, embeddings)):
            started = time.perf_counter()
            graph = stream.graph_for(frame.index)
            graph.push(instance)
            batch.put(b, graph.nodes, graph.weights, graph.scale_masks)
            graph_ms.append((time.perf_counter() - started) * 1e3)

        started = time.perf_counter()
        scores = self.session.score(*batch.arrays())
        mmgat_ms = (time.perf_counter() - started) * 1e3 / len(jobs)

        updates = []
        for b, (stream, frame) in enumerate(jobs):
            latency = {"read": frame.read_ms, "frontend": frontend_ms, "graph": graph_ms[b],
                       "mmgat": mmgat_ms, "compute": frontend_ms + graph_ms[b] + mmgat_ms}
            for stage, ms in latency.items():
                self.stats.add(stage, ms)
            probs = scores["probs"][b]
            updates.append(Update(
                stream=stream, end_sample=stream.end_sample(frame.index), probs=probs,
                group_probs=scores["group_probs"][b], node_probs=scores["node_probs"][b, :batch.counts[b]],
                active=active_classes(self.classes, probs, self.session.thresholds),
                level_dbfs=level_dbfs(frame.samples[-stream.settings.hop_samples:]), overruns=stream.overruns,
                input_overflows=stream.input_overflows, latency_ms=latency))
        return updates


def node_counts(jobs) -> list[int]:
    """The node count of each job's graph after its push (frames of one stream may share a graph)."""
    pushes, counts = {}, []
    for stream, frame in jobs:
        graph = stream.graph_for(frame.index)
        pushes[id(graph)] = pushes.get(id(graph), 0) + 1
        counts.append(min(graph.n + pushes[id(graph)], graph.window))
    return counts


class GraphBatch:
    """The padded batch MMGAT takes, for graphs of the given node counts (real nodes first,
    node_mask marks them)."""

    def __init__(self, counts: list[int]):
        size, batch = max(counts), len(counts)
        self.counts = counts
        self.nodes = np.zeros((batch, size, EMBED_DIM), np.float32)
        self.weights = np.zeros((batch, size, size), np.float32)
        self.scale_masks = np.zeros((batch, NUM_SCALES, size, size), bool)
        self.node_mask = np.zeros((batch, size), bool)

    def put(self, b: int, nodes, weights, scale_masks) -> None:
        n = self.counts[b]
        if len(nodes) != n:
            raise ValueError(f"graph {b} has {len(nodes)} nodes, the batch was sized for {n}")
        self.nodes[b, :n], self.weights[b, :n, :n], self.scale_masks[b, :, :n, :n] = nodes, weights, scale_masks
        self.node_mask[b, :n] = True

    def arrays(self):
        return self.nodes, self.weights, self.scale_masks, self.node_mask

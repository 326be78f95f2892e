"""Per-stage timings (milliseconds per frame) kept in fixed-size rings, and their percentiles."""

from __future__ import annotations

import numpy as np

# read: pulling + resampling the frame's audio; frontend: log-mel + VGGish; graph: instance-graph
# push; mmgat: ONNX Runtime scoring; compute: frontend + graph + mmgat; output: display + sinks.
STAGES = ("read", "frontend", "graph", "mmgat", "compute", "output")
KEEP = 10_000  # frames remembered per stage: percentiles cover the last few hours at 1 hop/s


class LatencyStats:
    def __init__(self, keep: int = KEEP):
        self._values = {stage: np.zeros(keep) for stage in STAGES}
        self._added = dict.fromkeys(STAGES, 0)

    def add(self, stage: str, ms: float) -> None:
        ring = self._values[stage]
        ring[self._added[stage] % len(ring)] = ms
        self._added[stage] += 1

    def count(self, stage: str) -> int:
        return self._added[stage]

    def percentiles(self, quantiles=(50, 95, 99)) -> dict[str, dict[int, float]]:
        """{stage: {q: ms}} for the stages timed at least once."""
        report = {}
        for stage, ring in self._values.items():
            held = ring[: min(self._added[stage], len(ring))]
            if len(held):
                report[stage] = dict(zip(quantiles, np.percentile(held, quantiles).tolist()))
        return report

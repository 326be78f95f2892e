"""A stream's settings, resolved once: the window and the hop (a command's flags, else the
model's metadata) and how its instance graphs are built (the model's), checked here and passed
as one object to the Stream, its graphs, the display and mmgat-tag's engine.

Cheap to import (no numba, no ONNX Runtime): the commands check their flags with the same rules
before anything slow is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
from mmgat.model.window import check_window

MAX_PHASES = 20  # hops per frame at most (hop >= 50 ms): bounds the graphs per stream


def hop_samples(hop_s: float) -> int:
    """The hop rule: a hop must split a frame into whole hops of whole samples."""
    samples = round(hop_s * SAMPLE_RATE) if math.isfinite(hop_s) else 0
    if (samples < 1 or abs(samples - hop_s * SAMPLE_RATE) > 1e-6
            or FRAME_SAMPLES % samples or FRAME_SAMPLES // samples > MAX_PHASES):
        choices = ", ".join(f"{FRAME_SAMPLES / k / SAMPLE_RATE:g}" for k in range(1, MAX_PHASES + 1)
                            if FRAME_SAMPLES % k == 0)
        raise ValueError(f"hop must divide the {FRAME_SAMPLES / SAMPLE_RATE:g} s frame into whole "
                         f"hops ({choices} s), got {hop_s:g}")
    return samples


@dataclass(frozen=True)
class StreamSettings:
    """How one stream is framed and scored; checked when made, so its users need not."""

    window: int  # frames (seconds) in each instance graph, 1..MAX_WINDOW
    hop_s: float  # seconds between frames; frames stay 1 s long
    neighbours: int = 2  # the graph's sparsification (InstanceGraph checks it)
    similarity: str = "cosine"  # the graph's similarity (InstanceGraph checks it)
    hop_samples: int = field(init=False)  # hop_s at 16 kHz

    def __post_init__(self):
        object.__setattr__(self, "window", check_window(self.window))
        object.__setattr__(self, "hop_s", float(self.hop_s))
        object.__setattr__(self, "hop_samples", hop_samples(self.hop_s))

    @classmethod
    def for_model(cls, session, window: int | None = None, hop_s: float | None = None) -> StreamSettings:
        """`window` and `hop_s` as asked, else the model's; the graph as the model was trained
        (session: runtime.MMGATSession, whose metadata check guarantees both keys)."""
        return cls(window=session.metadata["window"] if window is None else window,
                   hop_s=session.metadata["hop"] if hop_s is None else hop_s, **session.graph)

    @property
    def phases(self) -> int:
        """Hops per frame: a stream keeps one graph per hop phase (stream.py)."""
        return FRAME_SAMPLES // self.hop_samples

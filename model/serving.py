"""How users are served a clip, as one rule for everyone who reports on it (mmgat-tag,
evaluation, the demo-clip test): a window ends at every whole second (hop 1 s), W seconds long
once it has filled, and each second's activity is its node in the LAST window that holds it,
the one that saw the most audio after it (what the live heat strip finally shows)."""

from __future__ import annotations

import numpy as np


def served_windows(length: int, window: int) -> list[tuple[int, int]]:
    """(start, end) in whole seconds of the windows scored over `length` seconds of audio."""
    return [(max(0, end - window), end) for end in range(1, length + 1)]


class LatestPerSecond:
    """Per-second rows of a stream, each taken from the last window that holds its second."""

    def __init__(self):
        self.rows: list = []

    def add(self, end: int, node_rows) -> None:
        """The rows of a window ending at whole second `end`: seconds end - n .. end - 1.
        Windows arrive in order of their end, so a later window overwrites an earlier one."""
        start = end - len(node_rows)
        if start < 0:
            raise ValueError(f"a window ending at {end} s cannot hold {len(node_rows)} seconds")
        self.rows.extend([None] * (end - len(self.rows)))
        self.rows[start:end] = list(node_rows)

    def array(self) -> np.ndarray:
        """(seconds, C): every second seen so far (a gap would be a caller's bug)."""
        if any(row is None for row in self.rows):
            raise ValueError("a second was never held by any window")
        return np.array(self.rows, dtype=np.float32)


def active_classes(classes, probs, thresholds) -> list[str]:
    """What users are shown as playing: the classes whose clip probability is at or over the
    model's threshold for it (the one rule behind `active`, the dashboard and tag labels)."""
    return [name for name, p, threshold in zip(classes, probs, thresholds) if p >= threshold]

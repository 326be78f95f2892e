"""Single-producer / single-consumer ring buffer of audio samples.

The producer is the sounddevice callback, which must never block, raise or allocate sample
storage: `write` copies into one preallocated array and, when the consumer has fallen behind,
drops what does not fit and counts it. Only the producer moves `_written` and `overruns`, only
the consumer moves `_read`; each is a single store under the GIL, so the sides need no lock.
The producer publishes `_written` after copying, so the consumer never reads a half-written block.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """`capacity` frames of `channels` float32 samples."""

    def __init__(self, capacity: int, channels: int = 1):
        if capacity < 1 or channels < 1:
            raise ValueError(f"ring buffer needs capacity and channels >= 1, got {capacity}, {channels}")
        self.capacity, self.channels = int(capacity), int(channels)
        self._data = np.zeros((self.capacity, self.channels), np.float32)
        self._written = 0  # frames ever stored (producer)
        self._read = 0  # frames ever consumed (consumer)
        self.overruns = 0  # frames dropped because the buffer was full (producer)

    def available(self) -> int:
        """Frames stored and not yet read."""
        return self._written - self._read

    def write(self, block: np.ndarray) -> int:
        """Producer: copy a (frames, channels) block in; returns the frames kept (the rest are
        dropped and counted). Only slices of the preallocated array are touched."""
        free = self.capacity - (self._written - self._read)
        count = min(len(block), free)
        start = self._written % self.capacity
        first = min(count, self.capacity - start)
        self._data[start:start + first] = block[:first]
        self._data[:count - first] = block[first:count]
        self.overruns += len(block) - count
        self._written += count
        return count

    def read(self, max_frames: int) -> np.ndarray:
        """Consumer: up to `max_frames` of the oldest frames, as a new (frames, channels) array."""
        count = max(0, min(int(max_frames), self._written - self._read))
        start = self._read % self.capacity
        first = min(count, self.capacity - start)
        out = np.concatenate((self._data[start:start + first], self._data[:count - first]))
        self._read += count
        return out

"""The worker loop: pull audio from every source, step the pipeline, hand updates to outputs.

One thread does all of it (the device callbacks run on PortAudio's thread and only fill ring
buffers). While no stream has a frame ready it sleeps until the next one is due, then polls
briefly for the last samples, so a frame is computed a few milliseconds after its last sample
arrives and the audio is read and resampled about once per hop, not continuously.
"""

from __future__ import annotations

import time
from typing import Callable

from mmgat.model.audio import SAMPLE_RATE
from mmgat.stream.pipeline import Pipeline, StreamState, Update
from mmgat.stream.resample import StreamResampler

MIN_SLEEP_S = 0.002  # a device delivers in blocks: poll again soon rather than spin


class LiveStream:
    """One input: its source, the resampler to 16 kHz mono, and its StreamState."""

    def __init__(self, source, state: StreamState):
        self.source, self.state = source, state
        self.resampler = StreamResampler(source.rate, source.channels)
        self.flushed = False  # the source ended and the resampler's tail was fed

    @property
    def done(self) -> bool:
        return (self.flushed or self.state.complete) and self.state.ready() == 0

    def pull(self) -> None:
        """Move what the source has (and the state can take) through the resampler."""
        started = time.perf_counter()
        state, source = self.state, self.source
        # The resampler may release up to `backlog` held-back samples on top of the block's own.
        room = state.room() - self.resampler.backlog
        if room > 0 and not source.finished:
            state.feed(self.resampler.feed(source.read(room * source.rate // SAMPLE_RATE)))
        if source.finished and not self.flushed and state.room() >= self.resampler.backlog:
            state.feed(self.resampler.flush())
            self.flushed = True
        state.overruns, state.input_overflows = source.overruns, source.input_overflows
        state.read_ms += (time.perf_counter() - started) * 1e3

    def seconds_to_next_frame(self) -> float:
        return max(0, self.state.samples_to_next_frame()) / SAMPLE_RATE


def run(streams: list[LiveStream], pipeline: Pipeline, emit: Callable[[Update], None]) -> None:
    """Until every stream is done (its source ended or its limit reached); Ctrl-C propagates."""
    for stream in streams:
        stream.source.start()
    while not all(stream.done for stream in streams):
        for stream in streams:
            stream.pull()
        updates = pipeline.step([stream.state for stream in streams])
        for update in updates:
            started = time.perf_counter()
            emit(update)
            update.stream.output_ms = (time.perf_counter() - started) * 1e3
            pipeline.stats.add("output", update.stream.output_ms)
        if not updates:  # at most a frame's worth (1 s): well within a device ring's RING_SECONDS
            waits = [stream.seconds_to_next_frame() for stream in streams if not stream.done]
            time.sleep(max(MIN_SLEEP_S, min(waits, default=0.0)))

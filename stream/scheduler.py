"""The one loop of `mmgat-live` and `mmgat-tag`: pull audio into every stream, step the pipeline
over all of them, hand each update to the outputs, end the streams that are done.

Every step runs on the caller's thread. Other threads only serve it: PortAudio's, where a
device's callback copies blocks into its ring buffer; ONNX Runtime's intra-op threads (with
--threads above 1); and a short-lived one that closes a device (sources.py). While no stream has
a frame ready, the loop sleeps until the next one is due, then polls briefly for the last
samples, so a live frame is computed a few milliseconds after its last sample arrives and the
audio is read and resampled about once per hop, not continuously. Unpaced sources (files in
batch) always have a frame ready, so the loop never sleeps on them.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from mmgat.model.audio import AudioError
from mmgat.stream.pipeline import Pipeline, Update
from mmgat.stream.stream import Stream

MIN_SLEEP_S = 0.002  # a device delivers in blocks: poll again soon rather than spin


def run(pipeline: Pipeline, streams: Iterable[Stream], emit: Callable[[Update], None],
        in_flight: int | None = None, ended: Callable[[Stream, AudioError | None], None] | None = None
        ) -> None:
    """Until every stream is done. Streams are taken from `streams` as they are needed, at most
    `in_flight` running at once (default: all). A stream whose source ends or whose limit is
    reached is closed and passed to `ended(stream, None)`; one whose input cannot be decoded
    (AudioError) is closed and passed to `ended(stream, error)`, or the error propagates when
    there is no `ended`. Any other error (a device lost) and Ctrl-C propagate, streams open."""
    waiting, running = iter(streams), []
    while True:
        while in_flight is None or len(running) < in_flight:
            stream = next(waiting, None)
            if stream is None:
                break
            stream.start()
            running.append(stream)
        if not running:
            return
        for stream in list(running):
            try:
                stream.pull()
            except AudioError as error:
                if ended is None:
                    raise
                running.remove(stream)
                stream.close()
                ended(stream, error)
        updates = pipeline.step(running)
        for update in updates:
            started = time.perf_counter()
            emit(update)
            pipeline.stats.add("output", (time.perf_counter() - started) * 1e3)
        for stream in [stream for stream in running if stream.done]:
            running.remove(stream)
            stream.close()
            if ended is not None:
                ended(stream, None)
        if not updates and running:  # at most a frame (1 s): well within a device ring's RING_SECONDS
            time.sleep(max(MIN_SLEEP_S, min(stream.seconds_to_next_frame() for stream in running)))

"""mmgat-tag's local engine, and what every engine shares: its options, its user error, the rows.

Every file runs through the same code as `mmgat-live --file F --as-fast-as-possible`:
`sources.open_file` (unpaced) -> `stream.Stream` -> `scheduler.run` -> `Pipeline.step`; only the
outputs differ (a row per file instead of a record per update). Several files are in flight at
once (`batch`), each its own Stream, so one `Pipeline.step` scores the ready frames of all of
them in one frontend batch and one MMGAT batch. A file's per-second rows are the pipeline's
`Update.node_probs` served as `model/serving.py` says (each second from the last window that
holds it); its clip probabilities the max over hops of `Update.probs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soundfile

from mmgat.commands.command import first_line
from mmgat.model.audio import SAMPLE_RATE, AudioError
from mmgat.model.serving import LatestPerSecond, active_classes
from mmgat.stream.options import load_pipeline
from mmgat.stream.scheduler import run
from mmgat.stream.settings import StreamSettings
from mmgat.stream.sources import open_file, too_short
from mmgat.stream.stream import Stream

TAG_HOP_S = 1.0  # one update per second of audio: per-second rows need no more
ROUND = 5  # decimals kept for probabilities (as the live JSONL sink)


class TagError(ValueError):
    """A user error: one line on stderr, exit 1."""


@dataclass
class TagOptions:
    """What an engine needs to build its runtime (plain data: it travels to Ray tasks)."""

    batch: int  # files in flight at once, sharing each Pipeline.step (mmgat-tag's --batch)
    model: str | None = None
    window: int | None = None
    cpu: bool = False
    precision: str | None = None  # default: the device's serving precision
    threads: int = 1


def stream_settings(session, options: TagOptions) -> StreamSettings:
    """A file's stream: --window, else the model's; one update per second."""
    return StreamSettings.for_model(session, window=options.window, hop_s=TAG_HOP_S)


class LocalEngine:
    """This process: the pipeline loaded once (so a bad model fails before any output is
    written), then any number of calls `engine(items, on_row)` that stream (index, path) items
    through the scheduler, `batch` files at a time, and call on_row(index, row) as each file
    ends (not in input order)."""

    def __init__(self, options: TagOptions):
        self.options = options
        self.pipeline = load_pipeline(options.model, options.cpu, options.precision, options.threads)
        self.settings = stream_settings(self.pipeline.session, options)

    def __call__(self, items, on_row) -> None:
        files = {}  # Stream -> FileTags, while in flight

        def streams():
            for index, path in items:
                try:
                    source = open_file(path, paced=False)
                except (AudioError, OSError) as error:
                    on_row(index, error_row(path, error))
                    continue
                stream = Stream(source, self.settings, name=path)
                files[stream] = FileTags(index, path, len(self.pipeline.classes))
                yield stream

        def ended(stream, error) -> None:
            file = files.pop(stream)
            on_row(file.index, file.row(stream, self.pipeline) if error is None else error_row(file.path, error))

        try:
            run(self.pipeline, streams(), lambda update: files[update.stream].add(update),
                self.options.batch, ended)
        finally:
            for stream in files:  # Ctrl-C or a fatal error mid-batch
                stream.close()


class FileTags:
    """What the updates of one file in flight have said so far."""

    def __init__(self, index: int, path: str, classes: int):
        self.index, self.path = index, path
        self.seconds = LatestPerSecond()
        self.clip = np.zeros(classes, np.float32)  # running max of the window probs
        self.updates = 0

    def add(self, update) -> None:
        if update.end_sample % SAMPLE_RATE == 0:  # a window of whole seconds: its nodes are seconds
            self.seconds.add(update.end_sample // SAMPLE_RATE, update.node_probs)
        self.clip = np.maximum(self.clip, update.probs)
        self.updates += 1

    def row(self, stream: Stream, pipeline) -> dict:
        duration = round(stream.source_seconds, 6)
        if self.updates == 0:  # the header promised a frame, the data did not hold one
            return error_row(self.path, too_short(self.path, stream.received, SAMPLE_RATE), duration)
        probs = [round(float(p), ROUND) for p in self.clip]
        return {
            "path": self.path,
            "duration": duration,
            "seconds": self.seconds.array().astype(float).round(ROUND).tolist(),
            "probs": dict(zip(pipeline.classes, probs)),
            "labels": active_classes(pipeline.classes, probs, pipeline.session.thresholds),
            "error": None,
        }


def error_row(path: str, error, duration: float | None = None) -> dict:
    if duration is None:
        try:
            duration = round(soundfile.info(path).duration, 6)
        except Exception:  # unreadable: no duration to report
            duration = None
    message = error if isinstance(error, str) else first_line(error)
    return {"path": path, "duration": duration, "seconds": None, "probs": None, "labels": None,
            "error": message}

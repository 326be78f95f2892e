"""`mmgat-tag`: tag audio files in batch on the live runtime's own pipeline.

    mmgat-tag song.flac more/ --out tags.jsonl
    mmgat-tag corpus/ --out tags.parquet --threads 2        # Parquet needs pyarrow
    mmgat-tag corpus/ --out tags.jsonl --engine ray          # Ray needs ray

Every file runs through the same code as `mmgat-live --file F --as-fast-as-possible`:
`sources.open_file` (unpaced) -> `stream.Stream` -> `scheduler.run` -> `Pipeline.step`; only the
outputs differ (a row per file instead of a record per update). Several files are in flight at
once (`--batch`), each its own Stream, so one `Pipeline.step` scores the ready frames of all of
them in one frontend batch and one MMGAT batch. The hop is 1 s (one update per second of audio).
With `--engine ray` the files are split into chunks, each a Ray task running this local engine
(on the CPU, asking Ray for `--threads` CPUs); rows come back to the driver, which writes them
(tag_extras.py: the Ray engine and the Parquet writer, the two optional dependencies).
A rich progress bar goes to stderr when it is a terminal; a one-line summary always ends the run.

One row per input file, in input order:
    path      the file as named (directories are walked: files with an extension libsndfile reads,
              dot-files and dot-directories skipped, sorted; a file named twice is tagged once)
    duration  seconds of audio in the file (null when it cannot be read at all)
    seconds   per-second probabilities: one list of 20 floats (CLASSES order) per whole second of
              audio. Second k is a node of every window that ends within W seconds after it; its
              row is the node's probabilities in the LAST such window (the one that sees the most
              audio after it: W-1 seconds, or up to the end of the file), i.e. the pipeline's
              `Update.node_probs`, the per-second activity `mmgat-live` reports under "seconds".
    probs     clip-level probabilities {class: p}: per class, the max over hops of the window
              probabilities (`Update.probs`).
    labels    classes whose clip probability >= the model's per-class threshold (its metadata).
    error     null, or one line saying why the file has no tags (unreadable, empty, shorter than
              one 1 s frame, decoding failed part way); seconds, probs and labels are then null.
A file that fails never stops the batch.

Exit status (model/command.py): 0 when every file has its row (rows may carry errors); 1 on a
user error (no inputs, bad model, unwritable output); 2 on a usage error or a missing optional
dependency (pyarrow for .parquet, ray for --engine ray); 130 on Ctrl-C or SIGTERM. The rows
finished so far are written in every case.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mmgat.model.command import (INTERRUPTED, OneLineParser, UsageError, add_common_arguments,
                                 first_line, ignore_further_signals, run_command)
from mmgat.stream.options import add_runtime_arguments, check_runtime_args, use_threads

PROG = "mmgat-tag"
TAG_HOP_SECONDS = 1.0  # one update per second of audio: per-second rows need no more
DEFAULT_BATCH = 8  # files in flight at once, sharing each Pipeline.step
ROUND = 5  # decimals kept for probabilities (as the live JSONL sink)
# File extensions per libsndfile format name (soundfile.available_formats()); RAW has no header.
EXTENSIONS = {
    "WAV": ("wav", "wave"), "WAVEX": ("wav",), "FLAC": ("flac",), "OGG": ("ogg", "oga", "opus"),
    "MP3": ("mp3",), "AIFF": ("aif", "aiff", "aifc"), "AU": ("au", "snd"), "CAF": ("caf",),
    "W64": ("w64",), "RF64": ("rf64",), "VOC": ("voc",), "SD2": ("sd2",), "PAF": ("paf",),
    "PVF": ("pvf",), "XI": ("xi",), "HTK": ("htk",), "SDS": ("sds",), "AVR": ("avr",),
    "WVE": ("wve",), "NIST": ("sph", "nist"), "IRCAM": ("sf", "ircam"), "SVX": ("svx", "8svx", "iff"),
    "MAT4": ("mat",), "MAT5": ("mat",), "MPC2K": ("mpc2k",),
}
OUTPUT_SUFFIXES = (".jsonl", ".parquet")
log = logging.getLogger("mmgat.stream.tag")  # not __name__: "__main__" under python -m


class TagError(ValueError):
    """A user error: one line on stderr, exit 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files and directories (walked)")
    parser.add_argument("--out", required=True, metavar="OUT", help="OUT.jsonl or OUT.parquet (needs pyarrow)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process; ray: chunks of files as Ray tasks (needs ray)")
    add_runtime_arguments(parser, threads_help=" (per Ray task with --engine ray)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N",
                        help=f"files in flight at once, scored together (default {DEFAULT_BATCH})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_common_arguments(parser)
    return parser


# ---------------------------------------------------------------------------------------------
# Inputs


def audio_extensions() -> frozenset[str]:
    import soundfile

    return frozenset(ext for name in soundfile.available_formats() for ext in EXTENSIONS.get(name, ()))


def expand_paths(paths) -> list[str]:
    """Files as named (whatever they hold: a bad one gets an error row) and the audio files under
    each directory; duplicates once, first place kept."""
    extensions = audio_extensions()
    found = []
    for name in map(str, paths):
        if not os.path.isdir(name):
            found.append(name)
            continue
        for root, dirs, files in os.walk(name):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, f) for f in sorted(files)
                         if not f.startswith(".") and f.rsplit(".", 1)[-1].lower() in extensions and "." in f)
    unique = {}  # the same file under two names: once, as first named
    for name in found:
        unique.setdefault(os.path.realpath(name), name)
    return list(unique.values())


# ---------------------------------------------------------------------------------------------
# The local engine


@dataclass
class Options:
    """What an engine needs to build its runtime (plain data: it travels to Ray tasks)."""

    model: str | None = None
    window: int | None = None
    cpu: bool = False
    precision: str | None = None  # default: the device's serving precision
    threads: int = 1
    batch: int = DEFAULT_BATCH


class LocalEngine:
    """This process: the pipeline loaded once (so a bad model fails before any output is
    written), then any number of calls `engine(items, on_row)` that stream (index, path) items
    through the scheduler, `batch` files at a time, and call on_row(index, row) as each file
    ends (not in input order)."""

    def __init__(self, options: Options):
        from mmgat.stream.options import load_pipeline, window_of
        from mmgat.stream.stream import hop_samples

        self.options = options
        self.pipeline = load_pipeline(options.model, options.cpu, options.precision, options.threads)
        self.window = window_of(self.pipeline, options.window)
        self.hop = hop_samples(TAG_HOP_SECONDS)

    def __call__(self, items, on_row) -> None:
        from mmgat.model.audio import AudioError
        from mmgat.stream.scheduler import run
        from mmgat.stream.sources import open_file
        from mmgat.stream.stream import Stream

        files = {}  # Stream -> FileTags, while in flight

        def streams():
            for index, path in items:
                try:
                    source = open_file(path, paced=False)
                except (AudioError, OSError) as error:
                    on_row(index, error_row(path, error))
                    continue
                stream = Stream(source, self.window, self.hop, name=path, **self.pipeline.session.graph)
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
        import numpy as np

        from mmgat.model.serving import LatestPerSecond

        self.index, self.path = index, path
        self.seconds = LatestPerSecond()
        self.clip = np.zeros(classes, np.float32)  # running max of the window probs
        self.updates = 0

    def add(self, update) -> None:
        import numpy as np

        from mmgat.model.audio import SAMPLE_RATE

        if update.end_sample % SAMPLE_RATE == 0:  # a window of whole seconds: its nodes are seconds
            self.seconds.add(update.end_sample // SAMPLE_RATE, update.node_probs)
        self.clip = np.maximum(self.clip, update.probs)
        self.updates += 1

    def row(self, stream, pipeline) -> dict:
        from mmgat.model.audio import SAMPLE_RATE
        from mmgat.model.serving import active_classes
        from mmgat.stream.sources import too_short

        duration = round(stream.source.consumed / stream.source.rate, 6)
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
        import soundfile

        try:
            duration = round(soundfile.info(path).duration, 6)
        except Exception:  # unreadable: no duration to report
            duration = None
    message = error if isinstance(error, str) else first_line(error)
    return {"path": path, "duration": duration, "seconds": None, "probs": None, "labels": None,
            "error": message}


# ---------------------------------------------------------------------------------------------
# Outputs


def open_writer(path: str):
    from mmgat.stream.sinks import JsonlSink
    from mmgat.stream.tag_extras import ParquetWriter

    return ParquetWriter(path) if Path(path).suffix.lower() == ".parquet" else JsonlSink(path)


class Ordered:
    """Rows arrive as files finish; they are written in input order."""

    def __init__(self, writer):
        self.writer = writer
        self.held, self.next = {}, 0
        self.written = self.errors = 0
        self.audio_seconds = 0.0

    def add(self, index: int, row: dict) -> None:
        self.errors += row["error"] is not None
        self.audio_seconds += row["duration"] or 0.0
        self.held[index] = row
        while self.next in self.held:
            self._write(self.held.pop(self.next))
            self.next += 1

    def close(self) -> None:
        """The finished rows still held (after an interrupt or a fatal error, a file before them
        was unfinished), then the writer."""
        for index in sorted(self.held):
            self._write(self.held.pop(index))
        self.writer.close()

    def _write(self, row: dict) -> None:
        self.writer.write(row)
        self.written += 1


# ---------------------------------------------------------------------------------------------
# The command


def progress_bar(total: int, disabled: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(stderr=True)
    progress = Progress(TextColumn("tagging"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[audio]:.0f} s audio, {task.fields[errors]} errors"),
                        console=console, disable=disabled or not console.is_terminal, transient=False)
    return progress, progress.add_task("tagging", total=total, audio=0.0, errors=0)


def check_args(args) -> None:
    from mmgat.stream import tag_extras

    check_runtime_args(args)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    suffix = Path(args.out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, got {args.out!r}")
    if suffix == ".parquet":
        tag_extras.import_pyarrow()
    if args.engine == "ray":
        tag_extras.import_ray()
    if os.path.isdir(args.out):
        raise TagError(f"--out {args.out} is a directory")


def tag(args, stop) -> int:
    from mmgat.stream.tag_extras import RayEngine

    check_args(args)
    use_threads(args.threads)
    paths = expand_paths(args.paths)
    if not paths:
        raise TagError(f"no audio files in {', '.join(args.paths)}")
    options = Options(model=args.model, window=args.window, cpu=args.cpu, precision=args.precision,
                      threads=args.threads, batch=args.batch)
    started = time.perf_counter()
    engine = (RayEngine if args.engine == "ray" else LocalEngine)(options)
    rows = Ordered(open_writer(args.out))  # only now: a bad model leaves no output behind
    progress, task = progress_bar(len(paths), args.no_progress)

    def on_row(index: int, row: dict) -> None:
        rows.add(index, row)
        progress.update(task, advance=1, audio=rows.audio_seconds, errors=rows.errors)

    interrupted = False
    try:
        with progress:
            engine(list(enumerate(paths)), on_row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        ignore_further_signals()  # a second Ctrl-C must not cut the output short
        rows.close()
    if interrupted:
        print(f"{PROG}: interrupted: wrote {rows.written} of {len(paths)} rows to {args.out}", file=sys.stderr)
        return INTERRUPTED
    log.info(f"{len(paths)} files ({rows.errors} could not be tagged), {rows.audio_seconds:.0f} s of "
             f"audio in {time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


def main(argv=None) -> int:
    return run_command(PROG, build_parser, tag, argv)


if __name__ == "__main__":
    sys.exit(main())

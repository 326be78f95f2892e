"""`mmgat-tag`: tag audio files with the instruments they hold, one row per file.

    mmgat-tag song.flac more/ --out tags.jsonl
    mmgat-tag corpus/ --out tags.parquet --threads 2        # Parquet needs pyarrow
    mmgat-tag corpus/ --out tags.jsonl --engine ray          # Ray needs ray

Each file is heard as `mmgat-live --file F --as-fast-as-possible` hears it, with one update per
second of audio; several files are scored together (--batch). With --engine ray, chunks of files
run as Ray tasks, each on the CPU with --threads threads. A progress bar goes to stderr when it
is a terminal; a one-line summary ends the run.

One row per input file, in input order:
    path      the file as named (directories are walked: files with an extension libsndfile reads,
              dot-files and dot-directories skipped, sorted; a file named twice is tagged once)
    duration  seconds of audio in the file (null when it cannot be read at all)
    seconds   per-second probabilities: one list per whole second of audio, in the order of
              `classes` (a list the first row of a .jsonl carries; the order of `probs` too).
              Second k is scored in every window of W seconds that holds it; its list is from
              the last one (which hears up to W-1 seconds after it), as the live heat strip
              finally shows it.
    probs     clip probabilities {class: p}: per class, the highest of the file's windows.
    labels    classes whose clip probability reaches the model's threshold for that class.
    error     null, or one line saying why the file has no tags (unreadable, empty, shorter than
              one second, decoding failed part way); seconds, probs and labels are then null.
A file that fails never stops the batch.

Exit status: 0 when every file has its row (rows may carry errors); 1 on a user error (no inputs,
bad model, unwritable output); 2 on a usage error or a missing optional dependency (pyarrow for
.parquet, ray for --engine ray); 130 on Ctrl-C or SIGTERM. The rows finished so far are written
in every case.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import soundfile
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from mmgat.commands.command import (INTERRUPTED, OneLineParser, UsageError, add_common_arguments,
                                 ignore_further_signals, run_command)
from mmgat.model.labels import CLASSES
from mmgat.stream.options import add_runtime_arguments, check_runtime_args, use_threads

PROG = "mmgat-tag"
DEFAULT_BATCH = 8  # files in flight at once, sharing each compute step
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
# Outputs


def open_writer(path: str):
    """Parquet, else JSONL (its first row carries the classes, as mmgat-live's first record)."""
    # Imported here, not above: with the runtime, in tag().
    from mmgat.stream.sinks import JsonlSink
    from mmgat.stream.tag_extras import ParquetWriter

    return ParquetWriter(path) if is_parquet(path) else JsonlSink(path, CLASSES)


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
    console = Console(stderr=True)
    progress = Progress(TextColumn("tagging"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                        TextColumn("{task.fields[audio]:.0f} s audio, {task.fields[errors]} errors"),
                        console=console, disable=disabled or not console.is_terminal, transient=False)
    return progress, progress.add_task("tagging", total=total, audio=0.0, errors=0)


def is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() == ".parquet"


def check_args(args) -> None:
    """Flag values that are wrong whatever the model says: checked before anything loads."""
    check_runtime_args(args)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    suffix = Path(args.out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}, got {args.out!r}")


def tag(args, stop) -> int:
    check_args(args)
    # Imported here, not above: the runtime (numba, ONNX Runtime, the frontend) takes seconds to
    # import, which usage errors and --help must not wait for.
    from mmgat.stream import tag_extras
    from mmgat.stream.tag_engine import LocalEngine, TagError, TagOptions

    if is_parquet(args.out):
        tag_extras.import_pyarrow()
    if args.engine == "ray":
        tag_extras.import_ray()
    if os.path.isdir(args.out):
        raise TagError(f"--out {args.out} is a directory")
    use_threads(args.threads)
    paths = expand_paths(args.paths)
    if not paths:
        raise TagError(f"no audio files in {', '.join(args.paths)}")
    options = TagOptions(model=args.model, window=args.window, cpu=args.cpu, precision=args.precision,
                         threads=args.threads, batch=args.batch)
    started = time.perf_counter()
    engine = (tag_extras.RayEngine if args.engine == "ray" else LocalEngine)(options)
    rows = Ordered(open_writer(args.out))  # only now: a bad model leaves no output behind
    progress, task = progress_bar(len(paths), args.no_progress or args.quiet)

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

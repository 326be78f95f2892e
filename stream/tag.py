"""`mmgat-tag`: tag audio files in batch on the live runtime's own pipeline.

    mmgat-tag song.flac more/ --out tags.jsonl
    mmgat-tag corpus/ --out tags.parquet --threads 2        # Parquet needs pyarrow
    mmgat-tag corpus/ --out tags.jsonl --engine ray          # Ray needs ray

Every file runs through the same code as `mmgat-live --file F --as-fast-as-possible`:
`sources.open_file` (unpaced) -> `runner.LiveStream` (resampling to 16 kHz mono) ->
`pipeline.StreamState` -> `Pipeline.step`. Several files are in flight at once (`--batch`), each
with its own StreamState, so one `Pipeline.step` scores the ready frames of all of them in one
frontend batch and one MMGAT batch. The hop is 1 s (one update per second of audio).
With `--engine ray` the files are split into chunks, each a Ray task running this local engine
(on the CPU, asking Ray for `--threads` CPUs); rows come back to the driver, which writes them.
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

Exit status: 0 when every file has its row (rows may carry errors); 1 on a user error (no inputs,
bad model, unwritable output); 2 on a usage error or a missing optional dependency (pyarrow for
.parquet, ray for --engine ray); 130 on Ctrl-C or SIGTERM, after writing the rows finished so far.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from mmgat.stream.cli import FRONTEND_PRECISIONS

PROG = "mmgat-tag"
TAG_HOP_SECONDS = 1.0  # one update per second of audio: per-second rows need no more
DEFAULT_BATCH = 8  # files in flight at once, sharing each Pipeline.step
ROUND = 5  # decimals kept for probabilities (as the live JSONL sink)
INTERRUPTED = 130
# File extensions per libsndfile format name (soundfile.available_formats()); RAW has no header.
EXTENSIONS = {
    "WAV": ("wav", "wave"), "WAVEX": ("wav",), "FLAC": ("flac",), "OGG": ("ogg", "oga", "opus"),
    "MP3": ("mp3",), "AIFF": ("aif", "aiff", "aifc"), "AU": ("au", "snd"), "CAF": ("caf",),
    "W64": ("w64",), "RF64": ("rf64",), "VOC": ("voc",), "SD2": ("sd2",), "PAF": ("paf",),
    "PVF": ("pvf",), "XI": ("xi",), "HTK": ("htk",), "SDS": ("sds",), "AVR": ("avr",),
    "WVE": ("wve",), "NIST": ("sph", "nist"), "IRCAM": ("sf", "ircam"), "SVX": ("svx", "8svx", "iff"),
    "MAT4": ("mat",), "MAT5": ("mat",), "MPC2K": ("mpc2k",),
}


class TagError(ValueError):
    """A user error: one line on stderr, exit 1."""


class UsageError(ValueError):
    """A usage error or a missing optional dependency: one line on stderr, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def report_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files and directories (walked)")
    parser.add_argument("--out", required=True, metavar="OUT", help="OUT.jsonl or OUT.parquet (needs pyarrow)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process; ray: chunks of files as Ray tasks (needs ray)")
    parser.add_argument("--model", metavar="PATH", help="exported MMGAT artifact (default: the shipped one)")
    parser.add_argument("--window", type=int, metavar="W", help="seconds in the graph, 1..64 "
                        "(default: the model's, else 10)")
    parser.add_argument("--cpu", action="store_true", help="run the frontend and ONNX Runtime on the CPU")
    parser.add_argument("--precision", choices=FRONTEND_PRECISIONS,
                        help="the frontend's arithmetic (default: int8 on the CPU, bf16 on CUDA)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="intra-op threads of ONNX Runtime and of a CPU frontend (per Ray task with "
                             "--engine ray; default 1)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N",
                        help=f"files in flight at once, scored together (default {DEFAULT_BATCH})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
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


class Tagger:
    """The runtime (artifact, frontend, Pipeline) and the settings every file is tagged with."""

    def __init__(self, options: Options):
        from mmgat.export.runtime import load_runtime
        from mmgat.stream.cli import DEFAULT_WINDOW
        from mmgat.stream.pipeline import Pipeline, check_window, hop_samples

        session, frontend = load_runtime(options.model, cpu=options.cpu, intra_op_threads=options.threads,
                                         precision=options.precision)
        meta = session.metadata
        self.options = options
        self.window = check_window(options.window if options.window is not None
                                   else int(meta.get("window") or DEFAULT_WINDOW))
        self.hop = hop_samples(TAG_HOP_SECONDS)
        self.graph = session.graph  # the model's neighbours and similarity
        self.classes = tuple(meta["classes"])
        self.thresholds = session.thresholds
        self.pipeline = Pipeline(session, frontend)
        self.pipeline.warm_up()

    def run(self, items):
        """(index, path) pairs -> yields (index, row) as files finish (not in input order).
        Up to `batch` files are in flight; each loop pulls every one of them (as fast as it
        decodes) and runs one Pipeline.step over all their states."""
        from mmgat.model.audio import AudioError
        from mmgat.stream.pipeline import StreamState
        from mmgat.stream.runner import LiveStream
        from mmgat.stream.sources import open_file

        queue, active = deque(items), {}  # id(StreamState) -> _File
        try:
            while queue or active:
                while queue and len(active) < self.options.batch:
                    index, path = queue.popleft()
                    try:
                        source = open_file(path, paced=False)
                    except (AudioError, OSError) as error:
                        yield index, error_row(path, error)
                        continue
                    stream = LiveStream(source, StreamState(self.window, self.hop, name=path, **self.graph))
                    source.start()
                    active[id(stream.state)] = _File(index, path, stream, len(self.classes))
                for key, file in list(active.items()):
                    try:
                        file.stream.pull()
                    except (RuntimeError, OSError, ValueError) as error:  # libsndfile: a corrupt block
                        del active[key]
                        file.close()
                        message = first_line(error) if isinstance(error, AudioError) else \
                            f"cannot decode {file.path}: {first_line(error)}"  # the source's says so already
                        yield file.index, error_row(file.path, message)
                for update in self.pipeline.step([file.stream.state for file in active.values()]):
                    active[id(update.stream)].add(update)
                for key, file in list(active.items()):
                    if file.stream.done:
                        del active[key]
                        file.close()
                        yield file.index, file.row(self.classes, self.thresholds)
        finally:
            for file in active.values():
                file.close()


class _File:
    """One file in flight: its LiveStream and what its updates have said so far."""

    def __init__(self, index: int, path: str, stream, classes: int):
        import numpy as np

        from mmgat.model.serving import LatestPerSecond

        self.index, self.path, self.stream = index, path, stream
        self.seconds = LatestPerSecond()
        self.clip = np.zeros(classes, np.float32)  # running max of the window probs
        self.updates = 0

    def add(self, update) -> None:
        import numpy as np

        self.seconds.add(round(update.t), update.node_probs)  # hop 1 s: t is a whole second
        self.clip = np.maximum(self.clip, update.probs)
        self.updates += 1

    def row(self, classes, thresholds) -> dict:
        from mmgat.export.runtime import active_classes
        from mmgat.model.audio import SAMPLE_RATE
        from mmgat.stream.sources import too_short

        source = self.stream.source
        duration = round(source.consumed / source.rate, 6)
        if self.updates == 0:  # the header promised a frame, the data did not hold one
            return error_row(self.path, too_short(self.path, self.stream.state.received, SAMPLE_RATE), duration)
        probs = [round(float(p), ROUND) for p in self.clip]
        return {
            "path": self.path,
            "duration": duration,
            "seconds": self.seconds.array().astype(float).round(ROUND).tolist(),
            "probs": dict(zip(classes, probs)),
            "labels": active_classes(classes, probs, thresholds),
            "error": None,
        }

    def close(self) -> None:
        self.stream.source.close()


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


def tag_chunk(items, options: dict) -> list:
    """A Ray task: the local engine over a chunk of (index, path). A user error (bad model) comes
    back as ("fatal", message) rather than a remote traceback."""
    use_threads(options["threads"])  # this Ray worker process is ours while the task runs
    try:
        tagger = Tagger(Options(**options))
    except (ValueError, OSError) as error:
        return [("fatal", first_line(error))]
    return list(tagger.run(items))


# ---------------------------------------------------------------------------------------------
# Engines: engine(options) loads or checks the runtime (so a bad model fails before any output
# is written) and returns run(items, on_row), which calls on_row(index, row) for every file.


def local_engine(options: Options):
    tagger = Tagger(options)

    def run(items, on_row) -> None:
        for index, row in tagger.run(items):
            on_row(index, row)
    return run


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed: pip install ray "
                         "(or use --engine local)") from None
    return ray


def ray_engine(options: Options):
    """Chunks of files as Ray tasks, each running the local engine on the CPU with `threads`
    threads (and asking Ray for that many CPUs; one GPU is better used by the local engine's
    batches than shared by many tasks). The model is checked here first."""
    ray = import_ray()
    model = str(Path(options.model).resolve()) if options.model else None
    options = Options(**{**asdict(options), "model": model, "cpu": True})
    Tagger(options)
    return lambda items, on_row: run_ray(ray, items, options, on_row)


def run_ray(ray, items, options: Options, on_row) -> None:
    named = dict(items)  # rows carry the paths as named; the tasks get absolute ones
    absolute = [(index, str(Path(path).resolve())) for index, path in items]
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, logging_level="ERROR")
    workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // options.threads)
    size = max(1, min(32, math.ceil(len(items) / (4 * workers))))  # ~4 chunks per worker: balance
    task = ray.remote(num_cpus=options.threads)(tag_chunk)
    pending = {task.remote(absolute[start:start + size], asdict(options)): start
               for start in range(0, len(absolute), size)}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                del pending[ref]
                try:
                    rows = ray.get(ref)
                except ray.exceptions.RayError as error:  # a worker died, the task was lost, ...
                    raise TagError(f"a Ray task failed: {first_line(error)}") from None
                for index, row in rows:
                    if index == "fatal":
                        raise TagError(row)
                    on_row(index, {**row, "path": named[index]})
    finally:
        for ref in pending:  # Ctrl-C or a fatal error: stop the rest
            ray.cancel(ref, force=True)


# ---------------------------------------------------------------------------------------------
# Outputs


class JsonlWriter:
    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "w", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row, separators=(",", ":")) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("writing .parquet needs pyarrow, which is not installed: pip install pyarrow "
                         "(or write .jsonl)") from None
    return pyarrow


class ParquetWriter:
    """Rows held until close (a Parquet file is written whole)."""

    def __init__(self, path: str):
        from mmgat.model.labels import CLASSES

        pa = import_pyarrow()
        self.path, self.rows = path, []
        self.schema = pa.schema([
            ("path", pa.string()), ("duration", pa.float64()),
            ("seconds", pa.list_(pa.list_(pa.float32()))),
            ("probs", pa.struct([(name, pa.float32()) for name in CLASSES])),
            ("labels", pa.list_(pa.string())), ("error", pa.string())])
        folder = Path(path).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):  # fail now, not after the batch
            raise TagError(f"cannot write {path}: {folder} is not a writable directory")

    def write(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pa = import_pyarrow()
        pa.parquet.write_table(pa.Table.from_pylist(self.rows, schema=self.schema), self.path)


def open_writer(path: str):
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return JsonlWriter(path)
    if suffix == ".parquet":
        return ParquetWriter(path)
    raise UsageError(f"--out must end in .jsonl or .parquet, got {path!r}")


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

    def drain(self) -> None:
        """After an interrupt: the finished rows still held (a file before them was unfinished)."""
        for index in sorted(self.held):
            self._write(self.held.pop(index))

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
    from mmgat.stream.pipeline import check_window

    if args.window is not None:
        try:
            check_window(args.window)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if Path(args.out).suffix.lower() not in (".jsonl", ".parquet"):
        raise UsageError(f"--out must end in .jsonl or .parquet, got {args.out!r}")
    if Path(args.out).suffix.lower() == ".parquet":
        import_pyarrow()
    if args.engine == "ray":
        import_ray()
    if os.path.isdir(args.out):
        raise TagError(f"--out {args.out} is a directory")


def use_threads(threads: int) -> None:
    """torch's CPU threads for this process: as mmgat-live, torch would take every core."""
    import torch

    torch.set_num_threads(threads)


def tag(args) -> int:
    from mmgat.stream.cli import ignore_further_signals, signals_interrupt

    check_args(args)
    use_threads(args.threads)
    paths = expand_paths(args.paths)
    if not paths:
        raise TagError(f"no audio files in {', '.join(args.paths)}")
    options = Options(model=args.model, window=args.window, cpu=args.cpu, precision=args.precision, threads=args.threads,
                      batch=args.batch)
    started = time.perf_counter()
    interrupted = False
    with signals_interrupt():
        writer = None
        try:
            run = (ray_engine if args.engine == "ray" else local_engine)(options)
            writer = open_writer(args.out)  # only now: a bad model leaves no output behind
            rows = Ordered(writer)
            progress, task = progress_bar(len(paths), args.no_progress)

            def on_row(index: int, row: dict) -> None:
                rows.add(index, row)
                progress.update(task, advance=1, audio=rows.audio_seconds, errors=rows.errors)

            with progress:
                try:
                    run(list(enumerate(paths)), on_row)
                except KeyboardInterrupt:
                    interrupted = True
        finally:
            ignore_further_signals()  # a second Ctrl-C must not cut the output short
            if writer is not None:
                if interrupted:
                    rows.drain()
                if interrupted or rows.written == len(paths):
                    writer.close()
                elif isinstance(writer, JsonlWriter):  # a fatal error: the rows written stay
                    writer.file.close()
    elapsed = time.perf_counter() - started
    if interrupted:
        print(f"{PROG}: interrupted: wrote {rows.written} of {len(paths)} rows to {args.out}", file=sys.stderr)
        return INTERRUPTED
    print(f"{PROG}: {len(paths)} files ({rows.errors} could not be tagged), {rows.audio_seconds:.0f} s of "
          f"audio in {elapsed:.1f} s -> {args.out}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    try:
        return tag(build_parser().parse_args(argv))
    except UsageError as error:
        report_error(first_line(error))
        return 2
    except KeyboardInterrupt:  # before tagging began (e.g. while the model loaded)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ValueError, OSError) as error:  # user errors: every module raises ValueError subclasses
        report_error(first_line(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""mmgat-tag's two optional dependencies, each imported only when asked for (they are slow to
import and seldom installed): the Ray engine (`--engine ray`, needs ray) and the Parquet writer
(`--out X.parquet`, needs pyarrow)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from mmgat.commands.command import UsageError, first_line
from mmgat.model.labels import CLASSES
from mmgat.stream.options import check_model, use_threads
from mmgat.stream.tag_engine import LocalEngine, TagError, TagOptions, stream_settings


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed: pip install ray "
                         "(or use --engine local)") from None
    return ray


def import_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("writing .parquet needs pyarrow, which is not installed: pip install pyarrow "
                         "(or write .jsonl)") from None
    return pyarrow


def tag_chunk(items, options: dict) -> list:
    """A Ray task: the local engine over a chunk of (index, path) -> [(index, row)]. A user error
    (a bad model) raises here and reaches the driver as the cause of Ray's error."""
    use_threads(options["threads"])  # this Ray worker process is ours while the task runs
    rows = []
    LocalEngine(TagOptions(**options))(items, lambda index, row: rows.append((index, row)))
    return rows


class RayEngine:
    """Chunks of files as Ray tasks, each running the local engine on the CPU with `threads`
    threads (and asking Ray for that many CPUs; one GPU is better used by the local engine's
    batches than shared by many tasks). The model and the stream settings are checked here first,
    without loading the frontend (a frontend that does not match fails in the first task)."""

    def __init__(self, options: TagOptions):
        self.ray = import_ray()
        model = str(Path(options.model).resolve()) if options.model else None
        self.options = TagOptions(**{**asdict(options), "model": model, "cpu": True})
        stream_settings(check_model(self.options.model, cpu=True), self.options)

    def __call__(self, items, on_row) -> None:
        ray, options = self.ray, self.options
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
                    for index, row in self._rows(ref):
                        on_row(index, {**row, "path": named[index]})
        finally:
            for ref in pending:  # Ctrl-C or a fatal error: stop the rest
                ray.cancel(ref, force=True)

    def _rows(self, ref) -> list:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as error:  # a task raised, a worker died, ...
            cause = getattr(error, "cause", None)
            if isinstance(cause, (ValueError, OSError)):  # a user error, as the local engine says it
                raise TagError(first_line(cause)) from None
            raise TagError(f"a Ray task failed: {first_line(error)}") from None


class ParquetWriter:
    """Rows held until close (a Parquet file is written whole)."""

    def __init__(self, path: str):
        pa = import_pyarrow()
        self.path, self.rows = path, []
        self.schema = pa.schema([
            ("path", pa.string()), ("duration", pa.float64()),
            ("seconds", pa.list_(pa.list_(pa.float32()))),
            ("probs", pa.struct([(name, pa.float32()) for name in CLASSES])),
            ("labels", pa.list_(pa.string())), ("error", pa.string())],
            metadata={"classes": json.dumps(CLASSES)})  # the order of every `seconds` row
        folder = Path(path).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):  # fail now, not after the batch
            raise TagError(f"cannot write {path}: {folder} is not a writable directory")

    def write(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pa = import_pyarrow()
        pa.parquet.write_table(pa.Table.from_pylist(self.rows, schema=self.schema), self.path)

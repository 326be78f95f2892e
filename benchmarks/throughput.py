"""Offline throughput: `mmgat-tag` over a folder of files, in seconds of audio per second of wall
time, beside the bare batched frontend forward on the same audio held in memory, in one run.

    python benchmarks/throughput.py FOLDER --json benchmarks/results/throughput.json [--files 200]

Both run where mmgat-tag runs (CUDA when present, unless `--cpu`), in the serving precision (or
`--precision`), with `--threads` threads. Model load and the first file (numba compilation,
kernel selection) are timed apart and not counted.
Goal: mmgat-tag >= 0.9 x the bare forward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mmgat.model.audio import SAMPLE_RATE, load_audio, split_frames
from mmgat.stream.options import FRONTEND_PRECISIONS
from mmgat.stream.tag import expand_paths
from mmgat.stream.tag_engine import LocalEngine, TagOptions

from machine import machine, processor, save
from mmgat_ort import artifact

BARE_BATCH = 64
GOAL = 0.9


def bare_forward(frontend, paths: list[str]) -> dict:
    """The frontend alone on every whole second of the files, decoded beforehand, 64 at a time."""
    frames = np.concatenate([split_frames(load_audio(path)) for path in paths])
    started = time.perf_counter()
    for first in range(0, len(frames), BARE_BATCH):
        frontend.embed(frames[first:first + BARE_BATCH])
    wall = time.perf_counter() - started
    return {"audio_s": len(frames), "wall_s": wall, "x_real_time": len(frames) / wall}


def tag(engine: LocalEngine, paths: list[str]) -> dict:
    rows = []
    started = time.perf_counter()
    engine(list(enumerate(paths)), lambda index, row: rows.append(row))
    wall = time.perf_counter() - started
    errors = [row["error"] for row in rows if row["error"]]
    if errors:
        raise SystemExit(f"throughput: {len(errors)} file(s) failed, e.g. {errors[0]}")
    audio = sum(row["duration"] for row in rows)
    return {"audio_s": audio, "wall_s": wall, "x_real_time": audio / wall}


def measure(model: Path, paths: list[str], cpu: bool, threads: int, batch: int,
            precision: str | None) -> dict:
    started = time.perf_counter()
    engine = LocalEngine(TagOptions(model=str(model), cpu=cpu, precision=precision, threads=threads,
                                    batch=batch))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    engine([(0, paths[0])], lambda index, row: None)
    first_file_s = time.perf_counter() - started
    frontend = engine.pipeline.frontend
    bare = bare_forward(frontend, paths)
    tagged = tag(engine, paths)
    return {"files": len(paths), "device": str(frontend.device), "precision": frontend.precision,
            "batch_files": batch, "model_load_s": load_s, "first_file_s": first_file_s, "bare_frontend": bare,
            "mmgat_tag": tagged, "ratio": tagged["x_real_time"] / bare["x_real_time"],
            "goal_ratio": GOAL, "sample_rate": SAMPLE_RATE}


def show(report: dict, console: Console) -> None:
    table = Table(title=f"offline throughput, {report['files']} files, {report['precision']}: "
                        f"{processor(report)}, {report['threads']} thread(s)")
    for column in ("path", "audio s", "wall s", "x real time"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, key in (("bare frontend, batch 64, audio in memory", "bare_frontend"),
                      ("mmgat-tag (decode, resample, graph, MMGAT, rows)", "mmgat_tag")):
        r = report[key]
        table.add_row(name, f"{r['audio_s']:.0f}", f"{r['wall_s']:.2f}", f"{r['x_real_time']:.0f}")
    console.print(table)
    console.print(f"mmgat-tag / bare = {report['ratio']:.2f} (goal >= {GOAL}); model load "
                  f"{report['model_load_s']:.1f} s, first file {report['first_file_s']:.1f} s "
                  "(not counted)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="audio files to tag (walked as mmgat-tag walks it)")
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one)")
    parser.add_argument("--files", type=int, default=200, help="tag the first N files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="as mmgat-tag --batch")
    parser.add_argument("--precision", choices=FRONTEND_PRECISIONS, help="as mmgat-tag --precision")
    parser.add_argument("--cpu", action="store_true", help="as mmgat-tag --cpu")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    paths = expand_paths([args.folder])[: args.files]
    if not paths:
        raise SystemExit(f"throughput: no audio files in {args.folder}")
    report = {"benchmark": "throughput", "model": str(artifact(args.model)), "folder": args.folder,
              "threads": args.threads, "machine": machine(),
              **measure(artifact(args.model), paths, args.cpu, args.threads, args.batch,
                        args.precision)}
    save(report, args.json)
    show(report, Console(width=max(100, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

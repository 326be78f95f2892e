"""MMGAT scoring time per window with ONNX Runtime on the CPU (batch 1, 1 intra-op thread),
at W = 10 and 64, for the shipped model or a seeded random one of the same architecture.

    python benchmarks/mmgat_ort.py --json benchmarks/results/mmgat_ort.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from machine import machine, save


def artifact(model_arg: str | None) -> Path:
    from mmgat.export.runtime import DEFAULT_MODEL

    if model_arg:
        return Path(model_arg)
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    from mmgat.export.onnx import export_checkpoint
    from mmgat.model.checkpoint import random_checkpoint

    directory = Path(tempfile.mkdtemp())
    return export_checkpoint(random_checkpoint(directory), directory / "random.onnx")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--model", help="artifact to time (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from mmgat.export.runtime import MMGATSession
    from mmgat.model.graph import InstanceGraph

    path = artifact(args.model)
    session = MMGATSession(path, cpu=True, intra_op_threads=args.threads)
    results = {}
    for window in (10, 64):
        graph = InstanceGraph(window, **session.graph)
        for x in np.random.default_rng(window).standard_normal((window, 128)).astype(np.float32):
            graph.push(x)
        inputs = (graph.nodes[None], graph.weights[None], graph.scale_masks[None],
                  np.ones((1, window), bool))
        for _ in range(20):
            session.score(*inputs)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            session.score(*inputs)
            times.append((time.perf_counter() - start) * 1e3)
        results[f"W={window}"] = {"p50_ms": float(np.percentile(times, 50)),
                                  "p99_ms": float(np.percentile(times, 99)),
                                  "mean_ms": float(np.mean(times))}
    table = Table(title=f"MMGAT ONNX Runtime, {session.provider}, {args.threads} thread(s)")
    for column in ("window", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="right")
    for window, figures in results.items():
        table.add_row(window, *(f"{figures[k]:.3f}" for k in ("p50_ms", "p99_ms", "mean_ms")))
    Console().print(table)
    report = {"benchmark": "mmgat_ort", "model": str(path), "provider": session.provider,
              "threads": args.threads, "results": results, "machine": machine()}
    if args.json:
        save(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the per-hop graph and MMGAT costs scale with the window W (1 to 64 instances), on the CPU.

(a) Graph update: one incremental InstanceGraph push plus reading its outputs (what the live
    pipeline does every hop) against graph_push.py's numpy rebuild of the same outputs from the
    last W instances, interleaved push by push over a full sliding window.
(b) MMGAT scoring of one full window at batch 1: ONNX Runtime (MMGATSession.score, 1 intra-op
    thread) against the torch module (model.scorer.Scorer: what the artifact computes, 1 torch
    thread), interleaved call by call on the same graph.
p50 / p99 ms per W for each, one thread each (BLAS too), as on a live worker.

    python benchmarks/window_scaling.py --json OUT.json [--model MODEL.onnx] [--checkpoint CKPT]
                                        [--pushes 3000] [--repeats 1000]

Without --model it uses the shipped artifact, or else the seeded test artifact. An artifact does
not record its checkpoint: without --checkpoint the torch side is a seeded random checkpoint
(mmgat.model.checkpoint.random_checkpoint, as the tests use) of the default MMGATConfig, the
shipped architecture: the same cost, not the same outputs.
"""

from __future__ import annotations

from graph_push import NEIGHBOURS, time_window  # first: it pins BLAS to one thread before numpy loads

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mmgat.model.scorer import Scorer
from mmgat.export.runtime import MMGATSession
from mmgat.model.audio import EMBED_DIM
from mmgat.model.checkpoint import load_checkpoint, random_checkpoint
from mmgat.model.graph import InstanceGraph

from live_latency import percentiles
from machine import machine, save
from mmgat_ort import artifact  # the shipped model, else the tests' seeded one

WINDOWS = (1, 2, 4, 8, 10, 16, 32, 64)
THREADS = 1
WARMUP_CALLS = 20  # first calls at a new size allocate and pick kernels
MEASURES = {"graph_push": "numba push", "graph_rebuild": "numpy rebuild",
            "mmgat_ort": "MMGAT ORT", "mmgat_torch": "MMGAT torch"}


def torch_scorer(checkpoint: str | None) -> tuple[Scorer, str]:
    """The torch module to time, and where its weights came from."""
    if checkpoint:
        model, _ = load_checkpoint(checkpoint)
        return Scorer(model).eval(), str(checkpoint)
    with tempfile.TemporaryDirectory() as scratch:
        model, _ = load_checkpoint(random_checkpoint(Path(scratch)))
    return Scorer(model).eval(), "seeded random checkpoint of the default MMGATConfig (timing only)"


def time_graph(window: int, pushes: int) -> dict[str, np.ndarray]:
    """ms per push, incremental and rebuilt, set up as graph_push.py does."""
    warmup = 2 * window  # fill the window and settle caches before timing
    stream = np.random.default_rng(window).standard_normal((warmup + pushes, EMBED_DIM)).astype(np.float32)
    ns = time_window(window, stream, warmup)
    return {"graph_push": np.asarray(ns["push_and_read"]) / 1e6, "graph_rebuild": np.asarray(ns["rebuild"]) / 1e6}


@torch.inference_mode()
def time_scoring(session: MMGATSession, scorer: Scorer, window: int, repeats: int) -> dict[str, list[float]]:
    """ms per batch-1 score of one full window, ORT and torch interleaved on the same inputs."""
    graph = InstanceGraph(window, **session.graph)
    for x in np.random.default_rng(window).standard_normal((window, EMBED_DIM)).astype(np.float32):
        graph.push(x)
    inputs = (graph.nodes[None], graph.weights[None], graph.scale_masks[None], np.ones((1, window), bool))
    tensors = [torch.from_numpy(np.array(a)) for a in inputs]  # copies: the graph's views are read-only
    times = {"mmgat_ort": [], "mmgat_torch": []}
    for call in range(WARMUP_CALLS + repeats):
        started = time.perf_counter()
        session.score(*inputs)
        scored = time.perf_counter()
        scorer(*tensors)
        done = time.perf_counter()
        if call >= WARMUP_CALLS:
            times["mmgat_ort"].append((scored - started) * 1e3)
            times["mmgat_torch"].append((done - scored) * 1e3)
    return times


def show(report: dict, console: Console) -> None:
    info = report["machine"]
    table = Table(title=f"Per-hop cost against the window W, ms, batch 1, {report['threads']} thread: "
                        f"{info['cpu']}, {info['cores']} cores")
    table.add_column("W", justify="right")
    for name in MEASURES.values():
        table.add_column(f"{name} p50", justify="right")
        table.add_column("p99", justify="right")
    for result in report["results"]:
        table.add_row(str(result["window"]), *(f"{result[f'{measure}_ms'][q]:.3f}"
                                               for measure in MEASURES for q in ("p50", "p99")))
    console.print(table)
    console.print(f"torch model: {report['torch_model']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one, else the seeded test artifact)")
    parser.add_argument("--checkpoint", help="the MMGAT checkpoint the artifact was exported from "
                                             "(default: a seeded random one of the same architecture)")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--pushes", type=int, default=3000, help="timed graph pushes per window")
    parser.add_argument("--repeats", type=int, default=1000, help="timed MMGAT calls per window")
    args = parser.parse_args(argv)

    torch.set_num_threads(THREADS)
    model = artifact(args.model)
    session = MMGATSession(model, cpu=True, intra_op_threads=THREADS)
    scorer, torch_model = torch_scorer(args.checkpoint)
    results = []
    for window in args.windows:
        times = {**time_graph(window, args.pushes), **time_scoring(session, scorer, window, args.repeats)}
        results.append({"window": window, **{f"{measure}_ms": percentiles(times[measure]) for measure in MEASURES}})
    report = {"benchmark": "window_scaling", "model": str(model), "provider": session.provider,
              "torch_model": torch_model, "threads": THREADS, "neighbours": NEIGHBOURS, "dim": EMBED_DIM,
              "pushes": args.pushes, "repeats": args.repeats,
              "machine": {**machine(), "blas_threads": os.environ["OPENBLAS_NUM_THREADS"]}, "results": results}
    save(report, args.json)
    show(report, Console(width=max(120, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

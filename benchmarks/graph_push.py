"""One incremental InstanceGraph push vs a from-scratch numpy rebuild of the same outputs.

Per window W: the median time of `push` plus reading `nodes`, `weights` and `scale_masks` (what
the live pipeline does every hop), against a vectorised numpy rebuild of those outputs from
the last W raw instances (normalise, W x W similarity, stable argsort top-m, matrix-product
hops). Both start from a full window and keep sliding it.

    python benchmarks/graph_push.py --json OUT.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import numba
import numpy as np
from rich.console import Console
from rich.table import Table

from mmgat.model.audio import EMBED_DIM
from mmgat.model.graph import InstanceGraph

WINDOWS = (10, 30, 60)
NEIGHBOURS = 2


def rebuild(window_nodes: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """The naive way: every output from scratch, vectorised."""
    x = window_nodes.astype(np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = np.maximum(unit @ unit.T, 0.0)
    np.fill_diagonal(sim, 1.0)
    sim = sim.astype(np.float32)
    weights = (sim / sim.sum(1, keepdims=True, dtype=np.float64)).astype(np.float32)
    candidates = sim.copy()
    np.fill_diagonal(candidates, -1.0)
    chosen = np.argsort(-candidates, axis=1, kind="stable")[:, :neighbours]
    adjacency = np.eye(len(x), dtype=bool)
    np.put_along_axis(adjacency, chosen, True, axis=1)
    adjacency |= adjacency.T
    one_hop = adjacency.astype(np.float32)
    two_hops = one_hop @ one_hop > 0
    three_hops = two_hops.astype(np.float32) @ one_hop > 0
    return weights, np.stack((adjacency, two_hops, three_hops))


def time_incremental(window: int, stream: np.ndarray, warmup: int) -> tuple[list[int], list[int]]:
    graph = InstanceGraph(window, EMBED_DIM, NEIGHBOURS)
    push_only, push_and_read = [], []
    for k, x in enumerate(stream):
        start = time.perf_counter_ns()
        graph.push(x)
        pushed = time.perf_counter_ns()
        graph.nodes, graph.weights, graph.scale_masks  # noqa: B018 - what the runtime reads
        done = time.perf_counter_ns()
        if k >= warmup:
            push_only.append(pushed - start)
            push_and_read.append(done - start)
    return push_only, push_and_read


def time_rebuild(window: int, stream: np.ndarray, warmup: int) -> list[int]:
    window_nodes = np.zeros((window, EMBED_DIM), np.float32)
    times = []
    for k, x in enumerate(stream):
        start = time.perf_counter_ns()
        window_nodes[:-1] = window_nodes[1:]  # slide the window, oldest first
        window_nodes[-1] = x
        rebuild(window_nodes[-min(k + 1, window):], NEIGHBOURS)
        done = time.perf_counter_ns()
        if k >= warmup:
            times.append(done - start)
    return times


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--pushes", type=int, default=3000, help="timed pushes per window")
    args = parser.parse_args()

    results = []
    for window in WINDOWS:
        warmup = 2 * window  # fill the window and settle caches before timing
        stream = np.random.default_rng(window).standard_normal((warmup + args.pushes, EMBED_DIM)).astype(np.float32)
        push_only, push_and_read = time_incremental(window, stream, warmup)
        rebuilt = time_rebuild(window, stream, warmup)
        incremental_us = np.median(push_and_read) / 1e3
        rebuild_us = np.median(rebuilt) / 1e3
        results.append({
            "window": window, "dim": EMBED_DIM, "neighbours": NEIGHBOURS, "pushes": args.pushes,
            "push_us": round(np.median(push_only) / 1e3, 2),
            "push_and_read_us": round(incremental_us, 2),
            "push_and_read_p99_us": round(np.percentile(push_and_read, 99) / 1e3, 2),
            "rebuild_us": round(rebuild_us, 2),
            "rebuild_p99_us": round(np.percentile(rebuilt, 99) / 1e3, 2),
            "speedup": round(rebuild_us / incremental_us, 1),
        })

    table = Table(title=f"InstanceGraph push vs numpy rebuild (d={EMBED_DIM}, m={NEIGHBOURS}, median µs)")
    for column in ("W", "push", "push + read", "p99", "rebuild", "p99", "speedup"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r["window"]), f"{r['push_us']:.1f}", f"{r['push_and_read_us']:.1f}",
                      f"{r['push_and_read_p99_us']:.1f}", f"{r['rebuild_us']:.1f}",
                      f"{r['rebuild_p99_us']:.1f}", f"{r['speedup']:.1f}x")
    console = Console()
    console.print(table)
    info = machine()
    console.print(f"{info['cpu']}, {info['cores']} cores, {info['platform']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"benchmark": "graph_push", "machine": info, "results": results}, out, indent=2)


if __name__ == "__main__":
    main()

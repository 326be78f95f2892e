"""One incremental InstanceGraph push vs a from-scratch numpy rebuild of the same outputs.

Per window W: the median time of `push` plus reading `nodes`, `weights` and `scale_masks` (what
the live pipeline does every hop), against a vectorised numpy rebuild of those outputs from
the last W raw instances (normalise, W x W similarity, stable argsort top-m, matrix-product
hops). Both slide a full window (the first 2 W pushes are warm-up). The two run interleaved, push
by push, so both see the same load on a shared machine and each other's cache traffic, as the
live worker's other stages would cause. BLAS runs one thread, as on the live worker (at these
sizes more threads only add jitter to the rebuild).

    python benchmarks/graph_push.py --json OUT.json
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy loads BLAS

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from mmgat.model.audio import EMBED_DIM  # noqa: E402
from mmgat.model.graph import InstanceGraph  # noqa: E402

from machine import machine, save  # noqa: E402

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


def time_window(window: int, stream: np.ndarray, warmup: int) -> dict[str, list[int]]:
    """Nanoseconds per push, both ways, interleaved so both see the same (shared) machine."""
    graph = InstanceGraph(window, EMBED_DIM, NEIGHBOURS)
    window_nodes = np.zeros((window, EMBED_DIM), np.float32)
    times = {"push": [], "push_and_read": [], "rebuild": []}
    for k, x in enumerate(stream):
        start = time.perf_counter_ns()
        graph.push(x)
        pushed = time.perf_counter_ns()
        graph.nodes, graph.weights, graph.scale_masks  # noqa: B018 - what the runtime reads
        read = time.perf_counter_ns()
        window_nodes[:-1] = window_nodes[1:]  # slide the window, oldest first
        window_nodes[-1] = x
        rebuild(window_nodes[-min(k + 1, window):], NEIGHBOURS)
        rebuilt = time.perf_counter_ns()
        if k >= warmup:
            times["push"].append(pushed - start)
            times["push_and_read"].append(read - start)
            times["rebuild"].append(rebuilt - read)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--pushes", type=int, default=3000, help="timed pushes per window")
    args = parser.parse_args()

    results = []
    for window in WINDOWS:
        warmup = 2 * window  # fill the window and settle caches before timing
        rng = np.random.default_rng(window)
        stream = rng.standard_normal((warmup + args.pushes, EMBED_DIM)).astype(np.float32)
        times = time_window(window, stream, warmup)
        median_us = {name: np.median(ns) / 1e3 for name, ns in times.items()}
        results.append({
            "window": window, "dim": EMBED_DIM, "neighbours": NEIGHBOURS, "pushes": args.pushes,
            "push_us": round(median_us["push"], 2),
            "push_and_read_us": round(median_us["push_and_read"], 2),
            "push_and_read_p99_us": round(np.percentile(times["push_and_read"], 99) / 1e3, 2),
            "rebuild_us": round(median_us["rebuild"], 2),
            "rebuild_p99_us": round(np.percentile(times["rebuild"], 99) / 1e3, 2),
            "speedup": round(median_us["rebuild"] / median_us["push_and_read"], 1),
        })

    table = Table(title=f"InstanceGraph push vs numpy rebuild "
                        f"(d={EMBED_DIM}, m={NEIGHBOURS}, median µs)")
    for column in ("W", "push", "push + read", "p99", "rebuild", "p99", "speedup"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r["window"]), f"{r['push_us']:.1f}", f"{r['push_and_read_us']:.1f}",
                      f"{r['push_and_read_p99_us']:.1f}", f"{r['rebuild_us']:.1f}",
                      f"{r['rebuild_p99_us']:.1f}", f"{r['speedup']:.1f}x")
    console = Console()
    console.print(table)
    info = {**machine(), "blas_threads": os.environ["OPENBLAS_NUM_THREADS"]}
    console.print(f"{info['cpu']}, {info['cores']} cores, {info['platform']}")
    if args.json:
        save({"benchmark": "graph_push", "machine": info, "results": results}, args.json)


if __name__ == "__main__":
    main()

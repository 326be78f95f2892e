"""Live capacity: how many concurrent streams at hop 1 s, W=10 one process sustains on this CPU
with p99 hop latency < 1 s.

N simulated microphones (no audio devices): stream s receives its next 16,000 samples of noise
(from a fixed pre-generated array) each second, at its own phase s/N of the second, as
independent microphones would. One loop wakes every --tick seconds, feeds every stream what has
become due and calls Pipeline.step on all of them: the ready frames of all streams go through one
frontend batch and one MMGAT batch per tick. Per frame: wall time from when its last sample
became due to when its Update came back (the wait for the tick included). The graphs start full
(W pushes of noise embeddings), so every frame scores a full window without W seconds of filling;
the first 2 s of each N are not measured (new batch sizes pick their kernels).

N grows through --streams until a run misses: p99 >= 1 s, or a lag that still grows (by more
than 1 s a minute, first third of the run against the last), or a frame 4 s late (the run stops
there). max_streams = the largest N that kept up. Goal: >= 100.

    python benchmarks/capacity.py --json OUT.json [--model MODEL.onnx] [--streams 1 10 25 ...]
                                  [--seconds 15] [--tick 0.1] [--threads 2]

Without --model it uses the shipped artifact, or else the seeded test artifact (same cost).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mmgat.export.runtime import load_runtime
from mmgat.model.audio import FRAME_SAMPLES
from mmgat.stream.pipeline import Pipeline
from mmgat.stream.settings import StreamSettings
from mmgat.stream.stream import Stream

from live_latency import percentiles
from machine import machine, save
from mmgat_ort import artifact  # the shipped model, else the tests' seeded one

WINDOW = 10
HOP_S = 1.0  # one frame of new audio per stream per second
STREAMS = (1, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500)
GOAL_STREAMS = 100
BUDGET_MS = 1000.0  # p99 hop latency must stay under one hop
WARMUP_S = 2
GIVE_UP_S = 4.0  # a frame this late decides the run (and stays within a stream's 8 s buffer)
MAX_LAG_GROWTH_MS_PER_S = BUDGET_MS / 60  # a lag that would grow by a whole hop every minute
NOISE_SECONDS = 10


def run_streams(pipeline: Pipeline, count: int, seconds: int, tick: float, noise: np.ndarray,
                full_window: np.ndarray) -> dict:
    """`count` paced streams for WARMUP_S + `seconds` seconds each, stepped every `tick`."""
    states = [Stream.fed(StreamSettings(WINDOW, HOP_S, **pipeline.session.graph)) for _ in range(count)]
    for state in states:
        for graph in state.graphs:
            for instance in full_window:
                graph.push(instance)
    phases = np.arange(count) / count  # seconds into each second when a stream's chunk is due
    phase_of = dict(zip(states, phases))
    chunks = WARMUP_S + seconds
    fed = np.zeros(count, int)
    due_s, latency_ms, batch_sizes = [], [], []
    gave_up = False

    cpu_started = time.process_time()
    start = wake = time.perf_counter()
    while fed.sum() < count * chunks:
        now = time.perf_counter() - start
        due = np.clip(np.floor(now - phases), 0, chunks).astype(int)  # chunk k is due at phase + k + 1
        behind = np.where(fed < chunks, now - (phases + fed + 1), -np.inf)  # oldest unfed chunk's lag
        late = int(np.argmax(behind))
        if behind[late] > GIVE_UP_S:
            due_s.append(phases[late] + fed[late] + 1)
            latency_ms.append(behind[late] * 1e3)  # a lower bound: that frame is not even fed yet
            gave_up = True
            break
        for s in np.flatnonzero(due > fed):
            for k in range(fed[s], due[s]):
                states[s].feed(noise[(s + k) % len(noise)])
            fed[s] = due[s]
        updates = pipeline.step(states)
        done = time.perf_counter() - start
        measured = [update for update in updates if update.t > WARMUP_S]
        if measured:
            batch_sizes.append(len(updates))
        for update in measured:
            due_at = phase_of[update.stream] + update.t
            due_s.append(due_at)
            latency_ms.append((done - due_at) * 1e3)
        wake += tick  # a tick missed by a long step runs at once
        time.sleep(max(0.0, wake - time.perf_counter()))
    cpu_s = time.process_time() - cpu_started

    latency = percentiles(latency_ms)
    growth = lag_growth(np.asarray(due_s), np.asarray(latency_ms))
    kept_up = not gave_up and latency["p99"] < BUDGET_MS and growth <= MAX_LAG_GROWTH_MS_PER_S
    return {"streams": count, "frames": len(latency_ms), "steps": len(batch_sizes),
            "frames_per_step": float(np.mean(batch_sizes)) if batch_sizes else 0.0,
            "latency_ms": latency, "lag_growth_ms_per_s": growth,
            "cpu_s_per_stream_s": float(cpu_s / max(1, fed.sum())), "gave_up": gave_up, "kept_up": bool(kept_up)}


def lag_growth(due_s: np.ndarray, latency_ms: np.ndarray) -> float:
    """ms of lag gained per second: the median latency of the last third of the frames (by due
    time) minus that of the first third, over the time between them (medians: spikes don't count)."""
    if len(due_s) < 3:
        return 0.0
    order = np.argsort(due_s)
    first, last = order[: len(order) // 3], order[-(len(order) // 3):]
    return float((np.median(latency_ms[last]) - np.median(latency_ms[first]))
                 / (np.median(due_s[last]) - np.median(due_s[first])))


def show(report: dict, console: Console) -> None:
    info = report["machine"]
    table = Table(title=f"mmgat-live capacity, hop {HOP_S:g} s, W={WINDOW}, tick {report['tick_s']:g} s: "
                        f"{info['cpu']}, {info['cores']} cores, {report['threads']} thread(s); "
                        f"max streams {report['max_streams']} (goal >= {report['goal']})")
    for column in ("N", "frames", "batch", "p50 ms", "p95 ms", "p99 ms", "max ms",
                   "lag ms/s", "CPU s/s/stream", "kept up"):
        table.add_column(column, justify="right")
    for run in report["runs"]:
        q = run["latency_ms"]
        verdict = "yes" if run["kept_up"] else ("gave up" if run["gave_up"] else "no")
        table.add_row(str(run["streams"]), str(run["frames"]), f"{run['frames_per_step']:.1f}",
                      *(f"{q[k]:.1f}" for k in ("p50", "p95", "p99", "max")),
                      f"{run['lag_growth_ms_per_s']:.1f}", f"{run['cpu_s_per_stream_s']:.3f}", verdict)
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one, else the seeded test artifact)")
    parser.add_argument("--streams", type=int, nargs="+", default=list(STREAMS), help="stream counts to try")
    parser.add_argument("--seconds", type=int, default=15, help="measured seconds of stream time per count")
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between pipeline steps")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op and torch threads")
    args = parser.parse_args(argv)

    model = artifact(args.model)
    session, frontend = load_runtime(model, cpu=True, intra_op_threads=args.threads)
    torch.set_num_threads(args.threads)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal((NOISE_SECONDS, FRAME_SAMPLES))).astype(np.float32)
    full_window = frontend.embed(noise)[np.arange(WINDOW) % NOISE_SECONDS]

    runs = []
    for count in sorted(args.streams):
        runs.append(run_streams(pipeline, count, args.seconds, args.tick, noise, full_window))
        if not runs[-1]["kept_up"]:
            break  # more streams only miss by more
    max_streams = max((run["streams"] for run in runs if run["kept_up"]), default=0)
    report = {"benchmark": "capacity", "model": str(model), "provider": session.provider,
              "device": str(frontend.device), "threads": args.threads, "hop_s": HOP_S, "window": WINDOW,
              "tick_s": args.tick, "seconds": args.seconds, "warmup_s": WARMUP_S, "budget_ms": BUDGET_MS,
              "machine": machine(),
              "runs": runs, "max_streams": max_streams,
              "first_missed": next((run["streams"] for run in runs if not run["kept_up"]), None),
              "goal": GOAL_STREAMS, "meets_goal": max_streams >= GOAL_STREAMS}
    save(report, args.json)
    show(report, Console(width=max(100, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Live latency of mmgat-live on this machine.

1. Per-hop compute at W=10 (frontend + graph + MMGAT for one new frame, as the live pipeline runs
   it) against the bare batch-1 frontend forward on the same frames, interleaved in one run.
   Goal: per-hop compute p99 <= 1.3 x bare frontend p99.
2. Sound-in to label-shown: a silent file with loud clicks at known times streamed in real time
   through the full live path (paced file source, resampler, pipeline, a JSONL sink). For each
   click: wall time from when the paced source makes its samples available to when the first
   record whose window contains it has been written. Goal: <= frame + hop + 50 ms.

    python benchmarks/live_latency.py --json OUT.json [--model MODEL.onnx] [--frames 100]

Without --model it uses the shipped artifact, or else builds the seeded test artifact the
`tiny_model` fixture uses (same architecture and frontend, random weights: timings are the same).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table

from mmgat.export.runtime import load_runtime
from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
from mmgat.stream.options import use_threads
from mmgat.stream.pipeline import Pipeline
from mmgat.stream.scheduler import run
from mmgat.stream.sinks import JsonlSink, record
from mmgat.stream.sources import open_file
from mmgat.stream.settings import StreamSettings
from mmgat.stream.stream import Stream

from machine import machine, save
from mmgat_ort import artifact  # the shipped model, else the tests' seeded one

WINDOW = 10
CLICK_TIMES_S = (1.37, 2.81, 4.06, 5.52, 6.93, 8.24)  # spread over the phases of any hop
CLICK_FILE_S = 9.5
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
SLACK_MS = 50.0


def percentiles(values) -> dict:
    values = np.asarray(values, float)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max()), "n": int(len(values))}


def per_hop_compute(session, frontend, frames: int) -> dict:
    """Live-style batch-1 steps at W=WINDOW, interleaved with bare frontend forwards."""
    rng = np.random.default_rng(0)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    stream = Stream.fed(StreamSettings(WINDOW, 1.0, **session.graph))
    compute, stages, bare = [], {"frontend": [], "graph": [], "mmgat": []}, []
    warm = WINDOW  # measure with a full window only
    for index in range(warm + frames):
        frame = (0.1 * rng.standard_normal(FRAME_SAMPLES)).astype(np.float32)
        started = time.perf_counter()
        frontend.embed(frame[None])
        bare_ms = (time.perf_counter() - started) * 1e3
        stream.feed(frame)
        (update,) = pipeline.step([stream])
        if index >= warm:
            bare.append(bare_ms)
            compute.append(update.latency_ms["compute"])
            for stage in stages:
                stages[stage].append(update.latency_ms[stage])
    result = {"window": WINDOW, "per_hop_compute_ms": percentiles(compute), "bare_frontend_ms": percentiles(bare),
              "samples_ms": {"per_hop_compute": compute, "bare_frontend": bare},
              "stages_ms": {stage: percentiles(values) for stage, values in stages.items()}}
    result["p99_ratio"] = result["per_hop_compute_ms"]["p99"] / result["bare_frontend_ms"]["p99"]
    result["goal_p99_ratio"] = 1.3
    return result


def click_file(path: Path) -> Path:
    audio = np.zeros(int(CLICK_FILE_S * SAMPLE_RATE), np.float32)
    for t in CLICK_TIMES_S:
        start = int(t * SAMPLE_RATE)
        audio[start:start + 32] = 0.9  # a 2 ms click
    soundfile.write(str(path), audio, SAMPLE_RATE)
    return path


def sound_to_label(session, frontend, clip: Path, hop: float) -> dict:
    """Real-time file stream; per click, due-time of its samples -> its first record written."""
    source = open_file(clip, paced=True)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    stream = Stream(source, StreamSettings(WINDOW, hop, **session.graph))
    meta = session.metadata
    sink = JsonlSink(os.devnull)
    latencies, pending = [], list(CLICK_TIMES_S)

    def emit(update):
        sink.write(record(update, meta["classes"], meta["groups"]))
        written = time.perf_counter()
        while pending and update.t - FRAME_S <= pending[0] < update.t:
            click = pending.pop(0)
            latencies.append((written - (source.started_at + click)) * 1e3)

    try:
        run(pipeline, [stream], emit)
    finally:
        sink.close()
        stream.close()
    goal = (FRAME_S + hop) * 1e3 + SLACK_MS
    return {"hop_s": hop, "clicks_s": list(CLICK_TIMES_S), "latency_ms": latencies, **percentiles(latencies),
            "goal_ms": goal, "meets_goal": bool(max(latencies) <= goal)}


def show(report: dict, console: Console) -> None:
    hop = report["per_hop"]
    table = Table(title=f"mmgat-live latency, W={hop['window']}: {report['machine']['cpu']}, "
                        f"{report['machine']['cores']} cores, {report['machine']['torch_threads']} torch thread(s), "
                        f"frontend on {report['device']}, ORT {report['provider']}")
    for column in ("measure", "p50 ms", "p95 ms", "p99 ms", "max ms", "n", "goal"):
        table.add_column(column, justify="left" if column in ("measure", "goal") else "right")

    def row(name, q, goal=""):
        table.add_row(name, f"{q['p50']:.1f}", f"{q['p95']:.1f}", f"{q['p99']:.1f}", f"{q['max']:.1f}", str(q["n"]), goal)

    row("bare frontend, batch 1", hop["bare_frontend_ms"])
    row("per-hop compute", hop["per_hop_compute_ms"], f"p99 x{hop['p99_ratio']:.2f} <= {hop['goal_p99_ratio']}")
    for stage, q in hop["stages_ms"].items():
        row(f"  {stage}", q)
    for result in report["sound_to_label"]:
        row(f"click -> record, hop {result['hop_s']:g}", result,
            f"max <= {result['goal_ms']:.0f} {'ok' if result['meets_goal'] else 'MISSED'}")
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one, else the seeded test artifact)")
    parser.add_argument("--frames", type=int, default=100, help="measured frames for the per-hop compute")
    parser.add_argument("--cpu", action="store_true", help="frontend on the CPU even when CUDA is present")
    parser.add_argument("--threads", type=int, default=1, help="as mmgat-live --threads: ORT and CPU torch threads")
    args = parser.parse_args(argv)

    model = artifact(args.model)
    session, frontend = load_runtime(model, cpu=args.cpu, intra_op_threads=args.threads)
    use_threads(args.threads)  # a torch frontend's threads, as mmgat-live sets them
    report = {"benchmark": "live_latency", "model": str(model), "provider": session.provider,
              "device": str(frontend.device), "threads": args.threads,
              "machine": machine(),
              "per_hop": per_hop_compute(session, frontend, args.frames)}
    with tempfile.TemporaryDirectory() as scratch:
        clip = click_file(Path(scratch) / "clicks.wav")
        report["sound_to_label"] = [sound_to_label(session, frontend, clip, hop) for hop in (1.0, 0.25)]
    save(report, args.json)
    show(report, Console(width=max(100, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

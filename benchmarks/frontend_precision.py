"""Frontend precision: fp32, bf16 (autocast, channels-last) and, on the CPU, int8 (ONNX Runtime
static quantization as `mmgat-live` runs it, see model/int8.py), each at batch 1 and batched:
ms per frame, and F1 of the whole model (shipped MMGAT on that frontend's instances, windows as
mmgat-tag serves them) on the synthetic test split.

    python benchmarks/frontend_precision.py --data DIR --json benchmarks/results/frontend_precision.json
                                            [--device cuda]

The serving default on that device (`serving_precision`) must be the fastest variant whose F1
micro is within 0.01 of fp32; the report says which one that is.
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

from mmgat.export.runtime import frontend_path_for, MMGATSession
from mmgat.model.audio import load_audio, split_frames
from mmgat.model.frontend import load_frontend
from mmgat.model.frontend_file import precisions_on, serving_precision
from mmgat.model.train.data import read_manifest, synth_clips, synth_split
from mmgat.model.train.evaluate import evaluate
from mmgat.model.train.predict import extract_instances

from machine import machine, processor, save
from mmgat_ort import artifact

BATCH = 64
MAX_F1_DROP = 0.01


def ms_per_frame(embedder, frames: np.ndarray, calls: int) -> float:
    """p50 over `calls` calls of embed(frames), per frame, after one warm-up call."""
    embedder.embed(frames)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        embedder.embed(frames)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e3 / len(frames)


def test_clips(data: Path, max_clips: int | None) -> list[dict]:
    entries = [e for e in read_manifest(data) if synth_split(e.get("seed", e["path"])) == "test"]
    return entries[:max_clips]


def measure(model: Path, data: Path, device: str, threads: int, max_clips: int | None,
            calls: int) -> dict:
    variants = precisions_on(device)  # fp32 first: the reference
    session = MMGATSession(model, cpu=True, intra_op_threads=threads)
    frontend_file = frontend_path_for(session)
    entries = test_clips(data, max_clips)
    frames = np.concatenate([split_frames(load_audio(data / e["path"])) for e in entries[:8]])[:BATCH]
    embedders = {precision: load_frontend(frontend_file, device, precision, threads)
                 for precision in variants}
    identity = {"name": embedders["fp32"].name, "file": str(frontend_file),
                "fingerprint": embedders["fp32"].recorded_fingerprint}
    results = {}
    for variant, embedder in embedders.items():
        instances = extract_instances(data, [e["path"] for e in entries], embedder)
        report = evaluate(model, data, "test", device="cpu",
                          clips=synth_clips(entries, instances, identity))
        results[variant] = {
            "batch1_ms_per_frame": ms_per_frame(embedder, frames[:1], calls),
            f"batch{BATCH}_ms_per_frame": ms_per_frame(embedder, frames, max(3, calls // 10)),
            "f1_micro": report["f1_micro"], "f1_macro": report["f1_macro"],
            "per_second_f1_micro": report["per_second"]["f1_micro"]}
    for result in results.values():
        result["f1_micro_change"] = result["f1_micro"] - results["fp32"]["f1_micro"]
    eligible = [v for v in variants if results[v]["f1_micro_change"] >= -MAX_F1_DROP]
    chosen = {key: min(eligible, key=lambda v: results[v][key])
              for key in ("batch1_ms_per_frame", f"batch{BATCH}_ms_per_frame")}
    return {"test_clips": len(entries), "test_seconds": int(sum(e["duration"] for e in entries)),
            "variants": results, "fastest_within_0.01": chosen,
            "serving_default": serving_precision(device)}


def show(report: dict, console: Console) -> None:
    table = Table(title=f"frontend precision: {processor(report)}, {report['threads']} "
                        f"thread(s), {report['test_clips']} test clips")
    for column in ("variant", "batch 1 ms/frame", f"batch {BATCH} ms/frame", "F1 micro",
                   "change", "F1 macro", "per-second micro"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for variant, r in report["variants"].items():
        table.add_row(variant, f"{r['batch1_ms_per_frame']:.2f}",
                      f"{r[f'batch{BATCH}_ms_per_frame']:.2f}", f"{r['f1_micro']:.3f}",
                      f"{r['f1_micro_change']:+.3f}", f"{r['f1_macro']:.3f}",
                      f"{r['per_second_f1_micro']:.3f}")
    console.print(table)
    console.print(f"fastest within {MAX_F1_DROP} F1: {report['fastest_within_0.01']}; "
                  f"serving default on {report['device']}: {report['serving_default']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="synthetic data set (mmgat-train synth)")
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the frontend runs")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--max-clips", type=int, help="use only the first N test clips")
    parser.add_argument("--calls", type=int, default=50, help="timed batch-1 calls per variant")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model = artifact(args.model)
    report = {"benchmark": "frontend_precision", "model": str(model), "device": args.device,
              "threads": args.threads, "machine": machine(),
              **measure(model, args.data, args.device, args.threads, args.max_clips, args.calls)}
    save(report, args.json)
    show(report, Console(width=max(100, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which parts of synthetic clips a model hears: per-second recall of each part of each test clip,
split by the SoundFont the part was rendered from and by how far below the loudest other part
it was mixed, from the parts listed in the set's manifest.

    python benchmarks/part_recall.py MODEL.onnx DATA [--split test] [--json OUT.json]

DATA: a folder made by `mmgat-train synth` or `join`; its clips are embedded with the model's
frontend on first use (`--rebuild-cache` when its cache holds another frontend's). A part counts
as heard in a second when its class's per-second probability there reaches the model's
per-second threshold.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mmgat.model.labels import CLASSES
from mmgat.model.train.data import SPLITS, read_manifest
from mmgat.model.train.evaluate import load_model, model_clips
from mmgat.model.train.predict import predict_clips

# dB below the loudest part playing at the same time -> bucket name, upper bounds ascending
MIX_BUCKETS = ((2.0, "within 2 dB"), (4.0, "2-4 dB below"), (float("inf"), "4 dB or more below"))
MIX_ORDER = ("alone", *(name for _, name in MIX_BUCKETS))


def mix_bucket(part: dict, parts: list[dict]) -> str:
    """How far below the loudest overlapping other part `part` was mixed, as a bucket name."""
    others = [p["gain_db"] for p in parts
              if p is not part and p["start_s"] < part["end_s"] and p["end_s"] > part["start_s"]]
    if not others:
        return "alone"
    below = max(others) - part["gain_db"]
    return next(name for bound, name in MIX_BUCKETS if below < bound)


def part_recall(model, data, split: str = "test", rebuild_cache: bool = False) -> dict:
    """{class: {"by_soundfont": {name: [heard, seconds]}, "by_mix": {bucket: [heard, seconds]}}}."""
    device = torch.device("cpu")
    score, config, info = load_model(model, device)
    clips = model_clips(model, info, data, device, rebuild_cache).subset(split)
    entries = {entry["path"]: entry for entry in read_manifest(data)}
    _, _, second_probs = predict_clips(score, clips, info["window"], config, device)
    thresholds = np.asarray(info["second_thresholds"])
    recall = defaultdict(lambda: {"by_soundfont": defaultdict(lambda: [0, 0]),
                                  "by_mix": defaultdict(lambda: [0, 0])})
    for key, probs in zip(clips.keys, second_probs):
        parts = entries[key]["parts"]
        heard = probs >= thresholds
        for part in parts:
            played_seconds = heard[part["start_s"]: part["end_s"], CLASSES.index(part["class"])]
            hits, played = int(played_seconds.sum()), len(played_seconds)  # within the clip's seconds
            source = part["soundfont"].split("/")[0]  # espeak-ng's voices as one source
            for counts in (recall[part["class"]]["by_soundfont"][source],
                           recall[part["class"]]["by_mix"][mix_bucket(part, parts)]):
                counts[0] += hits
                counts[1] += played
    return {name: {"by_soundfont": dict(sorted(recall[name]["by_soundfont"].items())),
                   "by_mix": {bucket: recall[name]["by_mix"][bucket] for bucket in MIX_ORDER
                              if bucket in recall[name]["by_mix"]}}
            for name in CLASSES if name in recall}


def show(recall: dict, kind: str) -> None:
    present = {column for by in recall.values() for column in by[kind]}
    columns = [bucket for bucket in MIX_ORDER if bucket in present] if kind == "by_mix" else sorted(present)
    table = Table(title=f"per-second recall of each part, by {kind[3:]} (seconds played)")
    table.add_column("class")
    for column in columns:
        table.add_column(column, justify="right")
    for name, by in recall.items():
        cells = [f"{h / n:.2f} ({n})" if n else "" for h, n in
                 (by[kind].get(column, (0, 0)) for column in columns)]
        table.add_row(name, *cells)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported .onnx or checkpoint dir")
    parser.add_argument("data", help="a synthetic data folder with parts in its manifest")
    parser.add_argument("--split", choices=SPLITS + ("all",), default="test")
    parser.add_argument("--json", help="also write the counts ([heard, seconds]) here")
    parser.add_argument("--rebuild-cache", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core, so that a training run beside it keeps the other
    try:
        recall = part_recall(args.model, args.data, args.split, args.rebuild_cache)
    except (OSError, ValueError) as error:
        raise SystemExit(f"part_recall: {error}") from None
    for kind in ("by_soundfont", "by_mix"):
        show(recall, kind)
    if args.json:
        report = {"model": str(args.model), "data": str(args.data), "split": args.split, "recall": recall}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""What the graph over seconds gives a trained model: its test scores when served windows of
1, 2, ... W seconds (as `mmgat-live --window W`), each window's thresholds tuned afresh on the
validation split (the model's own were tuned for its training window). Window 1 is every second
alone, no graph context: the model as a per-second classifier.

    python benchmarks/window_sweep.py DATA MODEL [MODEL ...] [--windows 1 2 3 5 10] [--json OUT]

DATA: a synthetic set (per-second labels) embedded with the models' frontend; MODEL: a
checkpoint dir or exported .onnx. Reports clip F1 micro / macro and mAP, per-second F1 micro and
per-second mAP (threshold-free, so the windows compare without any tuning).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from machine import machine
from mmgat.model.graph import MAX_WINDOW
from mmgat.model.train.evaluate import load_model, model_clips
from mmgat.model.train.metrics import evaluate_scores, tune_thresholds
from mmgat.model.train.predict import predict_clips

COLUMNS = ("f1_micro", "f1_macro", "map", "per_second_f1_micro", "per_second_map")


def sweep(model, data, windows) -> dict:
    """{window: {column: value}} on the test split, thresholds tuned on val at that window."""
    if not all(1 <= window <= MAX_WINDOW for window in windows):
        raise ValueError(f"windows must be 1..{MAX_WINDOW}, got {windows}")
    device = torch.device("cpu")
    score, config, info = load_model(model, device)
    clips = model_clips(model, info, data, device)
    if clips.second_targets is None:
        raise ValueError(f"{data} has no per-second labels")
    val, test = clips.subset("val"), clips.subset("test")
    rows = {}
    for window in windows:
        (val_probs, _, val_seconds), (probs, _, seconds) = (
            predict_clips(score, part, window, config, device) for part in (val, test))
        clip = evaluate_scores(test.targets, probs,
                               tune_thresholds(val.targets, val_probs, val.label_mask),
                               test.label_mask)
        second_thresholds = tune_thresholds(np.concatenate(val.second_targets),
                                            np.concatenate(val_seconds))
        second = evaluate_scores(np.concatenate(test.second_targets), np.concatenate(seconds),
                                 second_thresholds)
        rows[window] = {"f1_micro": clip["f1_micro"], "f1_macro": clip["f1_macro"],
                        "map": clip["map"], "per_second_f1_micro": second["f1_micro"],
                        "per_second_map": second["map"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a synthetic data folder (per-second labels)")
    parser.add_argument("models", nargs="+", metavar="model", help="checkpoint dir or .onnx")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--json", help="also write the rows and the machine here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core, so that a training run beside it keeps the other
    try:
        sweeps = {str(model): sweep(model, args.data, args.windows) for model in args.models}
    except (OSError, ValueError) as error:
        raise SystemExit(f"window_sweep: {error}") from None
    for model, rows in sweeps.items():
        table = Table(title=f"{model} on {args.data}, test split, thresholds tuned on val")
        for column in ("window", *COLUMNS):
            table.add_column(column, justify="right")
        for window, row in rows.items():
            table.add_row(str(window), *(f"{row[column]:.3f}" for column in COLUMNS))
        Console().print(table)
    if args.json:
        report = {"data": str(args.data), "machine": machine(), "models": sweeps}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

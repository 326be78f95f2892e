"""`mmgat-train eval`: paper-style scores of a checkpoint or an exported ONNX artifact.

The clips are scored as users are served: the windows of the model's W seconds (or --window's)
ending at every whole second (hop 1 s, shorter windows while the first W seconds fill), as
mmgat-live and mmgat-tag score them. Clip level: a clip's probability per class is the maximum
over its windows, thresholded with the model's own per-class thresholds (tuned on validation at
training time; never on the evaluated set). Reports F1 micro / macro (see metrics.py), per-class
F1 in the layout of the paper's Table 4 (one row per class, the paper's MMGAT figure beside
ours) and mAP. Per second (where per-second labels exist): each second's node probability in the
last window that holds it (as mmgat-tag reports per second), thresholded with the model's
per-second thresholds (also tuned on validation), against the per-second labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import torch

from mmgat.export.runtime import MMGATSession, frontend_path_for
from mmgat.model.frontend import AUDIOSET, default_device
from mmgat.model.window import MAX_WINDOW, check_window
from mmgat.model.labels import CLASSES, GROUPS
from mmgat.model.train.data import SPLITS, load_data, masked_group_targets
from mmgat.model.train.fit import load_checkpoint
from mmgat.model.train.metrics import evaluate_scores, f1_scores
from mmgat.model.train.predict import predict_clips, torch_scorer

# Paper Table 4, MMGAT row (OpenMIC-IRMAS test set). The table's columns run "... syn tru tro
# uku ...": tru = trumpet, tro = trombone.
PAPER_TABLE4 = {
    "accordion": 0.56, "banjo": 0.54, "bass": 0.49, "cello": 0.64, "clarinet": 0.52,
    "cymbals": 0.76, "drums": 0.76, "flute": 0.64, "guitar": 0.55, "mallet_percussion": 0.64,
    "mandolin": 0.64, "organ": 0.43, "piano": 0.79, "saxophone": 0.68, "synthesizer": 0.72,
    "trumpet": 0.55, "trombone": 0.57, "ukulele": 0.52, "violin": 0.73, "voice": 0.74,
}
PAPER_MMGAT = {"f1_micro": 0.63, "f1_macro": 0.62}  # Tables 3 and 5
ABBREVIATIONS = {"guitar": "gur", "mandolin": "mad", "trumpet": "tru", "trombone": "tro"}


def abbreviation(name: str) -> str:
    """The paper's three-letter column names."""
    return ABBREVIATIONS.get(name, name[:3])


def load_model(path, device):
    """Checkpoint dir / .pt or exported .onnx -> (score, config, info) for predict_clips; info
    holds thresholds, group_thresholds, window, frontend and input kind."""
    path = Path(path)
    if path.suffix == ".onnx":
        session = MMGATSession(path, cpu=device.type == "cpu")
        meta = session.metadata

        def score(batch):
            out = session.score(*(batch[k].cpu().numpy() for k in
                                  ("nodes", "weights", "scale_masks", "node_mask")))
            return out["probs"], out["group_probs"], out["node_probs"]

        config = SimpleNamespace(**session.graph)  # the graphs the runtime builds for it
        frontend = {"name": meta["frontend_name"], "fingerprint": meta["frontend_fingerprint"],
                    "file": str(frontend_path_for(session))}
        return score, config, {"thresholds": meta["thresholds"], "window": meta["window"],
                               "group_thresholds": meta["group_thresholds"],
                               "second_thresholds": meta["second_thresholds"],
                               "frontend": frontend, "input": "embedding"}
    model, checkpoint = load_checkpoint(path)
    model.to(device)
    return torch_scorer(model), model.config, {
        "thresholds": checkpoint["thresholds"], "group_thresholds": checkpoint["group_thresholds"],
        "second_thresholds": checkpoint["second_thresholds"],
        "window": checkpoint["window"], "frontend": checkpoint["frontend"],
        "input": model.config.extra.get("input", "embedding")}


def model_clips(model, info: dict, data, device, rebuild_cache: bool = False):
    """`data` as instances of the frontend `model` was trained on (`info` from load_model)."""
    frontend = info["frontend"]
    if Path(data).suffix == ".npz" and frontend["name"] != AUDIOSET:
        raise ValueError(f"{model} was trained on {frontend['name']} instances; OpenMIC holds "
                         f"{AUDIOSET} features")
    return load_data(data, info["input"], frontend["file"], rebuild_cache, device,
                     expected_fingerprint=frontend["fingerprint"])


def evaluate(model, data, split: str = "test", device=None, rebuild_cache: bool = False,
             clips=None, window: int | None = None) -> dict:
    """Score `model` on a split of `data` (synthetic DIR or OpenMIC .npz) -> report dict.
    `window`: graphs of that many seconds instead of the model's own, as `mmgat-live --window`
    serves them (1: every second alone, no graph context)."""
    if window is not None:
        check_window(window)
    device = torch.device(device) if device else default_device()
    score, config, info = load_model(model, device)
    info["window"] = window or info["window"]
    frontend = info["frontend"]
    if clips is None:
        clips = model_clips(model, info, data, device, rebuild_cache)
    clips = clips.subset(split)
    if not len(clips):
        raise ValueError(f"{data} has no {split} clips")
    probs, group_probs, second_probs = predict_clips(score, clips, info["window"], config, device)
    report = {"model": str(model), "data": str(data), "split": split, "window": info["window"],
              "frontend": frontend, **score_report(clips, probs, group_probs, info["thresholds"],
                                                   info["group_thresholds"])}
    if clips.second_targets is not None:
        report["per_second"] = per_second_scores(clips.second_targets, second_probs,
                                                 info["second_thresholds"],
                                                 clips.all_second_masks())
    return report


def per_second_scores(second_targets, second_probs, thresholds, second_masks=None) -> dict:
    """F1 of the per-second probabilities (thresholded) against the per-second labels (the
    known ones, where `second_masks` marks unknowns)."""
    targets, probs = np.concatenate(second_targets), np.concatenate(second_probs)
    mask = None if second_masks is None else np.concatenate(second_masks)
    scores = f1_scores(targets, probs >= np.asarray(thresholds), mask)
    return {"seconds": len(targets), "f1_micro": scores["f1_micro"],
            "f1_macro": scores["f1_macro"],
            "per_class_f1": dict(zip(CLASSES, scores["per_class_f1"]))}


def score_report(clips, probs, group_probs, thresholds, group_thresholds) -> dict:
    """Clip probabilities of `clips` + thresholds -> the metrics part of a report."""
    metrics = evaluate_scores(clips.targets, probs, thresholds, clips.label_mask)
    groups, group_mask = masked_group_targets(clips.targets, clips.label_mask)
    group_metrics = evaluate_scores(groups, group_probs, group_thresholds, group_mask)
    support = (clips.targets * clips.label_mask).sum(axis=0)
    return {
        "clips": len(clips),
        **{k: metrics[k] for k in ("f1_micro", "f1_macro", "f1_macro_pr", "precision_micro",
                                   "recall_micro", "map")},
        "per_class": {name: {"f1": metrics["per_class_f1"][c],
                             "precision": metrics["per_class_precision"][c],
                             "recall": metrics["per_class_recall"][c],
                             "ap": metrics["per_class_ap"][c], "support": int(support[c]),
                             "paper_f1": PAPER_TABLE4[name]} for c, name in enumerate(CLASSES)},
        "groups": {name: group_metrics["per_class_f1"][g] for g, name in enumerate(GROUPS)},
        "paper": PAPER_MMGAT,
    }


def _number(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: dict) -> str:
    lines = [f"# MMGAT evaluation: {report['model']}", "",
             f"Data `{report['data']}`, split `{report['split']}` ({report['clips']} clips), "
             f"window {report['window']} s, frontend {report['frontend']['name']}.", "",
             "| | ours | paper (MMGAT, OpenMIC-IRMAS) |", "|---|---|---|",
             f"| F1 micro | {report['f1_micro']:.3f} | {report['paper']['f1_micro']:.2f} |",
             f"| F1 macro | {report['f1_macro']:.3f} | {report['paper']['f1_macro']:.2f} |",
             f"| F1 macro (paper's formula: 2PR/(P+R) of macro P, R) | "
             f"{report['f1_macro_pr']:.3f} | |",
             f"| mAP | {report['map']:.3f} | |", "",
             "Per class (paper Table 4 layout):", "",
             "| class | | F1 | precision | recall | AP | positives | paper F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in report["per_class"].items():
        lines.append(f"| {name} | {abbreviation(name)} | {_number(row['f1'])} | "
                     f"{_number(row['precision'])} | {_number(row['recall'])} | "
                     f"{_number(row['ap'])} | {row['support']} | {_number(row['paper_f1'])} |")
    groups = ", ".join(f"{g} {f:.2f}" for g, f in report["groups"].items())
    lines += ["", f"Onset groups F1: {groups}"]
    if "per_second" in report:
        second = report["per_second"]
        lines += ["", f"Per second ({second['seconds']} s, each from the last window "
                  f"holding it): F1 micro {second['f1_micro']:.3f}, macro {second['f1_macro']:.3f}"]
    return "\n".join(lines) + "\n"


def bar_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["per_class"])
    x = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(12, 4))
    axis.bar(x - 0.2, [report["per_class"][n]["f1"] for n in names], 0.4, label="ours")
    axis.bar(x + 0.2, [report["per_class"][n]["paper_f1"] for n in names], 0.4,
             label="paper (MMGAT)", alpha=0.6)
    axis.set_xticks(x, [abbreviation(n) for n in names])
    axis.set_ylim(0, 1)
    axis.set_ylabel("F1")
    axis.set_title(f"per-class F1, {report['split']} split, F1 micro {report['f1_micro']:.2f}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(report: dict, out_dir) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2))
    (out_dir / "eval.md").write_text(markdown(report))
    bar_chart(report, out_dir / "per_class_f1.png")


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['split']} split, {report['clips']} clips")
    for column in ("class", "", "F1", "precision", "recall", "AP", "positives", "paper F1"):
        table.add_column(column, justify="left" if column in ("class", "") else "right")
    for name, row in report["per_class"].items():
        table.add_row(name, abbreviation(name), *(_number(row[k]) for k in
                      ("f1", "precision", "recall", "ap")), str(row["support"]),
                      _number(row["paper_f1"]))
    console = Console()
    console.print(table)
    for key in ("f1_micro", "f1_macro", "f1_macro_pr", "map"):
        paper = report["paper"].get(key)
        console.print(f"{key} {report[key]:.4f}" + (f"  (paper {paper:.2f})" if paper else ""))
    if "per_second" in report:
        console.print(f"per second: f1_micro {report['per_second']['f1_micro']:.4f}  "
                      f"f1_macro {report['per_second']['f1_macro']:.4f}")


def run(args) -> int:
    report = evaluate(args.model, args.data, args.split, args.device, args.rebuild_cache,
                      window=args.window)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if args.out:
        write_report(report, args.out)
    return 0


def register(commands) -> None:
    parser = commands.add_parser("eval", help="evaluate a checkpoint or ONNX artifact",
                                 description=__doc__)
    parser.add_argument("--model", required=True, help="checkpoint dir, model.pt or .onnx")
    parser.add_argument("--data", required=True, help="synthetic DIR or OpenMIC .npz")
    parser.add_argument("--split", choices=SPLITS + ("all",), default="test",
                        help="'all' for held-out sets such as leave-one-SoundFont-out")
    parser.add_argument("--window", type=int, metavar="W",
                        help=f"graphs of W seconds (1..{MAX_WINDOW}) instead of the model's own")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", help="write eval.md, eval.json and per_class_f1.png here")
    parser.add_argument("--rebuild-cache", action="store_true")
    parser.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")
    parser.set_defaults(func=run)

"""`mmgat-train ablate`: the paper's ablations (Tables 5 and 6) and two baselines, trained on
the same data, splits and seed, each scored on the test split; one Markdown table with the
paper's numbers beside ours (the paper's are on OpenMIC-IRMAS, ours on whatever --data is).

Checkpoints land in REPORT_DIR/<variant>/, the table in REPORT_DIR/ablation.md and .json.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from mmgat.model.frontend import default_device
from mmgat.model.train import baselines
from mmgat.model.train.data import load_data
from mmgat.model.train.evaluate import evaluate
from mmgat.model.train.fit import fit

# name -> (fit options, paper (F1 micro, F1 macro), paper table)
VARIANTS = {
    "MMGAT": ({}, (0.63, 0.62), "5, 6"),
    "MMGAT-paper-loss": ({"node_loss": False}, None, ""),  # without our per-second node loss
    "MMGAT-mel-spectrogram": ({"input": "mel"}, (0.60, 0.60), "5"),
    "MMGAT-single": ({"single_scale": True}, (0.62, 0.60), "5"),
    "MMGAT-principal": ({"auxiliary": False}, (0.62, 0.60), "5"),
    "MMGAT_without_center": ({"center": False}, (0.62, 0.61), "5"),
    "MMGAT_graph": ({"label_embeddings": False}, (0.62, 0.62), "5"),
    "MMGAT-Euc": ({"similarity": "euclidean"}, (0.60, 0.60), "6"),
    "MMGAT-L1": ({"similarity": "l1"}, (0.61, 0.59), "6"),
    "MMGAT-EMD": ({"similarity": "emd"}, (0.62, 0.61), "6"),
}
# name -> (train-and-score function, paper (F1 micro, F1 macro) or None, paper table, needs audio)
BASELINES = {
    "baseline: pooled embeddings + MLP": (baselines.pooled_mlp, None, "", False),
    "baseline: ConvNet on log-mel (Han et al.)": (baselines.convnet, (0.59, 0.51), "3", True),
}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def ablate(data, out, epochs: int = 30, seed: int = 0, only=None, frontend=None, device=None,
           **fit_options) -> dict:
    """Train and score every variant (or those named in `only`); fit_options go to every fit.
    Each finished variant is written to REPORT_DIR/<variant>/result.json and reused by a later
    run with the same data, epochs, seed and frontend, so a long run can be stopped and
    continued. Returns the summary written to ablation.json."""
    out = Path(out)
    device = torch.device(device) if device else default_device()
    names = list(VARIANTS) + list(BASELINES)
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(names)}")
    embedded = load_data(data, "embedding", frontend, device=device)
    has_audio = Path(data).is_dir()  # OpenMIC ships features only
    results = {}
    settings = {"data": str(data), "epochs": epochs, "seed": seed,
                "frontend": embedded.frontend["fingerprint"], "fit_options": fit_options}
    for name in names:
        if only and name not in only:
            continue
        done = out / slug(name) / "result.json"
        if done.is_file() and json.loads(done.read_text()).get("settings") == settings:
            results[name] = json.loads(done.read_text())["result"]
            continue
        started = time.perf_counter()
        if name in VARIANTS:
            options, paper, table = VARIANTS[name]
            needs_audio = options.get("input") == "mel"
        else:
            train_and_score, paper, table, needs_audio = BASELINES[name]
        if needs_audio and not has_audio:
            results[name] = {"skipped": "needs audio", "paper": paper, "table": table}
            continue
        if name in VARIANTS:
            clips = None if needs_audio else embedded  # the mel variant loads its own cache
            fit(data, out / slug(name), clips=clips, epochs=epochs, seed=seed, device=str(device),
                frontend=frontend, **{**fit_options, **options})
            report = evaluate(out / slug(name), data, "test", device, clips=clips)
        else:
            report = train_and_score(data, embedded, epochs, seed, device)
        results[name] = {"f1_micro": report["f1_micro"], "f1_macro": report["f1_macro"],
                         "map": report["map"], "test_clips": report["clips"], "paper": paper,
                         "table": table, "seconds": round(time.perf_counter() - started, 1),
                         "per_second_f1_micro": report.get("per_second", {}).get("f1_micro")}
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps({"settings": settings, "result": results[name]}, indent=2))
    summary = {"data": str(data), "epochs": epochs, "seed": seed, "device": str(device),
               "frontend": embedded.frontend, "data_summary": embedded.summary(),
               "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(summary, indent=2))
    (out / "ablation.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    def number(value):
        return "-" if value is None else f"{value:.3f}"

    lines = ["# MMGAT ablations and baselines", "",
             f"Ours: `{summary['data']}`, test split, {summary['epochs']} epochs, seed "
             f"{summary['seed']}, frontend {summary['frontend']['name']}. Paper: OpenMIC-IRMAS "
             "(Bai et al. 2025, Tables 3, 5 and 6; VGGish frontend).", "",
             "| model | F1 micro | F1 macro | mAP | paper F1 micro | paper F1 macro "
             "| paper table |",
             "|---|---|---|---|---|---|---|"]
    for name, row in summary["results"].items():
        paper = row["paper"] or (None, None)
        ours = ("skipped: " + row["skipped"], "-", "-") if "skipped" in row else \
            (number(row["f1_micro"]), number(row["f1_macro"]), number(row["map"]))
        lines.append(f"| {name} | {' | '.join(ours)} | {number(paper[0])} | {number(paper[1])} "
                     f"| {row['table']} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    summary = ablate(args.data, args.out, args.epochs, args.seed, args.only, args.frontend,
                     args.device, batch_size=args.batch_size, window=args.window,
                     progress=args.progress)
    print(markdown(summary))
    return 0


def register(commands) -> None:
    parser = commands.add_parser("ablate", help="paper ablations + baselines", description=__doc__)
    parser.add_argument("--data", required=True, help="synthetic DIR or OpenMIC .npz")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--frontend", help="frontend file for the instance cache")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these variants")
    parser.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)

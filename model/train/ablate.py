"""`mmgat-train ablate`: the paper's ablations (Tables 5 and 6) and baselines, trained on the
same data and splits with the same epoch budget and early stopping, for each of `--seeds`, each
scored on the test split; tables in the paper's layout with mean +- sd over the seeds and the
paper's numbers beside ours (the paper's are on OpenMIC-IRMAS, ours on whatever --data is).

Each finished (seed, variant) is written to REPORT_DIR/seed-S/<variant>/result.json with its
settings and reused by a later run with the same settings, and a run stopped part way (an MMGAT
fit or a baseline) continues from its last epoch, so a long run can be stopped and continued
over several sessions. The tables land in REPORT_DIR/ablation.md and .json, the bars in
REPORT_DIR/ablation.png, rewritten as each run ends; they hold every run finished in REPORT_DIR
with the same settings, also those of other seeds or of variants named by an earlier `--only`.
The levers the paper fixes (heads, neighbours) run only when named in `--only`.

`--jobs N` trains N variants at once, each in a process of its own with one thread: these
small models use a second thread poorly (on the 2-core development machine one MMGAT epoch of
the 20,000-clip set took 20 s on 2 threads and 27 s on 1, so two jobs finish about 1.5x as
many fits an hour).
"""

from __future__ import annotations

import json
import logging
import re
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from mmgat.model.frontend import default_device
from mmgat.model.train import baselines
from mmgat.model.train.data import load_data
from mmgat.model.train.evaluate import evaluate
from mmgat.model.train.fit import LAST_FILE, fit

log = logging.getLogger(__name__)

SWEEP = "sweep"  # the "paper table" of the levers below
# name -> (fit options, paper (F1 micro, F1 macro), paper table)
VARIANTS = {
    "MMGAT": ({}, (0.63, 0.62), "5, 6"),
    "MMGAT-paper-loss": ({"node_loss": False}, None, ""),  # without our per-second node loss
    "MMGAT-second-readout": ({"second_readout": True}, None, ""),  # per-second outputs apart
    "MMGAT-mel-spectrogram": ({"input": "mel"}, (0.60, 0.60), "5"),
    "MMGAT-single": ({"single_scale": True}, (0.62, 0.60), "5"),
    "MMGAT-principal": ({"auxiliary": False}, (0.62, 0.60), "5"),
    "MMGAT_without_center": ({"center": False}, (0.62, 0.61), "5"),
    "MMGAT_graph": ({"label_embeddings": False}, (0.62, 0.62), "5"),
    "MMGAT-Euc": ({"similarity": "euclidean"}, (0.60, 0.60), "6"),
    "MMGAT-L1": ({"similarity": "l1"}, (0.61, 0.59), "6"),
    "MMGAT-EMD": ({"similarity": "emd"}, (0.62, 0.61), "6"),
    # levers the paper fixes, run only when named in `only` (default: 4 heads, 2 neighbours)
    "MMGAT-heads-1": ({"heads": 1}, None, SWEEP),
    "MMGAT-heads-8": ({"heads": 8}, None, SWEEP),
    "MMGAT-neighbours-1": ({"neighbours": 1}, None, SWEEP),
    "MMGAT-neighbours-4": ({"neighbours": 4}, None, SWEEP),
}
# name -> (train-and-score function, paper (F1 micro, F1 macro) or None, paper table, needs audio)
BASELINES = {
    "baseline: pooled embeddings + MLP": (baselines.pooled_mlp, None, "", False),
    "baseline: per-second MLP": (baselines.per_second_mlp, None, "", False),
    "baseline: ConvNet on log-mel (Han et al.)": (baselines.convnet, (0.59, 0.51), "3", True),
}
RESULT_FILE = "result.json"
SEED_PREFIX = "seed-"  # REPORT_DIR/seed-S holds seed S's runs
METRICS = ("f1_micro", "f1_macro", "map", "per_second_f1_micro")
# The README's tables: title, and which rows (by paper table; "" = ours only) each holds.
TABLES = (("Table 5: ablations", ("5, 6", "5", "")), ("Table 6: similarity measures", ("5, 6", "6")),
          ("Table 3: baselines", ("5, 6", "3", "")), ("Heads and neighbours", ("5, 6", SWEEP)))


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def ablate(data, out, epochs: int = 30, seeds=(0,), only=None, frontend=None, device=None,
           jobs: int = 1, **fit_options) -> dict:
    """Train and score every variant (or those named in `only`) for every seed, `jobs` at a time;
    fit_options go to every fit. Returns the summary written to ablation.json."""
    out = Path(out)
    device = torch.device(device) if device else default_device()
    known = list(VARIANTS) + list(BASELINES)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(known)}")
    names = [n for n in known if n in only] if only else \
        [n for n in known if paper_of(n)[1] != SWEEP]
    embedded = load_data(data, "embedding", frontend, device=device)
    # the tables hold these seeds and variants and every other one with a run finished in `out`
    seeds_on_disk = {int(found[1]) for folder in out.glob(SEED_PREFIX + "*")
                     if (found := re.fullmatch(SEED_PREFIX + r"(\d+)", folder.name))}
    table_seeds = sorted({*seeds, *seeds_on_disk})
    runs = []  # (seed, name, folder, settings) of every known variant and table seed
    for seed in table_seeds:
        settings = {"data": str(data), "clips": len(embedded), "epochs": epochs, "seed": seed,
                    "frontend": embedded.frontend["fingerprint"],
                    "fit_options": result_options(fit_options)}
        runs += [(seed, name, out / f"{SEED_PREFIX}{seed}" / slug(name), settings)
                 for name in known]
    results = {(seed, name): recorded for seed, name, folder, settings in runs
               if (recorded := recorded_result(folder, settings)) is not None}
    tasks = [task for task in runs if task[0] in seeds and task[1] in names
             and task[:2] not in results]
    finished_names = {name for _, name in results}
    rows = [n for n in known if n in names or n in finished_names]
    if jobs > 1:
        finished = run_in_processes(tasks, jobs, data, frontend, device, fit_options)
    else:
        finished = (((seed, name), run_variant(name, folder, settings, data, embedded, device,
                                                frontend, fit_options))
                    for seed, name, folder, settings in tasks)
    out.mkdir(parents=True, exist_ok=True)

    def write_tables() -> dict:
        summary = {"data": str(data), "epochs": epochs, "seeds": table_seeds,
                   "device": str(device), "frontend": embedded.frontend,
                   "data_summary": embedded.summary(),
                   "results": {name: aggregate(name, {seed: results[seed, name]
                                                      for seed in table_seeds
                                                      if (seed, name) in results})
                               for name in rows}}
        (out / "ablation.json").write_text(json.dumps(summary, indent=2))
        (out / "ablation.md").write_text(markdown(summary))
        bar_chart(summary, out / "ablation.png")
        return summary

    summary = write_tables()  # what earlier runs finished
    for (seed, name), result in finished:  # then again as every run ends
        results[seed, name] = result
        log.info("seed %d, %s: %s", seed, name, "skipped" if "skipped" in result
                 else f"F1 micro {result['f1_micro']:.3f}")
        summary = write_tables()
    return summary


_worker: dict = {}  # per job process: the data set, loaded once


def _start_job(data, frontend, device) -> None:
    torch.set_num_threads(1)  # this process is ours: one of `jobs` processes, one core each
    _worker["embedded"] = load_data(data, "embedding", frontend, device=device)


def _run_job(task) -> tuple:
    seed, name, folder, settings, data, device, frontend, fit_options = task
    options = {**fit_options, "progress": False}  # bars of parallel jobs would mingle
    return (seed, name), run_variant(name, folder, settings, data, _worker["embedded"], device,
                                     frontend, options)


def run_in_processes(tasks, jobs: int, data, frontend, device, fit_options):
    """Yields ((seed, name), result) of the tasks as they end, run in `jobs` processes (spawned:
    a forked torch may hang). Leaving, also on Ctrl-C, SIGTERM or a failed job, terminates the
    processes at once: a fit cut short continues from its last epoch next time, and finished
    runs are on disk."""
    with get_context("spawn").Pool(jobs, initializer=_start_job,
                                   initargs=(data, frontend, device)) as pool:
        yield from pool.imap_unordered(_run_job, [(*task, data, device, frontend, fit_options)
                                                  for task in tasks])


def result_options(fit_options: dict) -> dict:
    """The fit options a result depends on: all but the progress bar's."""
    return {k: v for k, v in fit_options.items() if k != "progress"}


def same_settings(recorded: dict | None, settings: dict) -> bool:
    """Whether a run recorded with `recorded` is this one (runs from before the progress option
    was known not to matter recorded it)."""
    if recorded is None:
        return False
    return {**recorded, "fit_options": result_options(recorded.get("fit_options", {}))} == settings


def recorded_result(folder: Path, settings: dict) -> dict | None:
    """The result a run with these settings left in folder/result.json, if any."""
    done = folder / RESULT_FILE
    recorded = json.loads(done.read_text()) if done.is_file() else {}
    return recorded["result"] if same_settings(recorded.get("settings"), settings) else None


def run_variant(name, folder: Path, settings: dict, data, embedded, device, frontend,
                fit_options) -> dict:
    """Train and score one variant for one seed; its result, also written to
    folder/result.json. A run stopped part way (folder/last.pt, begun with these settings:
    folder/settings.json) continues where it stopped."""
    if name in VARIANTS:
        options = VARIANTS[name][0]
        needs_audio = options.get("input") == "mel"
    else:
        train_and_score, needs_audio = BASELINES[name][0], BASELINES[name][3]
    if needs_audio and not Path(data).is_dir():  # OpenMIC ships features only
        return {"skipped": "needs audio"}
    started = time.perf_counter()
    begun, last = folder / "settings.json", folder / LAST_FILE
    if not (begun.is_file() and same_settings(json.loads(begun.read_text()), settings)):
        last.unlink(missing_ok=True)  # another run's: start afresh
    folder.mkdir(parents=True, exist_ok=True)
    begun.write_text(json.dumps(settings, indent=2))
    if name in VARIANTS:
        clips = None if needs_audio else embedded  # the mel variant loads its own cache
        fit(data, folder, clips=clips, epochs=settings["epochs"], seed=settings["seed"],
            device=str(device), frontend=frontend, resume=last.is_file(),
            **{**fit_options, **options})
        report = evaluate(folder, data, "test", device, clips=clips)
    else:
        report = train_and_score(data, embedded, settings["epochs"], settings["seed"], device,
                                 patience=fit_options.get("patience"), checkpoint=last)
    result = {"f1_micro": report["f1_micro"], "f1_macro": report["f1_macro"],
              "map": report["map"], "test_clips": report["clips"],
              "per_second_f1_micro": report.get("per_second", {}).get("f1_micro"),
              "seconds": round(time.perf_counter() - started, 1)}
    (folder / RESULT_FILE).write_text(json.dumps({"settings": settings, "result": result},
                                                 indent=2))
    return result


def paper_of(name: str) -> tuple:
    """A variant's or baseline's (paper (F1 micro, F1 macro) or None, paper table)."""
    return VARIANTS[name][1:] if name in VARIANTS else BASELINES[name][1:3]


def aggregate(name: str, by_seed: dict) -> dict:
    """Mean and sd (over the seeds finished so far, ddof 1) of each metric, the runs, and the
    paper's figures."""
    paper, table = paper_of(name)
    done = {seed: r for seed, r in by_seed.items() if "skipped" not in r}
    row = {"paper": paper, "table": table, "runs": {str(s): r for s, r in by_seed.items()},
           "seeds_done": len(done)}
    if by_seed and not done:
        return {**row, "skipped": next(iter(by_seed.values()))["skipped"]}
    for metric in METRICS:
        values = [r[metric] for r in done.values() if r.get(metric) is not None]
        row[metric] = float(np.mean(values)) if values else None
        row[f"{metric}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return row


def markdown(summary: dict) -> str:
    def cell(row, metric):
        if row.get(metric) is None:
            return "-"
        sd = row.get(f"{metric}_sd")
        return f"{row[metric]:.3f}" + ("" if sd is None else f" ± {sd:.3f}")

    def number(value):
        return "-" if value is None else f"{value:.2f}"

    seeds, clips = summary["seeds"], summary["data_summary"]
    lines = ["# MMGAT ablations and baselines", "",
             f"Ours: `{summary['data']}` ({clips['clips']} clips, {clips['seconds']} s; test "
             f"split of {clips['splits']['test']} clips), "
             f"{summary['epochs']} epochs with early stopping on validation, frontend "
             f"{summary['frontend']['name']} {summary['frontend']['fingerprint']}; mean ± sd over "
             f"the seeds of {', '.join(map(str, seeds))} finished so far (column seeds). Paper: "
             "OpenMIC-IRMAS (Bai et al. 2025; VGGish frontend).", ""]
    for title, tables in TABLES:
        lines += [f"## {title}", "",
                  "| model | seeds | F1 micro | F1 macro | mAP | per-second F1 micro "
                  "| paper F1 micro | paper F1 macro |", "|---|---|---|---|---|---|---|---|"]
        for name, row in summary["results"].items():
            if row["table"] not in tables:
                continue
            paper = row["paper"] or (None, None)
            ours = ["skipped: " + row["skipped"], "-", "-", "-"] if "skipped" in row else \
                [cell(row, metric) for metric in METRICS]
            lines.append(f"| {name} | {row['seeds_done']} | {' | '.join(ours)} | "
                         f"{number(paper[0])} | {number(paper[1])} |")
        lines.append("")
    return "\n".join(lines)


def bar_chart(summary: dict, path: Path) -> None:
    """Clip and per-second F1 micro per variant, mean with sd error bars, the paper's clip
    figure as a marker; each axis starts a little below its smallest figure so that the small
    differences show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r) for n, r in summary["results"].items() if r.get("f1_micro") is not None]
    figure, panels = plt.subplots(1, 2, sharey=True, figsize=(12, 0.4 * len(rows) + 2))
    positions = np.arange(len(rows))
    for axes, metric, title in zip(panels, ("f1_micro", "per_second_f1_micro"),
                                   ("clip F1 micro", "per-second F1 micro")):
        values = [r[metric] if r[metric] is not None else np.nan for _, r in rows]
        paper = [(i, r["paper"][0]) for i, (_, r) in enumerate(rows)
                 if r["paper"] and metric == "f1_micro"]
        low = min([v for v in values if not np.isnan(v)] + [p for _, p in paper], default=0.0)
        label = f"ours (mean ± sd over the seeds finished, of {len(summary['seeds'])})"
        bars = axes.barh(positions, values, xerr=[r[f"{metric}_sd"] or 0 for _, r in rows],
                         color="tab:blue", capsize=3, label=label)
        axes.bar_label(bars, ["" if np.isnan(v) else f"{v:.3f}" for v in values], padding=6,
                       fontsize=8)
        if paper:
            axes.scatter([p for _, p in paper], [i for i, _ in paper], color="tab:red",
                         marker="|", s=300, label="paper (OpenMIC-IRMAS)", zorder=3)
        axes.set(xlabel=f"{title}, test split", xlim=(max(0.0, low - 0.05), 1.0))
        axes.grid(axis="x", alpha=0.3)
    panels[0].set_yticks(positions, [n for n, _ in rows])
    panels[0].invert_yaxis()
    figure.suptitle("MMGAT ablations and baselines")
    figure.legend(*panels[0].get_legend_handles_labels(), loc="lower center", ncol=2)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args) -> int:
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    summary = ablate(args.data, args.out, args.epochs, args.seeds, args.only, args.frontend,
                     args.device, args.jobs, batch_size=args.batch_size, window=args.window,
                     patience=args.patience, progress=args.progress)
    print(markdown(summary))
    return 0


def register(commands) -> None:
    parser = commands.add_parser("ablate", help="paper ablations + baselines", description=__doc__)
    parser.add_argument("--data", required=True, help="synthetic DIR or OpenMIC .npz")
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                        help="one run of every variant per seed (default: 0)")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without a better val F1 micro before a fit stops")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--frontend", help="frontend file for the instance cache")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these variants")
    parser.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="variants trained at once, each in a process of one thread (default 1)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)

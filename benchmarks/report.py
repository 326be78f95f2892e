"""Run every benchmark on this machine and write benchmarks/RESULTS.md with its PNG plots.

    python benchmarks/report.py --data DIR          # run all (~20 min on 2 cores), then write
    python benchmarks/report.py --report-only       # rewrite RESULTS.md from results/*.json
    python benchmarks/report.py --data DIR --only throughput capacity   # re-run some

DIR is a synthetic data set (`mmgat-train synth`): its first 400 test clips give the precision
F1; its first 200 test clips, written as 44.1 kHz stereo FLAC (as users' files are), and its own
16 kHz WAV files are what the throughput benchmark tags. Each benchmark runs in its own process
(each sets its threads).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CUDA_RESULTS = RESULTS / "cuda"  # the same benchmarks run on a GPU machine (see gpu_section)
CUDA_BENCHMARKS = ("frontend_precision", "live_latency", "throughput", "capacity")
REPORT = HERE / "RESULTS.md"
THROUGHPUT_FILES = 200
USER_RATE = 44_100


def commands(data: Path, folder: Path) -> dict[str, list[str]]:
    return {
        "live_latency": ["live_latency.py"],
        "mic_latency": ["mic_latency.py"],
        "graph_push": ["graph_push.py"],
        "mmgat_ort": ["mmgat_ort.py"],
        "window_scaling": ["window_scaling.py"],
        "frontend_precision": ["frontend_precision.py", "--data", str(data), "--max-clips", "400"],
        "throughput": ["throughput.py", str(folder), "--files", str(THROUGHPUT_FILES)],
        "throughput_16k": ["throughput.py", str(data / "clips"), "--files", str(THROUGHPUT_FILES)],
        "capacity": ["capacity.py"],
        "peers": ["peers.py"],
    }


def user_files(data: Path, folder: Path) -> Path:
    """The data set's first test clips as 44.1 kHz stereo FLAC (decoding and resampling count)."""
    from frontend_precision import test_clips

    for entry in test_clips(data, THROUGHPUT_FILES):
        audio, rate = soundfile.read(data / entry["path"], dtype="float32")
        audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, USER_RATE).numpy()
        soundfile.write(folder / (Path(entry["path"]).stem + ".flac"), np.stack([audio, audio], 1),
                        USER_RATE)
    return folder


def run_all(data: Path, only=None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = user_files(data, Path(scratch))
        for name, command in commands(data, folder).items():
            if only and name not in only:
                continue
            print(f"== {name}", flush=True)
            subprocess.run([sys.executable, str(HERE / command[0]), *command[1:],
                            "--json", str(RESULTS / f"{name}.json")], check=True)


# ---------------------------------------------------------------------------------------------
# RESULTS.md and plots from results/*.json.


def load(name: str, folder: Path = RESULTS) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(result: dict) -> str:
    m = result["machine"]
    return (f"*{m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; commit "
            f"{m.get('commit') or 'unknown'}; {m['date']}.*")


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(name: str, draw) -> str:
    figure = plt.figure(figsize=(7, 4))
    draw(figure)
    figure.tight_layout()
    figure.savefig(HERE / f"{name}.png", dpi=110)
    plt.close(figure)
    return f"![{name}]({name}.png)"


def precision_section(r: dict) -> list[str]:
    rows = [[variant, f"{v['batch1_ms_per_frame']:.2f}", f"{v['batch64_ms_per_frame']:.2f}",
             f"{v['f1_micro']:.3f}", f"{v['f1_micro_change']:+.3f}", f"{v['f1_macro']:.3f}",
             f"{v['per_second_f1_micro']:.3f}"] for variant, v in r["variants"].items()]
    return ["## Frontend precision", provenance(r),
            f"Frontend ms per frame, {r['threads']} thread(s); F1 of the whole shipped model on "
            f"the synthetic test split ({r['test_clips']} clips, {r['test_seconds']} s) with each "
            "variant's instances.", "",
            table(["variant", "batch 1 ms/frame", "batch 64 ms/frame", "F1 micro", "vs fp32",
                   "F1 macro", "per-second F1 micro"], rows), "",
            "Fastest within 0.01 F1 of fp32: batch 1 "
            f"**{r['fastest_within_0.01']['batch1_ms_per_frame']}**, batched "
            f"**{r['fastest_within_0.01']['batch64_ms_per_frame']}**. The default of "
            f"`mmgat-live` and `mmgat-tag` on this CPU: **{r['serving_default']}** (`--precision "
            "fp32` keeps fp32)." + ("" if r["serving_default"] in r["fastest_within_0.01"].values()
                                    else " **Not the measured winner: change `serving_precision`.**")]


def throughput_section(runs: dict[str, dict]) -> list[str]:
    rows = []
    for files, r in runs.items():
        rows += [[files, "bare frontend, batch 64, audio decoded in memory",
                  f"{r['bare_frontend']['x_real_time']:.0f}", ""],
                 [files, "`mmgat-tag` (decode, resample, graph, MMGAT, rows)",
                  f"{r['mmgat_tag']['x_real_time']:.0f}", f"{r['ratio']:.2f}"]]
    first = next(iter(runs.values()))
    return ["## Offline throughput", provenance(first),
            f"{first['files']} files each ({first['mmgat_tag']['audio_s']:.0f} s of audio), "
            f"{first['threads']} thread(s), frontend in {first['precision']}. Goal: `mmgat-tag` >= "
            f"{first['goal_ratio']} x the bare forward. Not counted: model load "
            f"{first['model_load_s']:.1f} s, the first file (numba compilation) "
            f"{first['first_file_s']:.1f} s.", "",
            table(["files", "path", "x real time", "ratio"], rows)]


def capacity_section(r: dict) -> list[str]:
    runs = r["runs"]

    def draw(figure):
        axes = figure.add_subplot()
        n = [run["streams"] for run in runs]
        for key in ("p50", "p99"):
            axes.plot(n, [run["latency_ms"][key] for run in runs], marker="o", label=key)
        axes.axhline(1000, color="grey", linestyle="--", label="1 s")
        axes.set(xlabel="concurrent live streams (hop 1 s, W=10)", ylabel="frame latency, ms",
                 yscale="log", title="capacity")
        axes.legend()

    rows = [[run["streams"], f"{run['latency_ms']['p50']:.0f}", f"{run['latency_ms']['p99']:.0f}",
             f"{run['frames_per_step']:.1f}", "yes" if run["kept_up"] else "no"] for run in runs]
    return ["## Capacity", provenance(r), plot("capacity", draw), "",
            table(["streams", "p50 ms", "p99 ms", "frames per step", "kept up"], rows), "",
            f"Most streams with p99 < 1 s: **{r['max_streams']}** (goal >= {r['goal']})."]


def latency_section(live: dict, mic: dict | None) -> list[str]:
    hop = live["per_hop"]

    def draw(figure):
        axes = figure.add_subplot(1, 2, 1)
        for key, label in (("bare_frontend", "bare frontend"), ("per_hop_compute", "per-hop compute")):
            axes.hist(hop["samples_ms"][key], bins=30, alpha=0.6, label=label)
        axes.set(xlabel="ms", ylabel="hops", title=f"per hop, W={hop['window']}")
        axes.legend()
        if mic:
            axes = figure.add_subplot(1, 2, 2)
            for run in mic["mic_to_label"]:
                axes.hist([x for x in run["latency_ms"] if x is not None], bins=15, alpha=0.6,
                          label=f"hop {run['hop_s']:g} s")
            axes.set(xlabel="ms", title="microphone -> label")
            axes.legend()

    lines = ["## Live latency", provenance(live), plot("latency", draw), "",
             table(["measure", "p50 ms", "p99 ms", "max ms", "n", "goal"], [
                 ["bare frontend, batch 1", *fmt(hop["bare_frontend_ms"]), ""],
                 ["per-hop compute (frontend + graph + MMGAT)", *fmt(hop["per_hop_compute_ms"]),
                  f"p99 x{hop['p99_ratio']:.2f} <= {hop['goal_p99_ratio']}"],
                 *[[f"file click -> record, hop {s['hop_s']:g} s", *fmt(s),
                    f"<= {s['goal_ms']:.0f}: {'met' if s['meets_goal'] else 'missed'}"]
                   for s in live["sound_to_label"]],
                 *[[f"microphone entry -> record, hop {s['hop_s']:g} s", *fmt(s),
                    f"<= {s['goal_ms']:.0f}: {'met' if s['meets_goal'] else 'missed'}"
                    f"{', misses ' + str(len(s['misses'])) if s['misses'] else ''}"]
                   for s in (mic or {}).get("mic_to_label", [])]])]
    if mic:
        lines += ["", f"Microphone: the PulseAudio virtual source of `benchmarks/mic_latency.py` "
                  f"(PortAudio input latency {mic['device']['input_latency_ms']:.1f} ms), "
                  f"{mic['instrument']} entering from silence, W={mic['window']}. "
                  + provenance(mic)]
    return lines


def fmt(q: dict) -> list[str]:
    return [f"{q['p50']:.1f}", f"{q['p99']:.1f}", f"{q['max']:.1f}", str(q["n"])]


def scaling_section(r: dict) -> list[str]:
    rows = r["results"]
    series = [key for key in rows[0] if key.endswith("_ms")]

    def draw(figure):
        axes = figure.add_subplot()
        for key in series:
            axes.plot([row["window"] for row in rows], [row[key]["p50"] for row in rows],
                      marker="o", label=key.removesuffix("_ms").replace("_", " "))
        axes.set(xscale="log", yscale="log", xlabel="W (seconds in the graph)",
                 ylabel="p50 ms", title="scaling in W")
        axes.legend()

    return ["## Scaling in W", provenance(r), plot("window_scaling", draw), "",
            table(["W", *[s.removesuffix("_ms").replace("_", " ") + " p50 ms" for s in series]],
                  [[row["window"], *[f"{row[s]['p50']:.3f}" for s in series]] for row in rows])]


def peers_section(r: dict, throughput: dict | None) -> list[str]:
    models = r["models"]

    def draw(figure):
        names = [m["name"] for m in models.values()]
        axes = figure.add_subplot(1, 2, 1)
        axes.bar(names, [m["per_hop_ms"]["p50"] for m in models.values()])
        axes.set(yscale="log", ylabel="ms", title="per-hop cost, p50")
        axes = figure.add_subplot(1, 2, 2)
        speeds = {("ours, frontend" if key == "ours" else m["name"]): m["offline"]["audio_s_per_wall_s"]
                  for key, m in models.items()}
        if throughput:
            speeds["mmgat-tag"] = throughput["mmgat_tag"]["x_real_time"]
        axes.bar(list(speeds), list(speeds.values()))
        axes.set(ylabel="x real time", title="offline throughput")
        for axis in figure.axes:
            axis.tick_params(axis="x", labelrotation=20)

    rows = [[m["name"], m["per_hop_input"], f"{m['params'] / 1e6:.1f}",
             f"{m['gflops_per_forward']:.2f}", f"{m['per_hop_ms']['p50']:.1f}",
             f"{m['per_hop_ms']['p99']:.1f}", f"{m['offline']['audio_s_per_wall_s']:.0f}"]
            for m in models.values()]
    ratios = r["ratios"]["per_hop_p50"]
    return ["## Peers", provenance(r), plot("peers", draw), "",
            table(["model", "per hop", "params M", "GFLOP/forward", "hop p50 ms", "hop p99 ms",
                   "offline x real time"], rows), "",
            "Per-hop cost ratio, ours / peer (p50): " + ", ".join(
                f"{k.split('/')[1]} {v:.3f}" for k, v in ratios.items())
            + f" (goal: ours <= {r['goal']['per_hop_p50_ours/cnn14']} x CNN14). {r['notes']}."]


def gpu_section(cuda: dict) -> list[str]:
    """The GPU machine's figures in one table: that machine is lent only now and then, for
    minutes, so its runs are kept apart from this machine's and not re-run by --data."""
    precision, live, tag, capacity = (cuda[k] for k in CUDA_BENCHMARKS)
    v, hop = precision["variants"], live["per_hop"]
    rows = [[f"frontend ms per frame, batch 1 / batch 64, {k}",
             f"{v[k]['batch1_ms_per_frame']:.2f} / {v[k]['batch64_ms_per_frame']:.2f}",
             f"F1 micro {v[k]['f1_micro']:.3f} ({v[k]['f1_micro_change']:+.3f}), "
             f"{precision['test_clips']} test clips"] for k in v]
    rows += [["per-hop compute p50 / p99 ms (bare frontend p99)",
              f"{hop['per_hop_compute_ms']['p50']:.1f} / {hop['per_hop_compute_ms']['p99']:.1f} "
              f"({hop['bare_frontend_ms']['p99']:.1f})",
              f"p99 x{hop['p99_ratio']:.2f} <= {hop['goal_p99_ratio']}"]]
    rows += [[f"file click -> record, hop {s['hop_s']:g} s, max ms", f"{s['max']:.0f}",
              f"<= {s['goal_ms']:.0f}: {'met' if s['meets_goal'] else 'missed'}"]
             for s in live["sound_to_label"]]
    rows += [[f"`mmgat-tag` x real time ({tag['files']} 16 kHz WAV files, batch {tag['batch_files']}, "
              f"{tag['threads']} threads; bare frontend)",
              f"{tag['mmgat_tag']['x_real_time']:.0f} ({tag['bare_frontend']['x_real_time']:.0f})",
              f"ratio {tag['ratio']:.2f} (goal >= {tag['goal_ratio']})"],
             [f"live streams with p99 < 1 s ({capacity['threads']} threads)",
              str(capacity["max_streams"]), f">= {capacity['goal']}"]]
    rest_ms = 1e3 / tag["mmgat_tag"]["x_real_time"] - 1e3 / tag["bare_frontend"]["x_real_time"]
    return ["## On a GPU", provenance(precision),
            f"Frontend on CUDA (default precision there: **{precision['serving_default']}**), "
            f"MMGAT in ONNX Runtime's {live['provider']} (`onnxruntime-gpu` was not installed). "
            "Made there with `frontend_precision.py --device cuda --data DIR --max-clips 64 "
            "--threads 1`, `live_latency.py`, `throughput.py FOLDER --threads 8 --batch 64` "
            "(FOLDER: the WAV files of those 64 test clips) and `capacity.py --streams 100 500 1000 2000 "
            "--seconds 10 --threads 8`, each with `--json results/cuda/NAME.json`.",
            "", table(["figure", "result", "note"], rows), "",
            f"Everything but the frontend (decoding, framing, the graph, MMGAT, rows) costs "
            f"`mmgat-tag` {rest_ms:.2f} ms of wall time per second of audio there: with the "
            "frontend on the GPU, that CPU-side work, not the GPU, bounds offline throughput."]


def analysis(results: dict) -> list[str]:
    """Where the time goes and what is near its limit, computed from the figures above."""
    lines = ["## Analysis"]
    live, precision = results["live_latency"], results["frontend_precision"]
    if live:
        stages = {k: v["p50"] for k, v in live["per_hop"]["stages_ms"].items()}
        total = sum(stages.values())
        lines.append("- **Per hop, the frontend is the cost.** Of a live hop's compute (p50), "
                     + ", ".join(f"{k} {v:.2f} ms ({100 * v / total:.0f}%)" for k, v in stages.items())
                     + ". The graph and MMGAT together stay near a millisecond up to W = 64 "
                     "(Scaling in W), so a larger window costs little; a cheaper frontend is "
                     "what would lower latency and raise capacity.")
    if precision:
        v = precision["variants"]
        lines.append(f"- **Precision.** bf16 autocast runs the frontend at "
                     f"{v['fp32']['batch64_ms_per_frame'] / v['bf16']['batch64_ms_per_frame']:.1f}x "
                     f"the fp32 speed batched and {v['fp32']['batch1_ms_per_frame'] / v['bf16']['batch1_ms_per_frame']:.1f}x "
                     f"at batch 1 (F1 micro {v['bf16']['f1_micro_change']:+.3f}); int8 static "
                     f"quantization in ONNX Runtime runs at "
                     f"{v['fp32']['batch64_ms_per_frame'] / v['int8']['batch64_ms_per_frame']:.1f}x / "
                     f"{v['fp32']['batch1_ms_per_frame'] / v['int8']['batch1_ms_per_frame']:.1f}x "
                     f"(F1 micro {v['int8']['f1_micro_change']:+.3f}).")
    throughput = results["throughput_16k"] or results["throughput"]
    if results["capacity"] and throughput:
        frames_per_s = throughput["bare_frontend"]["x_real_time"]
        lines.append(f"- **Capacity** ({results['capacity']['max_streams']} streams at hop 1 s) is "
                     f"bounded by the batched frontend, which scores {frames_per_s:.0f} frames a "
                     f"second on {throughput['threads']} threads (Offline throughput): that many "
                     "streams at most, less the graphs, MMGAT and the loop's own work, and less "
                     "the batches a tick of staggered streams leaves small.")
    if results["throughput"] and results["throughput_16k"]:
        flac, wav = results["throughput"], results["throughput_16k"]
        lines.append(f"- **Offline**, `mmgat-tag` reaches {wav['ratio']:.2f}x the bare batched "
                     f"frontend on 16 kHz WAV files and {flac['ratio']:.2f}x on 44.1 kHz stereo "
                     "FLAC: there, decoding and resampling to 16 kHz run on the same two cores as "
                     "the frontend, which already keeps both busy, so they add to its time rather "
                     "than hide behind it.")
    return lines


def write_report() -> None:
    sections = ["# Benchmarks", "Written by `python benchmarks/report.py` from "
                "`benchmarks/results/*.json`; every figure carries the machine, commit and date "
                "it was measured on. Analysis at the end."]
    results = {name: load(name) for name in commands(Path(), Path())}
    builders = [("live_latency", lambda r: latency_section(r, results["mic_latency"])),
                ("frontend_precision", precision_section),
                ("throughput", lambda r: throughput_section({
                    "44.1 kHz stereo FLAC": r, "16 kHz mono WAV": results["throughput_16k"]}
                    if results["throughput_16k"] else {"44.1 kHz stereo FLAC": r})),
                ("capacity", capacity_section), ("window_scaling", scaling_section),
                ("peers", lambda r: peers_section(r, results["throughput"]))]
    for name, build in builders:
        if results[name]:
            sections += ["", *build(results[name])]
    cuda = {name: load(name, CUDA_RESULTS) for name in CUDA_BENCHMARKS}
    if all(cuda.values()):
        sections += ["", *gpu_section(cuda)]
    sections += ["", *analysis(results)]
    REPORT.write_text("\n".join(sections) + "\n")
    print(f"wrote {REPORT}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="synthetic data set with a test split")
    parser.add_argument("--report-only", action="store_true", help="do not run the benchmarks")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=list(commands(Path(), Path())),
                        help="run only these benchmarks (the others' results are kept)")
    args = parser.parse_args(argv)
    if not args.report_only:
        if args.data is None:
            parser.error("--data is needed to run the benchmarks")
        run_all(args.data, args.only)
    write_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())

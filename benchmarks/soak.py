"""Soak test of mmgat-live: long runs through the full CLI pipeline, watching for leaks and drift.

1. Accelerated: `--hours` (default 2) of varied audio through `mmgat-live --file CLIP
   --as-fast-as-possible --no-display --jsonl FILE --cpu` as a subprocess. The clip is a temporary
   16 kHz mono FLAC (the shipped demo clip, decoded once and looped with a slowly varying gain and
   a little noise, so no two minutes are the same sample for sample); FLAC keeps 2 h of it at
   about 100-150 MB on disk, against 230 MB of raw PCM, and `--file` is the file source the issue
   names (decoding included). `--source stdin` instead pipes the same audio as s16le:16000:1 into
   `--stdin-format` (no disk at all; the same pipeline behind another reader).
2. Real time: `--realtime-minutes` (default 20) of `mmgat-live --device pulse` against a virtual
   microphone (virtual_mic.VirtualMic: a private PulseAudio daemon with a pipe source
   that loops the demo clip in real time), with `--duration` set to match.

For both, once a second: the child's VmRSS, thread count and open fds (/proc/PID) and the number
of records written so far. Warm-up is the first `--warmup-minutes` (default 10) of stream time
(for runs shorter than twice that, the first fifth). Reported: RSS at the end of warm-up, at the
end, its maximum, growth after warm-up (goal < 20 MB) and a least-squares slope in MB per hour of
stream time after warm-up; threads and fds at warm-up end vs the end (ONNX Runtime arenas and
torch caches are inside RSS; a growing thread pool or fd table would show here). Every record's
`t` must be exactly `k * hop + 1 s` (the first record needs one whole 1 s frame), the count
exactly what `--duration` or the audio length gives, and `overruns` 0 in the accelerated run.
For the real-time run also `input_overflows` and the drift of stream time against the wall
clock: the wall time each record appeared in the JSONL (polled every 20 ms) minus the first
one's, less `t_k - t_0`, at the end and as a fitted ppm (a 16 kHz clock written by the virtual
microphone's sleep loop vs the system clock: a few ppm, within tens of ms over 20 min).

    python benchmarks/soak.py --json OUT.json [--hours 2] [--realtime-minutes 20]
        [--skip-accelerated] [--skip-realtime] [--source file|stdin] [--model M.onnx]

Durations on the 2-core test machine (AMD EPYC, shipped model, CPU, hop 1 s): the accelerated
part scores ~50-70 hops a second (the pipeline batches the frames that are ready), so 2 h of audio
takes about 2-3 min plus ~20 s to write the FLAC; the real-time part takes its minutes plus
~20 s of loading. Run it on a quiet machine: the accelerated part keeps a core busy.
`--malloc-mmap-threshold 131072` fixes glibc's adaptive mmap threshold in mmgat-live, which
separates retained memory from the allocator's caching of freed frontend temporaries (single
RSS samples otherwise swing by up to ~30 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table

from machine import machine, save
from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.frontend_file import ASSETS
from virtual_mic import LIVE_COMMAND as LIVE
from virtual_mic import VirtualMic, Watch


DEMO = ASSETS / "demo.flac"
FIRST_T = 1.0  # stream time of the first record: one whole 1 s frame
GOAL_GROWTH_MB = 20.0
SAMPLE_EVERY_S = 1.0
CHUNK_S = 60  # audio generated and written a minute at a time


def demo_mono() -> np.ndarray:
    audio, rate = soundfile.read(str(DEMO), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{DEMO} is {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)


def varied_audio(seconds: float, seed: int = 0):
    """Yield float32 mono chunks (CHUNK_S each, the last shorter): the demo clip looped, under a
    gain that wanders between -20 and +0 dB over minutes, plus faint noise."""
    clip = demo_mono()
    rng = np.random.default_rng(seed)
    total, position = int(round(seconds * SAMPLE_RATE)), 0
    while position < total:
        n = min(CHUNK_S * SAMPLE_RATE, total - position)
        index = (position + np.arange(n)) % len(clip)
        t = (position + np.arange(n)) / SAMPLE_RATE
        gain_db = -10 + 10 * np.sin(2 * np.pi * t / 437.0) * np.cos(2 * np.pi * t / 1913.0)
        chunk = clip[index] * 10 ** (gain_db / 20) + 0.003 * rng.standard_normal(n)
        yield np.clip(chunk, -1, 1).astype(np.float32)
        position += n


def write_flac(path: Path, seconds: float) -> Path:
    with soundfile.SoundFile(str(path), "w", SAMPLE_RATE, 1, format="FLAC", subtype="PCM_16") as out:
        for chunk in varied_audio(seconds):
            out.write(chunk)
    return path


def expected_times(duration_s: float, hop: float) -> list[float]:
    count = int(np.floor((duration_s - FIRST_T) / hop + 1e-9)) + 1
    return [FIRST_T + k * hop for k in range(count)]


def memory_report(samples: list[dict], warmup_s: float) -> dict:
    """RSS, threads and fds after warm-up (stream time of the last record seen >= warmup_s).

    Single RSS samples swing by tens of MB (each hop allocates and frees frontend temporaries,
    and glibc keeps freed heap or returns it depending on its adaptive mmap threshold), so besides
    the raw values at warm-up end and at the end, the growth is also taken on the envelope: the
    floor (minimum) and the peak (maximum) of the last tenth of the samples against the first
    tenth after warm-up. The goal is judged on the larger of those two."""
    seen = [s for s in samples if s["t"] is not None]
    if not seen:
        return {"error": "no /proc sample with records"}
    # the end: the last sample taken while records were still coming (not during the teardown,
    # when threads and fds are already being closed)
    streaming = [s for s in seen if s["records"] < seen[-1]["records"]] or seen
    after = [s for s in streaming if s["t"] >= warmup_s] or streaming[-1:]
    first, last = after[0], streaming[-1]
    rss_after = np.array([s["rss_mb"] for s in after])
    t_after = np.array([s["t"] for s in after]) / 3600
    slope = float(np.polyfit(t_after, rss_after, 1)[0]) if len(after) >= 3 and np.ptp(t_after) > 0 else None
    tenth = max(1, len(after) // 10)
    floor_growth = float(rss_after[-tenth:].min() - rss_after[:tenth].min())
    peak_growth = float(rss_after[-tenth:].max() - rss_after[:tenth].max())
    growth = max(floor_growth, peak_growth)
    return {
        "warmup_stream_s": warmup_s, "samples_after_warmup": len(after),
        "rss_mb_warmup_end": first["rss_mb"], "rss_mb_end": last["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in seen),
        "rss_mb_max_after_warmup": float(rss_after.max()),
        "rss_growth_mb": last["rss_mb"] - first["rss_mb"],
        "rss_floor_growth_mb": floor_growth, "rss_peak_growth_mb": peak_growth,
        "rss_slope_mb_per_hour": slope,
        "threads_warmup_end": first["threads"], "threads_end": last["threads"],
        "fds_warmup_end": first["fds"], "fds_end": last["fds"],
        "goal_growth_mb": GOAL_GROWTH_MB,
        "meets_goal": bool(growth < GOAL_GROWTH_MB and last["threads"] <= first["threads"]
                           and last["fds"] <= first["fds"]),
    }


def timestamp_report(records: list[dict], duration_s: float, hop: float) -> dict:
    errors = [r for r in records if "error" in r]
    good = [r for r in records if "error" not in r]
    times = [r["t"] for r in good]
    expected = expected_times(duration_s, hop)
    off_grid = [(k, t) for k, t in enumerate(times) if t != round(FIRST_T + k * hop, 4)]
    return {"records": len(good), "expected_records": len(expected), "count_ok": len(good) == len(expected),
            "off_grid": len(off_grid), "first_off_grid": off_grid[:5], "timestamps_exact": not off_grid,
            "error_records": [r["error"] for r in errors],
            "overruns_end": good[-1]["overruns"] if good else None,
            "input_overflows_end": good[-1]["input_overflows"] if good else None,
            "overruns_max": max((r["overruns"] for r in good), default=None)}


def compute_latency(records: list[dict]) -> dict:
    values = np.array([r["latency_ms"].get("compute", sum(r["latency_ms"].values())) for r in records
                       if "error" not in r], float)
    if not len(values):
        return {}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max())}


def drift_report(records: list[dict], arrivals: list[float], warmup_s: float) -> dict:
    """(wall_k - wall_0) - (t_k - t_0) from the arrival of each record, end value and fitted ppm
    (from the end of warm-up, once the pipeline has settled)."""
    pairs = [(r["t"], a) for r, a in zip(records, arrivals) if "error" not in r]
    if len(pairs) < 3:
        return {}
    t = np.array([p[0] for p in pairs])
    wall = np.array([p[1] for p in pairs])
    lag = (wall - wall[0]) - (t - t[0])  # seconds the stream is behind the wall clock, relative
    settled = t >= min(warmup_s, t[-1] / 2)
    slope = float(np.polyfit(t[settled], lag[settled], 1)[0]) if settled.sum() >= 3 else float("nan")
    # record 0 may itself have come late; the median over the first and the last minute does not
    # hang on one record
    first_minute, last_minute = lag[t <= t[0] + 60], lag[t >= t[-1] - 60]
    return {"drift_end_ms": float(lag[-1] * 1e3), "drift_max_abs_ms": float(np.abs(lag).max() * 1e3),
            "drift_p99_abs_ms": float(np.percentile(np.abs(lag), 99) * 1e3),
            "drift_median_last_vs_first_minute_ms": float((np.median(last_minute) - np.median(first_minute)) * 1e3),
            "drift_ppm": slope * 1e6, "stream_s": float(t[-1] - t[0]),
            "lag_ms": [round(float(x) * 1e3, 1) for x in lag]}


def child_command(model, hop, window, extra) -> list[str]:
    command = [*LIVE, "--no-display", "--cpu", "--hop", str(hop), *extra]
    if model:
        command += ["--model", str(model)]
    if window:
        command += ["--window", str(window)]
    return command


def child_env(args, env) -> dict:
    env = dict(env)
    if args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    return env


def finish(process: subprocess.Popen, stderr_path: Path) -> dict:
    return {"returncode": process.returncode, "survived": process.returncode == 0,
            "stderr_tail": stderr_path.read_text(errors="replace")[-2000:]}


def accelerated(hours: float, source: str, args, work: Path, console: Console) -> dict:
    seconds = hours * 3600
    jsonl, stderr_path = work / "accelerated.jsonl", work / "accelerated.stderr"
    feed = None
    if source == "file":
        console.print(f"writing {seconds / 60:g} min of audio to a temporary FLAC ...")
        clip = write_flac(work / "soak.flac", seconds)
        extra = ["--file", str(clip), "--as-fast-as-possible", "--jsonl", str(jsonl)]
        file_mb = clip.stat().st_size / 2**20
    else:
        extra = ["--stdin-format", f"s16le:{SAMPLE_RATE}:1", "--as-fast-as-possible", "--jsonl", str(jsonl)]
        file_mb = None
    console.print(f"accelerated: {seconds / 3600:g} h through mmgat-live ({source}) ...")
    started = time.monotonic()
    with open(stderr_path, "wb") as err:
        process = subprocess.Popen(child_command(args.model, args.hop, args.window, extra),
                                   env=child_env(args, os.environ), stdin=subprocess.PIPE if source == "stdin" else subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err)
        if source == "stdin":
            def pump():
                try:
                    for chunk in varied_audio(seconds):
                        process.stdin.write((chunk * 32767).astype("<i2").tobytes())
                except BrokenPipeError:
                    pass
                finally:
                    try:
                        process.stdin.close()
                    except BrokenPipeError:
                        pass
            feed = threading.Thread(target=pump, daemon=True)
            feed.start()
        watch = Watch(process, jsonl)
        watch.follow(args.sample_every)
        process.wait()
    if feed is not None:
        feed.join(30)
    wall = time.monotonic() - started
    warmup = args.warmup_minutes * 60 if seconds >= 2 * args.warmup_minutes * 60 else seconds / 5
    return {"stream_s": seconds, "source": source, "flac_mb": file_mb, "wall_s": wall,
            "x_real_time": seconds / wall, **finish(process, stderr_path),
            "memory": memory_report(watch.samples, warmup),
            "timestamps": timestamp_report(watch.records, seconds, args.hop),
            "compute_ms": compute_latency(watch.records), "samples": watch.samples}


def realtime(minutes: float, args, work: Path, console: Console) -> dict:
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        return {"skipped": "pulseaudio is not installed"}
    seconds = minutes * 60
    jsonl, stderr_path = work / "realtime.jsonl", work / "realtime.stderr"
    (work / "pulse").mkdir()
    mic = VirtualMic(work / "pulse")
    mic.start()
    try:
        mic.play(demo_mono())
        console.print(f"real time: {minutes:g} min on the virtual microphone ...")
        extra = ["--device", "pulse", "--jsonl", str(jsonl), "--duration", str(seconds)]
        started = time.monotonic()
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen(child_command(args.model, args.hop, args.window, extra),
                                       env=child_env(args, mic.env),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            watch = Watch(process, jsonl)
            watch.follow(args.sample_every)
            process.wait()
        wall = time.monotonic() - started
    finally:
        mic.stop()
    warmup = args.warmup_minutes * 60 if seconds >= 2 * args.warmup_minutes * 60 else seconds / 5
    return {"stream_s": seconds, "wall_s": wall, **finish(process, stderr_path),
            "memory": memory_report(watch.samples, warmup),
            "timestamps": timestamp_report(watch.records, seconds, args.hop),
            "drift": drift_report(watch.records, watch.arrivals, warmup),
            "compute_ms": compute_latency(watch.records), "samples": watch.samples}


def show(report: dict, console: Console) -> None:
    m = report["machine"]
    table = Table(title=f"mmgat-live soak: {m['cpu']}, {m['cores']} cores, hop {report['hop']:g} s")
    table.add_column("measure")
    for name in ("accelerated", "realtime"):
        table.add_column(name, justify="right")
    runs = [report.get("accelerated"), report.get("realtime")]

    def cell(run, fmt, *keys):
        if not run or "skipped" in run:
            return (run or {}).get("skipped", "skipped")
        value = run
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return "-"
        return fmt.format(value) if not isinstance(value, bool) else ("yes" if value else "NO")

    def row(name, fmt, *keys):
        table.add_row(name, *(cell(run, fmt, *keys) for run in runs))

    row("stream minutes", "{:.0f}", "stream_min")
    row("wall minutes", "{:.1f}", "wall_min")
    row("exit status", "{}", "returncode")
    row("records / expected", "{}", "timestamps", "records_of")
    row("timestamps exactly k*hop+1", "{}", "timestamps", "timestamps_exact")
    row("overruns (end)", "{}", "timestamps", "overruns_end")
    row("input overflows (end)", "{}", "timestamps", "input_overflows_end")
    row("RSS MB at warm-up end", "{:.1f}", "memory", "rss_mb_warmup_end")
    row("RSS MB at end", "{:.1f}", "memory", "rss_mb_end")
    row("RSS MB max", "{:.1f}", "memory", "rss_mb_max")
    row("RSS growth MB, raw samples", "{:+.1f}", "memory", "rss_growth_mb")
    row("RSS floor growth MB (last vs first tenth)", "{:+.1f}", "memory", "rss_floor_growth_mb")
    row("RSS peak growth MB (last vs first tenth)", "{:+.1f}", "memory", "rss_peak_growth_mb")
    row("RSS slope MB/h after warm-up", "{:+.2f}", "memory", "rss_slope_mb_per_hour")
    row("threads warm-up end -> end", "{}", "memory", "threads")
    row("open fds warm-up end -> end", "{}", "memory", "fds")
    row(f"memory goal met (envelope growth < {GOAL_GROWTH_MB:g} MB)", "{}", "memory", "meets_goal")
    row("compute ms p50/p99", "{}", "compute")
    row("drift at end ms", "{:+.1f}", "drift", "drift_end_ms")
    row("drift, median last vs first minute ms", "{:+.1f}", "drift", "drift_median_last_vs_first_minute_ms")
    row("drift max |ms| / p99 |ms|", "{}", "drift", "max_p99")
    row("drift ppm (fit)", "{:+.1f}", "drift", "drift_ppm")
    console.print(table)


def annotate(run: dict | None) -> None:
    """Derived strings for the table (kept in the JSON too)."""
    if not run or "skipped" in run:
        return
    run["stream_min"], run["wall_min"] = run["stream_s"] / 60, run["wall_s"] / 60
    ts, mem = run["timestamps"], run["memory"]
    ts["records_of"] = f"{ts['records']} / {ts['expected_records']}"
    if "threads_end" in mem:
        mem["threads"] = f"{mem['threads_warmup_end']} -> {mem['threads_end']}"
        mem["fds"] = f"{mem['fds_warmup_end']} -> {mem['fds_end']}"
    if run.get("drift"):
        run["drift"]["max_p99"] = f"{run['drift']['drift_max_abs_ms']:.0f} / {run['drift']['drift_p99_abs_ms']:.0f}"
    if run["compute_ms"]:
        run["compute"] = f"{run['compute_ms']['p50']:.1f} / {run['compute_ms']['p99']:.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--hours", type=float, default=2.0, help="accelerated audio, hours (default 2)")
    parser.add_argument("--realtime-minutes", type=float, default=20.0, help="real-time run, minutes (default 20)")
    parser.add_argument("--skip-accelerated", action="store_true")
    parser.add_argument("--skip-realtime", action="store_true")
    parser.add_argument("--source", choices=("file", "stdin"), default="file",
                        help="accelerated input: a temporary FLAC via --file (default) or s16le on stdin")
    parser.add_argument("--warmup-minutes", type=float, default=10.0, help="stream time before RSS is baselined")
    parser.add_argument("--hop", type=float, default=1.0, help="mmgat-live --hop (default 1.0)")
    parser.add_argument("--window", type=int, help="mmgat-live --window (default: the model's)")
    parser.add_argument("--model", help="artifact (default: mmgat-live's default, the shipped one)")
    parser.add_argument("--sample-every", type=float, default=SAMPLE_EVERY_S, metavar="S",
                        help="seconds between /proc samples (default 1)")
    parser.add_argument("--malloc-mmap-threshold", type=int, metavar="BYTES",
                        help="set MALLOC_MMAP_THRESHOLD_ for mmgat-live (e.g. 131072): a fixed glibc threshold "
                             "returns every large temporary to the OS, so RSS shows retained memory only")
    parser.add_argument("--keep", metavar="DIR", help="keep the JSONL, stderr and FLAC here")
    args = parser.parse_args(argv)

    console = Console()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmgat-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "hop": args.hop, "window": args.window, "model": args.model,
              "malloc_mmap_threshold": args.malloc_mmap_threshold,
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        if not args.skip_realtime:  # first: it needs the quieter machine (no FLAC being written)
            report["realtime"] = realtime(args.realtime_minutes, args, work, console)
        if not args.skip_accelerated:
            report["accelerated"] = accelerated(args.hours, args.source, args, work, console)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for name in ("accelerated", "realtime"):
        annotate(report.get(name))
    save(report, args.json)
    show(report, console)
    ok = all(run.get("survived") and run["timestamps"]["timestamps_exact"] and run["timestamps"]["count_ok"]
             and run["memory"].get("meets_goal")
             for run in (report.get("accelerated"), report.get("realtime")) if run and "skipped" not in run)
    accel = report.get("accelerated")
    if accel and "skipped" not in accel and accel["timestamps"]["overruns_end"]:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

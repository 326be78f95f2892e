"""CPU stress during a real-time run of mmgat-live: drops are counted, never a crash, and the stream
recovers with exact timestamps.

`mmgat-live --device pulse --no-display --jsonl FILE --duration S` runs on a virtual microphone
(virtual_mic.VirtualMic looping the demo clip in real time), started `--cli-nice`
(default 19) steps nicer than this script, so that busy loops at this script's own priority starve
it without root. From `--stress-start` s of stream (default 10) for `--stress-seconds` (default
10), `--hogs` busy-loop processes (default: one per core) run. Reported, from the JSONL records
and the wall time each one appeared in the file (polled every 20 ms):

- overruns (samples the ring dropped) and input_overflows before / during / after the stress,
  by the records that appeared in each phase;
- whether the process survived (exit 0, no traceback) and wrote every record `--duration` asks
  for (stream time counts the audio received, so dropped samples do not advance it);
- whether every `t` is exactly `k * hop + 1 s`;
- the lag of stream time behind the wall clock, relative to the first record: its baseline
  before the stress, its peak, when it came back to baseline + the audio the ring dropped +
  0.25 s after the stress ended (and stayed there; audio lost by the device itself, counted only
  as `input_overflows` events, would raise it for good), whether the last 5 records came one a
  hop (steady lag: the worker is not draining a backlog), and `latency_ms.compute` before vs
  after the recovery;
- what the plain display printed: the lines whose `overruns N` (display.losses()) show the drops.

    python benchmarks/cpu_stress.py --json OUT.json [--seconds 40] [--stress-start 10]
        [--stress-seconds 10] [--hogs N] [--cli-nice 19] [--cli-sched-idle] [--hog-nice N]
        [--hop 1.0] [--model M] [--keep DIR]

About a minute: ~20 s of model loading plus `--seconds` of stream (longer if audio was dropped).
Run it from an ordinary shell (nice 0): run under `nice -n 19` itself, the CLI cannot be made
nicer than the hogs (niceness stops at 19); then `--cli-sched-idle` (SCHED_IDLE, below any
niceness, no root needed) starves it instead, or `--hog-nice` lowers the hogs' (root only).
A heartbeat thread in this process (where the virtual microphone's writer runs) reports its
largest scheduling gap during the stress, to tell a starved microphone from a starved CLI.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from machine import machine, save
from mmgat.model.audio import SAMPLE_RATE
from virtual_mic import LIVE_COMMAND as LIVE
from virtual_mic import VirtualMic, Watch
from soak import FIRST_T, SAMPLE_EVERY_S, demo_mono


RECOVERY_SLACK_S = 0.25  # lag within baseline + dropped audio + this counts as caught up
OVERRUNS = re.compile(r"overruns (\d+)")
HOG = "while True:\n    pass\n"


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


class Heartbeat:
    """A thread of this process that wakes every 20 ms and keeps the largest gap between wake-ups:
    the virtual microphone's writer thread lives in this process, so a large gap means the
    microphone itself may have stalled (the source then truly delivers nothing)."""

    def __init__(self):
        self.max_gap_s, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            self.max_gap_s = max(self.max_gap_s, now - last - 0.02)
            last = now

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def start_hogs(count: int, hog_nice: int | None) -> list[subprocess.Popen]:
    def renice():
        if hog_nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, hog_nice)

    return [subprocess.Popen([sys.executable, "-c", HOG], preexec_fn=renice, stdin=subprocess.DEVNULL)
            for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        hog.kill()
    for hog in hogs:
        hog.wait()


def phase_counts(records, arrivals, on: float, off: float, key: str) -> dict:
    """The counter's increase over the records that appeared before, during and after the stress."""
    def last_before(wall):
        values = [r[key] for r, a in zip(records, arrivals) if a < wall]
        return values[-1] if values else 0

    before, during_end = last_before(on), last_before(off)
    end = records[-1][key] if records else 0
    return {"before": before, "during": during_end - before, "after": end - during_end, "total": end}


def lag_report(records, arrivals, on: float, off: float, hop: float) -> dict:
    t = np.array([r["t"] for r in records])
    wall = np.array(arrivals)
    lag = (wall - wall[0]) - (t - t[0])
    before = lag[wall < on]
    baseline = float(np.median(before)) if len(before) else 0.0
    dropped_s = records[-1]["overruns"] / SAMPLE_RATE  # the device is opened at 16 kHz mono
    target = baseline + dropped_s + RECOVERY_SLACK_S
    after = np.flatnonzero(wall >= off)
    recovered_index = None
    for i in after:  # the first record after the stress from which on the lag stays near baseline
        if np.all(lag[i:] <= target):
            recovered_index = int(i)
            break
    compute = np.array([r["latency_ms"]["compute"] for r in records])
    settled = compute[recovered_index + 1:] if recovered_index is not None else np.array([])
    return {
        # the last records came one a hop (steady lag), not in the burst of a backlog draining
        "lag_spread_last_5_ms": float(np.ptp(lag[-5:]) * 1e3),
        "keeps_pace_at_end": bool(np.ptp(lag[-5:]) < RECOVERY_SLACK_S),
        "lag_baseline_ms": baseline * 1e3, "lag_peak_ms": float(lag.max() * 1e3),
        "lag_end_ms": float(lag[-1] * 1e3), "dropped_audio_s": dropped_s,
        "lag_end_less_dropped_ms": float((lag[-1] - dropped_s) * 1e3),
        "recovered": recovered_index is not None,
        "recovered_after_stress_s": float(wall[recovered_index] - off) if recovered_index is not None else None,
        "recovered_at_t": float(t[recovered_index]) if recovered_index is not None else None,
        "compute_ms_p50_before": float(np.median(compute[wall < on])) if np.any(wall < on) else None,
        "compute_ms_max_during": float(compute[(wall >= on) & (wall < off)].max())
        if np.any((wall >= on) & (wall < off)) else None,
        "compute_ms_p50_after_recovery": float(np.median(settled)) if len(settled) else None,
        "lag_ms": [round(float(x) * 1e3, 1) for x in lag],
    }


def display_report(lines: list[str]) -> dict:
    updates = [line for line in lines if line.startswith("t ")]
    counts = [int(m.group(1)) if (m := OVERRUNS.search(line)) else None for line in updates]
    first_drop = next((line for line, c in zip(updates, counts) if c), None)
    return {"update_lines": len(updates), "lines_with_losses_text": sum(c is not None for c in counts),
            "first_line_with_overruns": first_drop, "last_line": updates[-1] if updates else None,
            "device_overflows_shown": any("device overflows" in line for line in updates),
            "overruns_shown_final": counts[-1] if counts else None}


def stress_run(args, work: Path, console: Console) -> dict:
    jsonl = work / "stress.jsonl"
    (work / "pulse").mkdir()
    mic = VirtualMic(work / "pulse")
    mic.start()
    hogs: list[subprocess.Popen] = []
    try:
        mic.play(demo_mono())
        command = [*LIVE, "--device", "pulse", "--cpu", "--no-display", "--jsonl", str(jsonl),
                   "--duration", str(args.seconds), "--hop", str(args.hop)]
        if args.model:
            command += ["--model", args.model]
        with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
            def deprioritise():
                os.nice(args.cli_nice)
                if args.cli_sched_idle:
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

            process = subprocess.Popen(command, env=mic.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       preexec_fn=deprioritise)
            watch = Watch(process, jsonl)
            follower = threading.Thread(target=watch.follow, args=(SAMPLE_EVERY_S,), daemon=True)
            follower.start()
            console.print(f"CPU stress: waiting for stream time {args.stress_start:g} s ...")
            while process.poll() is None and not any(r.get("t", 0) >= args.stress_start for r in watch.records):
                time.sleep(0.02)
            on = time.monotonic()
            with Heartbeat() as heartbeat:
                hogs = start_hogs(args.hogs, args.hog_nice)
                console.print(f"  {len(hogs)} hog(s) on for {args.stress_seconds:g} s")
                time.sleep(args.stress_seconds)
                stop_hogs(hogs)
            off = time.monotonic()
            hogs = []
            console.print("  hogs off; waiting for the run to end ...")
            process.wait(timeout=args.seconds * 4 + 120)
            follower.join(30)
    finally:
        stop_hogs(hogs)
        mic.stop()
    stdout = (work / "stdout.txt").read_text(errors="replace")
    stderr = (work / "stderr.txt").read_text(errors="replace")
    records = [r for r in watch.records if "error" not in r]
    arrivals = [a for r, a in zip(watch.records, watch.arrivals) if "error" not in r]
    expected = int(np.floor((args.seconds - FIRST_T) / args.hop + 1e-9)) + 1
    off_grid = [(k, r["t"]) for k, r in enumerate(records) if r["t"] != round(FIRST_T + k * args.hop, 4)]
    first = arrivals[0] if arrivals else on
    report = {
        "returncode": process.returncode,
        "survived": process.returncode == 0 and "Traceback" not in stderr,
        "error_records": [r["error"] for r in watch.records if "error" in r],
        "records": len(records), "expected_records": expected, "count_ok": len(records) == expected,
        "timestamps_exact": not off_grid, "first_off_grid": off_grid[:5],
        "stress_on_wall_s": on - first, "stress_off_wall_s": off - first,
        "stress_on_t": next((r["t"] for r, a in zip(records, arrivals) if a >= on), None),
        "hogs": args.hogs, "cli_nice": niceness() + args.cli_nice if niceness() + args.cli_nice < 19 else 19,
        "hog_nice": args.hog_nice if args.hog_nice is not None else niceness(),
        "cli_sched_idle": args.cli_sched_idle,
        "mic_process_max_gap_ms_during_stress": heartbeat.max_gap_s * 1e3,
        "stderr_tail": stderr[-2000:],
    }
    if records:
        report["overruns"] = phase_counts(records, arrivals, on, off, "overruns")
        report["input_overflows"] = phase_counts(records, arrivals, on, off, "input_overflows")
        report["lag"] = lag_report(records, arrivals, on, off, args.hop)
    report["display"] = display_report(stdout.splitlines())
    report["t"] = [r["t"] for r in records]
    report["arrival_s"] = [round(a - first, 3) for a in arrivals]
    return report


def show(report: dict, console: Console) -> None:
    m, r = report["machine"], report["run"]
    table = Table(title=f"mmgat-live under CPU stress: {m['cpu']}, {m['cores']} cores; {r['hogs']} hog(s) at "
                        f"nice {r['hog_nice']}, CLI at nice {r['cli_nice']}{' SCHED_IDLE' if r['cli_sched_idle'] else ''}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    yes = {True: "yes", False: "NO"}
    over, flows, lag, shown = r.get("overruns", {}), r.get("input_overflows", {}), r.get("lag", {}), r["display"]

    def fmt(value, spec="{}"):
        return "-" if value is None else spec.format(value)

    rows = [
        ("survived (exit 0, no traceback)", yes[r["survived"]]),
        ("error records", "; ".join(r["error_records"]) or "-"),
        ("virtual mic's process: max scheduling gap ms", f"{r['mic_process_max_gap_ms_during_stress']:.0f}"),
        ("records / expected", f"{r['records']} / {r['expected_records']}"),
        ("timestamps exactly k*hop+1", yes[r["timestamps_exact"]]),
        ("stress (wall s after first record)", f"{r['stress_on_wall_s']:.1f} -> {r['stress_off_wall_s']:.1f}"),
        ("overruns before / during / after", f"{over.get('before')} / {over.get('during')} / {over.get('after')}"),
        ("input overflows before / during / after",
         f"{flows.get('before')} / {flows.get('during')} / {flows.get('after')}"),
        ("dropped audio s", fmt(lag.get("dropped_audio_s"), "{:.3f}")),
        ("lag baseline / peak / end ms", f"{fmt(lag.get('lag_baseline_ms'), '{:.0f}')} / "
                                         f"{fmt(lag.get('lag_peak_ms'), '{:.0f}')} / {fmt(lag.get('lag_end_ms'), '{:.0f}')}"),
        ("lag at end less dropped audio ms", fmt(lag.get("lag_end_less_dropped_ms"), "{:.0f}")),
        ("keeps pace at the end (lag spread, last 5)", f"{yes[bool(lag.get('keeps_pace_at_end'))]} "
                                                      f"({fmt(lag.get('lag_spread_last_5_ms'), '{:.0f}')} ms)"),
        ("recovered (s after the stress)", f"{yes[bool(lag.get('recovered'))]} "
                                           f"({fmt(lag.get('recovered_after_stress_s'), '{:.1f}')})"),
        ("compute ms p50 before / max during / p50 after",
         f"{fmt(lag.get('compute_ms_p50_before'), '{:.1f}')} / {fmt(lag.get('compute_ms_max_during'), '{:.0f}')} / "
         f"{fmt(lag.get('compute_ms_p50_after_recovery'), '{:.1f}')}"),
        ("display: lines with the losses text", f"{shown['lines_with_losses_text']} / {shown['update_lines']}"),
        ("display: overruns shown at the end", fmt(shown["overruns_shown_final"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if shown["first_line_with_overruns"]:
        console.print(f"first display line with drops: {shown['first_line_with_overruns']}", highlight=False,
                      markup=False, soft_wrap=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--seconds", type=float, default=40.0, help="stream seconds (--duration; default 40)")
    parser.add_argument("--stress-start", type=float, default=10.0, help="stream time the hogs start (default 10)")
    parser.add_argument("--stress-seconds", type=float, default=10.0, help="how long they run (default 10)")
    parser.add_argument("--hogs", type=int, default=os.cpu_count(), help="busy loops (default: one per core)")
    parser.add_argument("--cli-nice", type=int, default=19, help="niceness added to mmgat-live's (default 19)")
    parser.add_argument("--hog-nice", type=int, help="absolute niceness of the hogs (default: this script's; "
                        "lower than it needs root)")
    parser.add_argument("--cli-sched-idle", action="store_true",
                        help="also run mmgat-live under SCHED_IDLE (below any niceness; no root needed): "
                             "starves it even when this script runs under nice -n 19")
    parser.add_argument("--hop", type=float, default=1.0, help="mmgat-live --hop (default 1.0)")
    parser.add_argument("--model", help="artifact (default: mmgat-live's default, the shipped one)")
    parser.add_argument("--keep", metavar="DIR", help="keep the JSONL and the CLI's output here")
    args = parser.parse_args(argv)
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        parser.error("pulseaudio is not installed (the virtual microphone needs it)")

    console = Console()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmgat-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = {"machine": machine(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "run": stress_run(args, work, console)}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    save(report, args.json)
    show(report, console)
    run = report["run"]
    lag = run.get("lag", {})
    ok = (run["survived"] and run["timestamps_exact"] and run["count_ok"] and lag.get("keeps_pace_at_end")
          and (lag.get("recovered") or run["input_overflows"]["total"] > 0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

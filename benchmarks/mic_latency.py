"""Sound in to label out through the real PortAudio capture path, from a virtual microphone.

Starts its own PulseAudio daemon with a pipe source, opens PortAudio's `pulse` device as
`mmgat-live --device N` does (DeviceSource -> Stream -> scheduler.run, a JSONL sink to /dev/null), and
writes into the pipe, in real time and 10 ms at a time, silence with entries of a real passage:
seconds 6-8 of the shipped demo clip, where it has cymbals (demo.labels.json) and the shipped
model marks them from silence (checked offline first). Per entry: wall time from writing its
first sample into the pipe to having written the first record whose `active` holds the
instrument; never marked = a miss. Goal, at hop 1 s and 0.25 s: max <= frame + hop + 50 ms.

    python benchmarks/mic_latency.py [--json OUT.json] [--entries 20] [--window 3] [--model M.onnx]

Window 3, not the live default 10: an instrument stays marked until the passage's frames leave
the W-frame graph (about W s after it ends), so entries must be 2 + W + 1 s apart (+ a random
0..hop s that spreads them over the frame phases) and must start unmarked (else skipped). That is
~4.5 min for 2 x 20 entries at W=3, ~10 min at W=10; W changes only the graph and MMGAT part of
the per-hop compute, a few ms (see mmgat_ort.py). --window 10 measures the default.
Needs pulseaudio, libasound2-plugins, libportaudio2 (see "No microphone? a virtual one" in README.md).
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
import torch
import torchaudio
from rich.console import Console
from rich.table import Table

from mmgat.export.runtime import load_runtime
from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
from mmgat.model.frontend_file import ASSETS
from mmgat.stream.pipeline import Pipeline
from mmgat.stream.scheduler import run
from mmgat.stream.settings import StreamSettings
from mmgat.stream.stream import Stream
from mmgat.stream.sinks import JsonlSink, record
from mmgat.stream.sources import DeviceSource, SourceError

from live_latency import FRAME_S, SLACK_MS, percentiles
from machine import machine, save
from mmgat_ort import artifact

RESULTS = Path(__file__).resolve().parent / "results"
HOPS = (1.0, 0.25)
BLOCK = SAMPLE_RATE // 100  # samples per write: 10 ms
LEAD_S = 3.0  # silence before the first entry: the stream starts, the graph fills with silence
GAP_S = 1.0  # silence after the W s the graph still holds a passage, before the next entry


class Failed(RuntimeError):
    """The virtual microphone or the model cannot do the measurement: one line, exit 1."""


class Finished(Exception):
    """Raised from the sink callback once the whole schedule is in the pipe: ends run()."""


def start_pulse(runtime: Path) -> tuple[subprocess.Popen, Path]:
    """A PulseAudio daemon of our own (a child process) with the pipe source as default input."""
    os.environ["PULSE_RUNTIME_PATH"] = os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # before sounddevice
    runtime.chmod(0o700)
    fifo, log = runtime / "vmic.fifo", runtime / "pulse.log"
    if shutil.which("pulseaudio") is None:
        raise Failed("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins libportaudio2)")
    daemon = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n", "--disallow-exit",
         f"--log-target=file:{log}", "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=vsink",
         f"--load=module-pipe-source source_name=vmic file={fifo} format=s16le rate={SAMPLE_RATE} channels=1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (fifo.exists() and (runtime / "native").exists()):
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_pulse(daemon)
            last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise Failed(f"PulseAudio did not start{': ' + last[0] if last else ''}")
        time.sleep(0.05)
    return daemon, fifo


def stop_pulse(daemon: subprocess.Popen) -> None:
    daemon.terminate()
    try:
        daemon.wait(5)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def pulse_device() -> int:
    try:
        import sounddevice as sd
    except OSError as error:  # no libportaudio2
        raise Failed(f"cannot load PortAudio: {error}") from None
    for index, info in enumerate(sd.query_devices()):
        if info["name"] == "pulse" and info["max_input_channels"] > 0:
            return index
    raise Failed("PortAudio lists no 'pulse' input device (is libasound2-plugins installed?)")


def load_excerpt(clip: Path, span: str) -> np.ndarray:
    """Seconds START:END of the clip as 16 kHz mono s16, a whole number of write blocks."""
    start, end = (float(s) for s in span.split(":"))
    audio, rate = soundfile.read(str(clip), dtype="float32", always_2d=True)
    audio = torch.from_numpy(audio.mean(1)[int(start * rate):int(end * rate)].copy())
    if rate != SAMPLE_RATE:
        audio = torchaudio.functional.resample(audio, rate, SAMPLE_RATE)
    audio = audio.numpy()[: len(audio) // BLOCK * BLOCK]
    return np.round(np.clip(audio, -1, 32767 / 32768) * 32768).astype(np.int16)


def check_model(pipeline: Pipeline, session, excerpt: np.ndarray, instrument: str, window: int) -> None:
    """Offline, hop 1: the model must not mark the instrument on silence, and must mark the passage."""
    if instrument not in session.metadata["classes"]:
        raise Failed(f"the model has no class {instrument!r}")
    lead = window * SAMPLE_RATE + FRAME_SAMPLES
    audio = np.concatenate([np.zeros(lead, np.float32), excerpt / 32768.0]).astype(np.float32)
    stream, marks = Stream.fed(StreamSettings(window, 1.0, **session.graph)), {False: [], True: []}
    for at in range(0, len(audio), BLOCK):
        stream.feed(audio[at:at + BLOCK])
        for update in pipeline.step([stream]):
            marks[update.end_sample > lead].append(instrument in update.active)
    if any(marks[False]) or not any(marks[True]):
        what = "marks it on silence" if any(marks[False]) else "never marks it in the passage"
        raise Failed(f"{instrument}: the model {what}; choose another --excerpt / --instrument")


class Writer(threading.Thread):
    """Writes the schedule into the pipe in real time, then silence until halted (a pipe source
    with no writer stalls the capture stream); notes when each entry's first sample is in."""

    def __init__(self, fifo: Path, audio: np.ndarray, starts: list[int]):
        super().__init__(daemon=True)
        self.fifo, self.audio, self.starts = fifo, audio, set(starts)
        self.entry_times: list[float] = []  # perf_counter() once each entry's first sample is written
        self.done, self.halt = threading.Event(), threading.Event()

    def run(self) -> None:
        fd, silence, at = os.open(self.fifo, os.O_WRONLY), bytes(2 * BLOCK), 0
        started = time.perf_counter()
        try:
            while not self.halt.is_set():
                time.sleep(max(0.0, started + at / SAMPLE_RATE - time.perf_counter()))
                os.write(fd, self.audio[at:at + BLOCK].tobytes() if at < len(self.audio) else silence)
                if at in self.starts:
                    self.entry_times.append(time.perf_counter())
                at += BLOCK
                if at >= len(self.audio):
                    self.done.set()
        finally:
            os.close(fd)


def schedule(excerpt: np.ndarray, entries: int, window: int, hop: float, rng) -> tuple[np.ndarray, list[int]]:
    def silence(seconds):
        return np.zeros(round(seconds * SAMPLE_RATE / BLOCK) * BLOCK, np.int16)

    parts, starts = [silence(LEAD_S)], []
    for _ in range(entries):
        starts.append(sum(len(part) for part in parts))
        parts += [excerpt, silence(window + GAP_S + rng.uniform(0, hop))]
    return np.concatenate(parts), starts


def mic_to_label(session, frontend, device: int, fifo: Path, excerpt, args, hop: float, rng) -> dict:
    audio, starts = schedule(excerpt, args.entries, args.window, hop, rng)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    source = DeviceSource(str(device))  # what `mmgat-live --device N` opens
    stream = Stream(source, StreamSettings(args.window, hop, **session.graph))
    input_latency_ms = source._stream.latency * 1e3  # DeviceSource shows it only in its description
    meta, sink, writer = session.metadata, JsonlSink(os.devnull), Writer(fifo, audio, starts)
    latencies, skipped, waiting = [None] * len(starts), [], []
    seen, last_marked = 0, False

    def emit(update):
        nonlocal seen, last_marked
        rec = record(update, meta["classes"], meta["groups"])
        sink.write(rec)
        written = time.perf_counter()
        marked = args.instrument in rec["active"]
        while seen < len(writer.entry_times) and writer.entry_times[seen] <= written:
            waiting.clear()  # a newer entry is in: older ones still unmarked are misses
            (skipped if last_marked else waiting).append(seen)
            seen += 1
        if marked:
            for entry in waiting:
                latencies[entry] = (written - writer.entry_times[entry]) * 1e3
            waiting.clear()
        last_marked = marked
        if writer.done.is_set():
            raise Finished

    writer.start()
    try:
        run(pipeline, [stream], emit)
    except Finished:
        pass
    finally:
        stream.close()  # abort while the writer still writes: a stalled pipe can hang stop()
        writer.halt.set()
        writer.join(5)
        sink.close()
    marked = [ms for ms in latencies if ms is not None]
    misses = [i for i, ms in enumerate(latencies) if ms is None and i not in skipped]
    goal = (FRAME_S + hop) * 1e3 + SLACK_MS
    return {"hop_s": hop, "entries_at_s": [s / SAMPLE_RATE for s in starts], "latency_ms": latencies,
            **(percentiles(marked) if marked else {"n": 0}), "misses": misses, "skipped": skipped,
            "goal_ms": goal, "meets_goal": bool(marked) and not misses and max(marked) <= goal,
            "input_latency_ms": input_latency_ms, "overruns": stream.overruns,
            "input_overflows": stream.input_overflows}


def show(report: dict, console: Console) -> None:
    m = report["machine"]
    table = Table(title=f"virtual microphone -> label, {report['instrument']} entries, W={report['window']}: "
                        f"{m['cpu']}, {m['cores']} cores, PortAudio input latency "
                        f"{report['device']['input_latency_ms']:.0f} ms")
    for column in ("measure", "p50 ms", "p95 ms", "max ms", "n", "misses", "skipped", "goal"):
        table.add_column(column, justify="left" if column in ("measure", "goal") else "right")
    for r in report["mic_to_label"]:
        figures = [f"{r[q]:.1f}" if r["n"] else "-" for q in ("p50", "p95", "max")]
        table.add_row(f"entry -> record, hop {r['hop_s']:g}", *figures, str(r["n"]), str(len(r["misses"])),
                      str(len(r["skipped"])), f"max <= {r['goal_ms']:.0f} {'ok' if r['meets_goal'] else 'MISSED'}")
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(RESULTS / "mic_latency.json"), metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one, else the seeded test artifact)")
    parser.add_argument("--entries", type=int, default=20, help="instrument entries per hop setting")
    parser.add_argument("--window", type=int, default=3, help="frames in the graph (see above)")
    parser.add_argument("--clip", type=Path, default=ASSETS / "demo.flac", help="where the passage comes from")
    parser.add_argument("--excerpt", default="6:8", metavar="START:END", help="the passage, seconds of --clip")
    parser.add_argument("--instrument", default="cymbals", help="the class the passage must turn on")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mmgat-mic-") as scratch:
        daemon = None
        try:
            daemon, fifo = start_pulse(Path(scratch))
            device = pulse_device()
            model = artifact(args.model)
            session, frontend = load_runtime(model, cpu=True, intra_op_threads=1)
            torch.set_num_threads(1)
            excerpt = load_excerpt(args.clip, args.excerpt)
            check_model(Pipeline(session, frontend), session, excerpt, args.instrument, args.window)
            rng = np.random.default_rng(0)
            results = [mic_to_label(session, frontend, device, fifo, excerpt, args, hop, rng) for hop in HOPS]
        except (Failed, SourceError) as error:
            print(f"mic_latency: {error}", file=sys.stderr)
            return 1
        finally:
            if daemon is not None:
                stop_pulse(daemon)
    import sounddevice as sd

    report = {"benchmark": "mic_latency", "model": str(model), "provider": session.provider,
              "device": {"index": device, "name": "pulse (PulseAudio pipe source)",
                         "input_latency_ms": results[0]["input_latency_ms"], "portaudio": sd.get_portaudio_version()[1]},
              "window": args.window, "instrument": args.instrument, "clip": str(args.clip), "excerpt_s": args.excerpt,
              "threads": 1, "machine": machine(),
              "mic_to_label": results}
    save(report, args.json)
    show(report, Console(width=max(100, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

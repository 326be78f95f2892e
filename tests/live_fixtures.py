"""Helpers and fixtures for the mmgat-live tests: test signals, running the CLI as a
subprocess, a virtual microphone (PulseAudio pipe source), and an ALSA config with a
playback-only device. Import the fixtures you use into the test module."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.labels import CLASSES
from mmgat.stream.cli import LOADING, PROG

LIVE = [sys.executable, "-m", "mmgat.stream.cli"]
LOADING_LINE = f"{PROG}: {LOADING}"  # the first line of every run without the dashboard
RECORD_KEYS = {"t", "probs", "active", "seconds", "latency_ms", "overruns", "input_overflows"}
MIC_CHUNK_S = 0.02  # the virtual microphone writes this much audio at a time
RUN_LIMIT_S = 60  # one in-process run; far more than any case needs, so past it is a hang
POLL_S = 0.02  # how often Watch reads a child's JSONL for new records (their wall-clock arrival)


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, freq: float = 440.0,
         amplitude: float = 0.5) -> np.ndarray:
    """(frames, channels) float32 sine; channel c at freq * (c + 1)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)],
                    axis=1).astype(np.float32)


def write_clip(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    soundfile.write(str(path), samples, rate)
    return path


def run_live(args, env=None, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LIVE, *map(str, args)], env=env, input=input, capture_output=True, timeout=timeout)


class Hang(Exception):
    """Raised by the alarm inside a run that takes far too long (no handler of main() takes it)."""


@contextlib.contextmanager
def piped_stdin(payload: bytes):
    """sys.stdin is the read end of a pipe that a thread fills with `payload` (as a shell pipe
    would), closed once written; a CLI that stops reading early breaks the pipe, as in a shell."""
    read_fd, write_fd = os.pipe()

    def write():
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BrokenPipeError:  # refused before it read everything
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    saved, sys.stdin = sys.stdin, os.fdopen(read_fd, "rb")
    try:
        yield
    finally:
        sys.stdin.close()
        sys.stdin = saved
        writer.join(RUN_LIMIT_S)


def run_main(args, stdin: bytes | None = None) -> tuple[int, str, str]:
    """mmgat-live's main(args) in this process -> (exit status, stdout, stderr)."""
    from mmgat.stream.cli import main

    def hang(signum, frame):
        raise Hang(f"mmgat-live {' '.join(map(str, args))} ran past {RUN_LIMIT_S} s")

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, RUN_LIMIT_S)
    try:
        with contextlib.ExitStack() as stack:
            if stdin is not None:
                stack.enter_context(piped_stdin(stdin))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            try:
                status = main([str(arg) for arg in args])
            except SystemExit as stop:  # usage errors (argparse)
                status = stop.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return status, out.getvalue(), err.getvalue()


def parse_records(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def check_record(rec: dict, window: int) -> None:
    """The JSONL record contract (DESIGN.md, Interfaces)."""
    assert RECORD_KEYS <= set(rec)
    assert list(rec["probs"]) == list(CLASSES)
    assert all(0.0 <= p <= 1.0 for p in rec["probs"].values())
    assert set(rec["active"]) <= set(CLASSES)
    assert 1 <= len(rec["seconds"]) <= window
    assert all(len(row) == len(CLASSES) and all(0.0 <= p <= 1.0 for p in row) for row in rec["seconds"])
    assert {"read", "frontend", "graph", "mmgat", "output"} <= set(rec["latency_ms"])
    assert all(ms >= 0 for ms in rec["latency_ms"].values())
    assert isinstance(rec["overruns"], int) and rec["overruns"] >= 0
    assert isinstance(rec["input_overflows"], int) and rec["input_overflows"] >= 0


PORTAUDIO_DIAGNOSTIC = "Expression '"  # what PortAudio's ALSA code prints itself when a device dies


def one_error_line(stderr: str) -> str:
    """The single `mmgat-live: error: ...` line a user error must produce, and nothing else but
    the loading line before it (and PortAudio's own diagnostics, which it writes to stderr)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith(PORTAUDIO_DIAGNOSTIC)]
    if lines and lines[0] == LOADING_LINE:
        lines = lines[1:]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mmgat-live: error: "), stderr
    return lines[0]


def proc_stats(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie: it has exited, not yet been waited for
        return None
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]), "fds": fds}


class Watch:
    """Follows a child and its JSONL: every record with the wall time it was first seen, and a
    /proc sample every `every_s` with the records so far."""

    def __init__(self, process: subprocess.Popen, jsonl: Path):
        self.process, self.jsonl = process, jsonl
        self.records, self.arrivals, self.samples = [], [], []
        self._buffer, self._offset = b"", 0

    def _read_new(self) -> None:
        if not self.jsonl.is_file():
            return
        with open(self.jsonl, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        now = time.monotonic()
        for line in lines:
            if line.strip():
                self.records.append(json.loads(line))
                self.arrivals.append(now)

    def follow(self, every_s: float) -> None:
        started = next_sample = time.monotonic()
        while True:
            done = self.process.poll() is not None
            self._read_new()
            now = time.monotonic()
            if not done and now >= next_sample:
                stats = proc_stats(self.process.pid)
                if stats is not None:
                    last_t = self.records[-1]["t"] if self.records else None
                    self.samples.append({"wall_s": round(now - started, 3), "records": len(self.records),
                                         "t": last_t, **stats})
                next_sample += every_s
            if done:
                self._read_new()
                return
            time.sleep(POLL_S)


class VirtualMic:
    """A private PulseAudio daemon whose default source `vmic` reads s16le 16 kHz mono from a
    FIFO; a thread writes the current signal into it (looped) in real time, so the source never
    stalls. `env` is what every client process needs."""

    def __init__(self, runtime: Path):
        runtime.chmod(0o700)
        self.runtime, self.fifo = runtime, runtime / "vmic.fifo"
        self.env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "XDG_RUNTIME_DIR": str(runtime)}
        self.signal = np.zeros(SAMPLE_RATE, np.int16)  # silence until play()
        self.pid = None
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write, daemon=True)

    def start(self) -> None:
        subprocess.run(
            ["pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "-n", "--disallow-exit",
             f"--log-target=file:{self.runtime / 'pulse.log'}", "--load=module-native-protocol-unix",
             "--load=module-null-sink sink_name=vsink",
             f"--load=module-pipe-source source_name=vmic file={self.fifo} format=s16le rate={SAMPLE_RATE} "
             "channels=1"], env=self.env, check=True, timeout=30, capture_output=True)
        self.pid = int((self.runtime / "pid").read_text())
        deadline = time.monotonic() + 20
        while "Default Source: vmic" not in subprocess.run(["pactl", "info"], env=self.env, capture_output=True,
                                                           text=True).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("PulseAudio did not come up; see " + str(self.runtime / "pulse.log"))
            time.sleep(0.1)
        self._writer.start()

    def play(self, samples: np.ndarray) -> None:
        """Loop these float32 mono samples from now on."""
        self.signal = (np.clip(samples.reshape(-1), -1, 1) * 32767).astype(np.int16)

    def _write(self) -> None:
        fd = os.open(self.fifo, os.O_WRONLY)
        chunk, position, next_write = int(MIC_CHUNK_S * SAMPLE_RATE), 0, time.monotonic()
        try:
            while not self._stop.is_set():
                current = self.signal
                indices = (position + np.arange(chunk)) % len(current)
                os.write(fd, current[indices].astype("<i2").tobytes())
                position += chunk
                next_write += MIC_CHUNK_S
                time.sleep(max(0.0, next_write - time.monotonic()))
        except BrokenPipeError:
            pass  # the daemon went away (stop() kills it while a write may be blocked)
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):  # a test may have killed it
                os.kill(self.pid, signal.SIGTERM)
        self._writer.join(timeout=10)


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory):
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio is not installed")
    mic = VirtualMic(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.stop()


@pytest.fixture(scope="module")
def alsa_home(tmp_path_factory):
    """A HOME whose ~/.asoundrc adds `speakeronly`, an ALSA device with outputs but no inputs."""
    home = tmp_path_factory.mktemp("home")
    (home / ".asoundrc").write_text('pcm.speakeronly {\n  type asym\n  playback.pcm "null"\n'
                                    '  hint { show on description "playback only (test)" }\n}\n')
    return home

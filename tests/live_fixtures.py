"""Helpers and fixtures for the mmgat-live tests: test signals, running the CLI as a
subprocess, a virtual microphone (benchmarks/virtual_mic.py) as a fixture, and an ALSA config with a
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
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.labels import CLASSES
from mmgat.stream.cli import LOADING, PROG
from virtual_mic import LIVE_COMMAND, VirtualMic

LIVE = LIVE_COMMAND
LOADING_LINE = f"{PROG}: {LOADING}"  # the first line of every run without the dashboard
RECORD_KEYS = {"t", "probs", "active", "seconds", "latency_ms", "overruns", "input_overflows"}
RUN_LIMIT_S = 60  # one in-process run; far more than any case needs, so past it is a hang


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
    assert set(rec["latency_ms"]) == {"read", "frontend", "graph", "mmgat", "compute"}  # this frame's own
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

"""Live runs without sound hardware, for the benchmarks and the tests (tests/conftest.py puts
this folder on their path): `VirtualMic`, a private PulseAudio daemon whose default source plays
what you give it (real PortAudio capture, as README.md's "No microphone? a virtual one" sets up
by hand), and `Watch`, which follows an `mmgat-live` child process's JSONL and its /proc figures.

    mic = VirtualMic(Path("/tmp/pulse")); mic.start(); mic.play(samples)
    subprocess.Popen([*LIVE_COMMAND, "--device", "pulse", "--jsonl", "out.jsonl"], env=mic.env)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mmgat.model.audio import SAMPLE_RATE

LIVE_COMMAND = [sys.executable, "-m", "mmgat.stream.cli"]  # mmgat-live, whatever PATH holds
MIC_CHUNK_S = 0.02  # the virtual microphone writes this much audio at a time
POLL_S = 0.02  # how often Watch reads a child's JSONL for new records (their wall-clock arrival)


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

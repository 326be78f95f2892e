"""The rich dashboard, drawn in a real terminal: a detached tmux session of fixed size."""

import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from live_fixtures import LIVE, tone, write_clip
from mmgat.model.labels import CLASSES

COLUMNS, ROWS = 120, 50


@pytest.fixture
def tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    server = ["tmux", "-u", "-L", f"mmgat-live-test-{os.getpid()}", "-f", "/dev/null"]
    yield server
    subprocess.run([*server, "kill-server"], capture_output=True)


def capture(server) -> str:
    return subprocess.run([*server, "capture-pane", "-p", "-t", "live"], capture_output=True, text=True).stdout


def test_dashboard_shows_instruments_bars_and_latency(tmux, tmp_path, tiny_model):
    clip = write_clip(tmp_path / "tone.wav", tone(4.0))
    command = shlex.join([*LIVE, "--file", str(clip), "--model", str(tiny_model), "--cpu", "--hop", "0.5",
                          "--latency-report"])
    done_marker = tmp_path / "exit-status"
    subprocess.run([*tmux, "new-session", "-d", "-s", "live", "-x", str(COLUMNS), "-y", str(ROWS),
                    f"env LANG=C.UTF-8 TERM=xterm-256color {command}; echo $? > {done_marker}; sleep 600"],
                   check=True)
    deadline = time.monotonic() + 90
    while not done_marker.exists():  # real time: about 4 s of audio after start-up
        assert time.monotonic() < deadline, capture(tmux)
        time.sleep(0.2)
    screen = capture(tmux)
    assert done_marker.read_text().strip() == "0", screen
    for name in CLASSES:
        assert name in screen
    assert re.search(r"[█▏▎▍▌▋▊▉]", screen)  # probability bars
    assert re.search(r"violin +[█▏▎▍▌▋▊▉│ ]+ \d\.\d\d +0\.50 ", screen)  # bar, p, threshold
    assert re.search(r"frontend \d+\.\d/\d+\.\d", screen)  # live p50/p99 line
    assert re.search(r"t +4\.00 s", screen)  # the last window ended with the clip
    assert "overruns 0" in screen and "CPUExecutionProvider" in screen
    assert "dBFS" in screen
    assert "p95" in screen  # the --latency-report table after the run

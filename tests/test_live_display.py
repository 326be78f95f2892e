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


def test_a_spinner_shows_while_the_model_loads_and_gives_way_to_the_dashboard(tmux, tmp_path, tiny_model):
    clip = write_clip(tmp_path / "tone.wav", tone(2.0))
    command = shlex.join([*LIVE, "--file", str(clip), "--model", str(tiny_model), "--cpu"])
    done_marker = tmp_path / "exit-status"
    subprocess.run([*tmux, "new-session", "-d", "-s", "live", "-x", str(COLUMNS), "-y", str(ROWS),
                    f"env LANG=C.UTF-8 TERM=xterm-256color {command}; echo $? > {done_marker}; sleep 600"],
                   check=True)
    deadline = time.monotonic() + 90
    first = ""
    while not first.strip():  # the first thing on the screen
        assert time.monotonic() < deadline
        first = capture(tmux)
        time.sleep(0.02)
    assert "loading the model" in first and "instrument" not in first, first
    while not done_marker.exists():
        assert time.monotonic() < deadline, capture(tmux)
        time.sleep(0.2)
    screen = capture(tmux)
    assert done_marker.read_text().strip() == "0", screen
    assert "loading the model" not in screen and "violin" in screen  # the spinner left no trace


@pytest.mark.parametrize("width, height", [(80, 24), (120, 50)])
def test_every_instrument_the_column_titles_and_the_latency_fit_the_terminal(width, height):
    import io

    import numpy as np
    from rich.console import Console

    from mmgat.model.labels import GROUPS
    from mmgat.stream.display import LiveDisplay, RunInfo
    from mmgat.stream.latency import LatencyStats
    from mmgat.stream.pipeline import Update
    from mmgat.stream.settings import StreamSettings

    stats = LatencyStats()
    for stage in ("read", "frontend", "graph", "mmgat", "compute", "output"):
        stats.add(stage, 12.5)
    info = RunInfo(source="file /a/rather/long/path/to/some/recording.flac", rate=44100, channels=2,
                   model="/opt/models/mmgat.onnx", provider="CPUExecutionProvider", frontend="vggish-trunk",
                   settings=StreamSettings(10, 1.0), classes=CLASSES, groups=GROUPS, thresholds=np.full(len(CLASSES), 0.5))
    probs = np.linspace(0, 1, len(CLASSES))
    update = Update(stream=None, end_sample=12 * 16000, probs=probs, group_probs=np.array([0.2, 0.9, 0.1]),
                    node_probs=np.random.default_rng(0).random((10, 20)),
                    active=[name for name, p in zip(CLASSES, probs) if p >= 0.5], level_dbfs=-20.0,
                    overruns=0, input_overflows=0, latency_ms={})
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True, color_system=None)
    console.print(LiveDisplay(console, info, stats).render(update))
    screen = out.getvalue().rstrip("\n").split("\n")
    assert len(screen) <= height
    text = "\n".join(screen)
    assert all(name in text for name in CLASSES)
    assert "frontend 12.5/12.5" in text and "CPUExecutionProvider" in text and "overruns 0" in text
    assert re.search(r"instrument +probability +p +thr", text)  # the table keeps its header


def test_device_overflows_show_beside_the_overruns_only_when_they_happen():
    from types import SimpleNamespace

    from mmgat.stream.display import losses

    assert losses(SimpleNamespace(overruns=5, input_overflows=0)) == "overruns 5"
    assert losses(SimpleNamespace(overruns=5, input_overflows=2)) == "overruns 5 (+2 device overflows)"

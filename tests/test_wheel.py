"""The wheel as a user gets it: built from this tree, installed into a fresh venv (no torch),
`mmgat-live --demo` run from outside the repository, its JSONL records checked. Slow (about a
minute with pip's cache warm: mostly installing numba, onnxruntime and onnx); it needs PyPI or
pip's cache for the dependencies."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmgat.model.labels import CLASSES

REPO = Path(__file__).resolve().parent.parent


def run(*command, **options) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **options)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_installs_without_torch_and_runs_the_demo(tmp_path):
    source = tmp_path / "source"  # pip builds in the tree it is given: a copy keeps build/ out of ours
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("mmgat_live-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert subprocess.run([venv / "bin" / "python", "-c", "import torch"], capture_output=True).returncode != 0

    outside = tmp_path / "elsewhere"  # no checkout here: everything comes from the wheel
    outside.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    live = run(venv / "bin" / "mmgat-live", "--demo", "--no-display", "--as-fast-as-possible", "--jsonl", "-",
               cwd=outside, env=env)
    records = [json.loads(line) for line in live.stdout.splitlines()]
    assert [r["t"] for r in records] == [float(t) for t in range(1, 19)]
    for record in records:
        assert list(record["probs"]) == list(CLASSES)
        assert all(0.0 <= p <= 1.0 for p in record["probs"].values())
        assert set(record["active"]) <= set(CLASSES) and record["overruns"] == 0
        assert all(len(row) == len(CLASSES) for row in record["seconds"])
    assert "guitar" in records[-1]["active"]

"""The installation: torch and torchaudio are the exact pair pyproject.toml pins (in the `train`
and `gpu` extras), and a broken torchaudio or missing trainer extras reach the user as one line
from every command that needs them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from live_fixtures import LOADING_LINE

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PAIR = ("torch", "torchaudio")

# Runs a CLI's main() with `import torchaudio` failing as it does against another torch.
BROKEN_TORCHAUDIO = """
import importlib.abc, sys
class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchaudio":
            raise OSError("/venv/torchaudio/lib/_torchaudio.abi3.so: undefined symbol: _ZN3c1013MessageLogger")
sys.meta_path.insert(0, Broken())
from {module} import main
sys.exit(main({args!r}))
"""
# Runs a CLI's main() as if these modules were not installed.
WITHOUT_MODULES = """
import sys
sys.modules.update(dict.fromkeys({missing!r}))
from {module} import main
sys.exit(main({args!r}))
"""


def pinned() -> dict[str, str]:
    """The pair as pinned, the same in every extra that has it (and in none of the base's)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not [d for d in project["dependencies"] if d.split("==")[0].split(">")[0] in PAIR]
    pins = set()
    for extra in ("train", "gpu"):
        dependencies = project["optional-dependencies"][extra]
        pins.add(tuple(sorted(tuple(d.split("#")[0].strip().split("==")) for d in dependencies
                              if d.split("==")[0] in PAIR)))
    assert len(pins) == 1 and {name for name, _ in next(iter(pins))} == set(PAIR), \
        f"pyproject.toml's extras must pin {' and '.join(PAIR)} alike, with ==, got {pins}"
    return dict(next(iter(pins)))


def test_torch_and_torchaudio_are_the_pinned_pair():
    installed = {name: version(name) for name in PAIR}
    pins = pinned()
    advice = (f"installed torch {installed['torch']} and torchaudio {installed['torchaudio']}; they must be "
              f"the exact pair pinned in pyproject.toml: torch=={pins['torch']}, torchaudio=={pins['torchaudio']}")
    try:
        import torch
        import torchaudio
        from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE

        assert _IS_TORCHAUDIO_EXT_AVAILABLE, "torchaudio's compiled extension is missing"
        # lfilter's recursion runs in libtorchaudio's compiled loop: y[n] = x[n] - 0.5 y[n - 1].
        impulse = torch.zeros(1, 4, dtype=torch.float64)
        impulse[0, 0] = 1.0
        response = torchaudio.functional.lfilter(impulse, torch.tensor([1.0, 0.5], dtype=torch.float64),
                                                 torch.tensor([1.0, 0.0], dtype=torch.float64), clamp=False)
        assert response.tolist() == [[1.0, -0.5, 0.25, -0.125]]
    except (ImportError, OSError, RuntimeError, AssertionError) as error:
        pytest.fail(f"torchaudio does not work ({str(error).splitlines()[0]}): {advice}")
    assert {name: v.split("+")[0] for name, v in installed.items()} == pins, advice


def run_main(template: str, module: str, args: list[str], **fields) -> subprocess.CompletedProcess:
    code = template.format(module=module, args=[str(a) for a in args], **fields)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)


def the_error_line(done: subprocess.CompletedProcess, prog: str, status: int = 1) -> str:
    """One `PROG: error: ...` line (after mmgat-live's loading line), no traceback, exit `status`
    (1: a user error, such as a broken installation; 2: an optional module not installed)."""
    lines = [line for line in done.stderr.splitlines() if line.strip() and line != LOADING_LINE]
    assert done.returncode == status and "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{prog}: error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("prog, module, args", [  # the CPU runtime needs torch for fp32 only
    ("mmgat-live", "mmgat.stream.cli", ["--file", "CLIP", "--no-display", "--cpu", "--precision", "fp32"]),
    ("mmgat-tag", "mmgat.stream.tag", ["CLIP", "--out", "OUT", "--cpu", "--precision", "fp32"]),
    ("mmgat-train", "mmgat.model.train.cli", ["--help"]),
    ("mmgat-export", "mmgat.export.cli", ["--verify", "model.onnx"]),
])
def test_a_torchaudio_built_for_another_torch_is_one_line(prog, module, args, tmp_path):
    import soundfile

    soundfile.write(tmp_path / "clip.wav", np.zeros(16_000, np.float32), 16_000)
    places = {"CLIP": tmp_path / "clip.wav", "OUT": tmp_path / "tags.jsonl"}
    line = the_error_line(run_main(BROKEN_TORCHAUDIO, module, [places.get(a, a) for a in args]), prog)
    torch_version, torchaudio_version = version("torch"), version("torchaudio")
    assert f"torchaudio {torchaudio_version} does not load with torch {torch_version}" in line
    assert "undefined symbol" in line and "exact pair pinned in pyproject.toml" in line
    pins = pinned()
    assert f"'torch=={pins['torch']}' 'torchaudio=={pins['torchaudio']}'" in line  # what to install


@pytest.mark.parametrize("args", [["--help"], ["synth", "--help"], ["eval", "--model", "m.onnx", "--data", "d"]])
def test_the_trainer_without_its_extras_says_which_to_install(args):
    done = run_main(WITHOUT_MODULES, "mmgat.model.train.cli", args, missing=["mido"])
    line = the_error_line(done, "mmgat-train", status=2)
    assert line == "mmgat-train: error: missing module mido; install the trainer's extras: pip install '.[train]'"


def test_export_without_onnx_says_which_extras_to_install(tiny_checkpoint, tmp_path):
    done = run_main(WITHOUT_MODULES, "mmgat.export.cli", [tiny_checkpoint, "--out", tmp_path / "m.onnx"],
                    missing=["onnx"])
    assert the_error_line(done, "mmgat-export", status=2) == ("mmgat-export: error: missing module onnx; "
                                                              "install the trainer's extras: pip install '.[train]'")

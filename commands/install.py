"""A broken installation, told in one line: torchaudio's compiled ops link against one exact torch,
and any other torch makes `import torchaudio` fail (e.g. `undefined symbol`). Modules import
it through `import_torchaudio()`, so every CLI, which reports OSError as one `PROG: error: ...`
line, says what to reinstall.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, requires, version


# What to install for the parts beyond the CPU runtime (pyproject.toml's extras).
TRAIN_EXTRAS = "install the trainer's extras: pip install '.[train]'"
GPU_EXTRAS = "pip install '.[gpu]'"


class InstallError(OSError):
    """The installed packages do not work together (a broken environment, not a bug here)."""


def installed_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def pinned(*names: str) -> list[str]:
    """This package's `NAME==VERSION` requirements of `names` (pyproject.toml's pins, in its
    extras: torch and torchaudio belong to `train` and `gpu`)."""
    try:
        pins = [r.split(";")[0].strip() for r in requires("mmgat-live") or ()]  # markers: the extras
    except PackageNotFoundError:  # a source tree that was never installed
        return []
    return list(dict.fromkeys(pin for pin in pins if pin.split("==")[0] in names and "==" in pin))


def torchaudio_mismatch(error: BaseException) -> InstallError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    pins = pinned("torch", "torchaudio")
    return InstallError(
        f"torchaudio {installed_version('torchaudio')} does not load with torch "
        f"{installed_version('torch')} ({reason}); they must be the exact pair pinned in pyproject.toml"
        + (f": pip install {' '.join(repr(pin) for pin in pins)}" if pins else ""))


def import_torchaudio():
    """`import torchaudio`, or InstallError (one line) when it was built for another torch."""
    try:
        return importlib.import_module("torchaudio")
    except (ImportError, OSError) as error:
        raise torchaudio_mismatch(error) from None

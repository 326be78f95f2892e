"""Shared fixtures: a tiny exported artifact (seeded random weights) that the runtime accepts;
the `mmgat` logger as it was before each test. The benchmarks' folder is importable too: the
virtual microphone (benchmarks/virtual_mic.py) serves both."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from mmgat.commands.command import LOGGER
from mmgat.model.checkpoint import random_checkpoint

sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(autouse=True)
def unconfigured_logging():
    """A CLI's main() gives the `mmgat` logger a handler on that test's stderr and stops it
    propagating: undone after each test, so that later tests' log lines reach caplog rather
    than a closed capture stream."""
    yield
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint, tmp_path_factory):
    """Path of an exported artifact with its frontend beside it."""
    from mmgat.export.onnx import export_checkpoint

    return export_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("artifact") / "tiny.onnx")

"""Progress bars of the training jobs go to stderr, so stdout carries only results (--json)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress
from rich.progress import track as rich_track

STDERR = Console(stderr=True)


def progress_bar(*columns, **options) -> Progress:
    return Progress(*columns, console=STDERR, **options)


def track(sequence, description: str):
    return rich_track(sequence, description=description, console=STDERR)

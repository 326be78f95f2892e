"""The window rule: how many 1 s instances (graph nodes) an instance graph may hold. Every layer
that takes a window checks it with this one rule (InstanceGraph, the stream settings, the
commands' --window); a module of its own so that the commands check their flags without
importing numba."""

from __future__ import annotations

MAX_WINDOW = 64


def check_window(window: int) -> int:
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW}, got {window}")
    return int(window)

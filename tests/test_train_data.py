"""Data sets, cache, OpenMIC loader and batching of the trainer (no audio: synthetic instances)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgat.model.labels import CLASSES, NUM_CLASSES, group_targets, GROUPS
from mmgat.model.train import data as data_module
from mmgat.model.train.data import (MANIFEST, cache_path, load_data, synth_split, write_cache)

TEST_FINGERPRINT = "0123456789abcdef"


def write_synthetic_set(directory, counts=None, seed=0, dim=128, noise=0.5) -> Path:
    """A synthetic manifest + instance cache without audio: every class has a random prototype
    and a second's instance is the sum of its active classes' prototypes plus noise.
    `counts` ({split: n}) picks clip seeds until each split holds n clips."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    counts = dict(counts or {"train": 32, "val": 12, "test": 8})
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(NUM_CLASSES, dim)).astype(np.float32)
    entries, instances, clip_seed = [], [], 0
    while any(counts.values()):
        clip_seed += 1
        split = synth_split(clip_seed)
        if not counts[split]:
            continue
        counts[split] -= 1
        duration = int(rng.integers(10, 20))
        active = rng.choice(NUM_CLASSES, size=int(rng.integers(1, 4)), replace=False)
        seconds = np.zeros((duration, NUM_CLASSES), dtype=np.float32)
        for c in active:
            seconds[:, c] = rng.random(duration) < 0.7
            seconds[rng.integers(duration), c] = 1.0
        instances.append(seconds @ prototypes + noise * rng.normal(size=(duration, dim)))
        names = [CLASSES[c] for c in sorted(active)]
        entries.append({
            "path": f"clip{clip_seed:04d}.wav", "duration": duration,
            "second_labels": {name: seconds[:, c].astype(int).tolist() for c, name in enumerate(CLASSES)},
            "clip_labels": names, "groups": [], "parts": [], "seed": clip_seed,
            "soundfonts": ["test.sf2"]})
    (directory / MANIFEST).write_text("".join(json.dumps(e) + "\n" for e in entries))
    write_cache(cache_path(directory, "embedding"), [e["path"] for e in entries], instances,
                {"name": "vggish-trunk", "fingerprint": TEST_FINGERPRINT, "file": None})
    return directory

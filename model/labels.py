"""The class list (OpenMIC-2018 order) and the paper's auxiliary onset groups (Table 2)."""

from __future__ import annotations

import numpy as np

CLASSES = (
    "accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute", "guitar",
    "mallet_percussion", "mandolin", "organ", "piano", "saxophone", "synthesizer", "trombone",
    "trumpet", "ukulele", "violin", "voice",
)
NUM_CLASSES = len(CLASSES)
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

ONSET_GROUPS = {
    "soft": ("accordion", "bass", "cello", "clarinet", "flute", "organ", "saxophone", "violin"),
    "hard": ("banjo", "cymbals", "drums", "guitar", "mallet_percussion", "mandolin", "piano",
             "synthesizer", "trombone", "trumpet", "ukulele"),
    "other": ("voice",),
}
GROUPS = tuple(ONSET_GROUPS)
NUM_GROUPS = len(GROUPS)
GROUP_OF_CLASS = np.array(
    [GROUPS.index(next(g for g, members in ONSET_GROUPS.items() if c in members)) for c in CLASSES])


def multi_hot(names) -> np.ndarray:
    """Class names -> float32 (NUM_CLASSES,) multi-hot; unknown names raise KeyError."""
    target = np.zeros(NUM_CLASSES, dtype=np.float32)
    target[[CLASS_INDEX[n] for n in names]] = 1.0
    return target


def group_max(per_class: np.ndarray) -> np.ndarray:
    """(..., NUM_CLASSES) -> (..., NUM_GROUPS) float32: each onset group's max over its classes.
    Multi-hot class targets give the group targets; class probabilities, a group probability."""
    per_class = np.asarray(per_class)
    groups = np.zeros(per_class.shape[:-1] + (NUM_GROUPS,), dtype=np.float32)
    for g in range(NUM_GROUPS):
        groups[..., g] = per_class[..., GROUP_OF_CLASS == g].max(axis=-1)
    return groups

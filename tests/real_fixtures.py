"""Tiny copies of the OpenMIC-2018 and IRMAS archives in exactly their published layouts, and
recordings to import, written from generated audio (one harmonic timbre per class, so that the
labels are learnable).

OpenMIC-2018: openmic-2018.npz (X uint8 (N, 10, 128), Y_true float32 (N, 20), Y_mask bool
(N, 20), sample_key str), class-map.json, openmic-2018-aggregated-labels.csv (sample_key,
instrument, relevance, num_responses), partitions/split01_{train,test}.csv (one key per line, no
header), audio/KEY[:3]/KEY.ogg (10 s OGG Vorbis, 44.1 kHz).
IRMAS: IRMAS-TrainingData/CODE/*.wav (3 s, 44.1 kHz stereo 16-bit, names like
`[cel][cla]0001__1.wav` and `008__[cel][nod][cla]0058__1.wav`), IRMAS-TestingData-Part1/Part1/
and IRMAS-TestingData-Part2/IRTestingData-Part2/ holding .wav + same-stem .txt (codes one a
line, tab-padded, LF or CRLF).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile

from mmgat.model.labels import CLASSES, CLASS_INDEX

RATE = 44_100

# key -> {class: relevance} for the observed labels (the rest unobserved)
OPENMIC_TRAIN = {
    "000046_3840": {"piano": 1.0, "drums": 0.2, "voice": 0.0},
    "000135_483840": {"guitar": 0.8, "piano": 0.1},
    "001234_30720": {"drums": 0.9, "violin": 0.0, "trumpet": 0.6},
    "012345_0": {"voice": 0.7, "flute": 0.3},
}
OPENMIC_TEST = {
    "100001_15360": {"piano": 1.0, "guitar": 0.0},
    "100002_0": {"trumpet": 0.9},
    "100003_7680": {"cello": 0.75, "drums": 0.1},
}
# folder, file name: the instrument, optional drums tag, genre
IRMAS_TRAIN = [
    ("cel", "[cel][cla]0001__1.wav"),
    ("cel", "008__[cel][nod][cla]0058__1.wav"),
    ("gac", "[gac][dru][pop_roc]0123__2.wav"),
    ("pia", "[pia][nod][jaz_blu]1022__3.wav"),
    ("voi", "[voi][dru][pop_roc]2081__1.wav"),
]
# (part folder, folder the files sit in, stem, codes, seconds, line ending)
IRMAS_TEST = [
    ("IRMAS-TestingData-Part1", "Part1", "02 - Song One-1", ["pia", "voi"], 6, "\n"),
    ("IRMAS-TestingData-Part1", "Part1", "(02) dont kill the whale-3", ["gel"], 5, "\r\n"),
    ("IRMAS-TestingData-Part2", "IRTestingData-Part2", "01 - Hello-10", ["sax", "tru", "cel"], 8,
     "\r\n"),
]


def timbre(classes, seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0):
    """A mix of one harmonic tone per class (each its own pitch and overtones), with noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    mix = 0.01 * rng.standard_normal(len(t))
    for name in classes:
        c = CLASS_INDEX[name]
        f0 = 110.0 * 2 ** (c / 4)
        for k in range(1, 2 + c % 5):
            mix += 0.2 / k * np.sin(2 * np.pi * f0 * k * t + c)
    mix /= max(1.0, np.abs(mix).max() / 0.9)
    return np.repeat(mix[:, None], channels, axis=1) if channels > 1 else mix


def write_openmic(root: Path) -> Path:
    keys = [*OPENMIC_TRAIN, *OPENMIC_TEST]
    observed = {**OPENMIC_TRAIN, **OPENMIC_TEST}
    truth = np.zeros((len(keys), len(CLASSES)), dtype=np.float32)
    mask = np.zeros(truth.shape, dtype=bool)
    rows = []
    for i, key in enumerate(keys):
        for name, relevance in observed[key].items():
            truth[i, CLASS_INDEX[name]], mask[i, CLASS_INDEX[name]] = relevance, True
            rows.append([key, name, relevance, 3])
        present = [n for n, r in observed[key].items() if r >= 0.5]
        path = root / "audio" / key[:3] / f"{key}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, timbre(present, 10.0, seed=i), RATE, format="OGG", subtype="VORBIS")
    x = np.random.default_rng(0).integers(0, 256, (len(keys), 10, 128)).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "openmic-2018.npz", X=x, Y_true=truth, Y_mask=mask,
             sample_key=np.array(keys))
    (root / "class-map.json").write_text(json.dumps({n: i for i, n in enumerate(CLASSES)}))
    with open(root / "openmic-2018-aggregated-labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_key", "instrument", "relevance", "num_responses"])
        writer.writerows(rows)
    (root / "partitions").mkdir(exist_ok=True)
    for name, split in (("split01_train.csv", OPENMIC_TRAIN), ("split01_test.csv", OPENMIC_TEST)):
        (root / "partitions" / name).write_text("".join(f"{key}\n" for key in split))
    return root


IRMAS_NAMES = {"cel": "cello", "gac": "guitar", "gel": "guitar", "pia": "piano", "voi": "voice",
               "sax": "saxophone", "tru": "trumpet"}


def write_irmas(root: Path) -> Path:
    for n, (code, name) in enumerate(IRMAS_TRAIN):
        path = root / "IRMAS-TrainingData" / code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        classes = [IRMAS_NAMES[code]] + (["drums"] if "[dru]" in name else [])
        soundfile.write(path, timbre(classes, 3.0, channels=2, seed=10 + n), RATE,
                        subtype="PCM_16")
    for n, (part, folder, stem, codes, seconds, ending) in enumerate(IRMAS_TEST):
        path = root / part / folder / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, timbre([IRMAS_NAMES[c] for c in codes], seconds, channels=2,
                                     seed=20 + n), RATE, subtype="PCM_16")
        path.with_suffix(".txt").write_bytes("".join(f"{c}\t{ending}" for c in codes).encode())
    return root


def write_recordings(root: Path) -> Path:
    """ROOT/CLASS/*.audio to import: class names and IRMAS codes as folders, several formats,
    one recording long enough to be cut."""
    files = {"guitar/strum.wav": (["guitar"], 12.0), "pia/etude.flac": (["piano"], 45.0),
             "voice/take1.ogg": (["voice"], 11.0), "drums/loop.wav": (["drums"], 10.5)}
    for n, (relative, (classes, seconds)) in enumerate(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"format": "OGG", "subtype": "VORBIS"} if path.suffix == ".ogg" else {}
        soundfile.write(path, timbre(classes, seconds, seed=30 + n), RATE, **options)
    return root

"""`mmgat-train openmic-irmas --openmic DIR --irmas DIR --out DATA [--seed S]`: the paper's
OpenMIC-IRMAS data set (seed paper, section on the data set; Tables 1-2) from local copies of both
archives, as a data set folder (real.py) that every training command reads.

OpenMIC-2018 as unpacked: openmic-2018.npz (Y_true float (N, 20), Y_mask bool (N, 20),
sample_key; X is not needed), class-map.json (class -> column), partitions/split01_train.csv
and split01_test.csv (one key per line), audio/KEY[:3]/KEY.ogg (10 s OGG Vorbis). A label is
positive where observed (Y_mask) with relevance >= 0.5, negative where observed below 0.5,
unknown where not observed. Which seconds of a clip hold a positive instrument is not known.

IRMAS as unpacked: IRMAS-TrainingData/CODE/*.wav (3 s excerpts whose folder is the predominant
instrument; `[dru]` / `[nod]` in the name: drums present / absent) and
IRMAS-TestingData-Part1/2/3/**/*.wav, each with a same-stem .txt listing its instruments, one
code per line. A training excerpt's instrument plays throughout it, its drums where marked; the
other classes are unknown. A testing excerpt's listed classes are present, the other IRMAS
classes absent, the rest unknown.

Splits (the paper's): every OpenMIC training clip becomes one training clip of 10-19 s, with
IRMAS training excerpts inserted at whole seconds (each excerpt used once, at most
MAX_INSERTS per clip, spread by the seed); its labels are the union. The held-out set is
OpenMIC's test partition plus every IRMAS testing excerpt, of which VAL_FRACTION (by a hash of
the name) is validation and the rest test. A clip already written (a rerun after Ctrl-C) is
kept. Unreadable audio is named and skipped, and counted at the end.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from mmgat.model.labels import CLASS_INDEX, CLASSES
from mmgat.model.train.data import OPENMIC_SPLITS, VAL_FRACTION, read_keys, unit_hash
from mmgat.model.train.progress import track
from mmgat.model.train.real import (AUDIO_DIR, IRMAS_CODES, MAX_CLIP_S, UNKNOWN, Segment,
                                    Unreadable, clip_entry, finish, labels_vector, new_data_set,
                                    splits_text, write_clip)
from mmgat.model.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

OPENMIC_FILES = ("openmic-2018.npz", "class-map.json")
IRMAS_TRAINING = "IRMAS-TrainingData"
IRMAS_TESTING = "IRMAS-TestingData-Part*"
IRMAS_EXCERPT_S = 3
OPENMIC_CLIP_S = 10
MAX_INSERTS = (MAX_CLIP_S - OPENMIC_CLIP_S) // IRMAS_EXCERPT_S  # 3: clips of 10, 13, 16, 19 s
IRMAS_CLASSES = sorted(set(IRMAS_CODES.values()))
DRUMS = {"[dru]": 1.0, "[nod]": 0.0}


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise OSError(f"{what}: {path} not found")
    return path


# ---- OpenMIC-2018 ------------------------------------------------------------------------------

def openmic_labels(root: Path) -> dict[str, np.ndarray]:
    """key -> (C,) 1 / 0 / NaN in our class order."""
    npz, class_map = (require(root / name, "OpenMIC-2018") for name in OPENMIC_FILES)
    columns = json.loads(class_map.read_text())
    unknown = sorted(set(columns) - set(CLASSES))
    if unknown or len(columns) != len(CLASSES):
        raise ValueError(f"{class_map} does not list the {len(CLASSES)} OpenMIC classes "
                         f"(unknown: {', '.join(unknown) or 'none'})")
    try:
        with np.load(npz, allow_pickle=False) as archive:
            truth, mask, keys = archive["Y_true"], archive["Y_mask"], archive["sample_key"]
    except KeyError as error:
        raise ValueError(f"{npz} lacks {error} (want Y_true, Y_mask, sample_key)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{npz} cannot be read: {error}") from None
    order = [columns[name] for name in CLASSES]
    truth, mask = truth[:, order], mask[:, order].astype(bool)
    labels = np.where(mask, (truth >= 0.5).astype(np.float64), UNKNOWN)
    return {str(key): row for key, row in zip(keys, labels)}


def openmic_partitions(root: Path, labels: dict) -> dict[str, list[str]]:
    """split name -> keys, each checked: labelled in the npz, audio present."""
    partitions = {}
    for split, name in OPENMIC_SPLITS.items():
        path = require(root / "partitions" / name, "OpenMIC-2018")
        keys = read_keys(path)
        for key in keys:
            if key not in labels:
                raise ValueError(f"{path} names {key}, which openmic-2018.npz does not label")
            if not openmic_audio(root, key).is_file():
                raise OSError(f"{path} names {key}, but its audio {openmic_audio(root, key)} "
                              "is missing")
        partitions[split] = keys
    return partitions


def openmic_audio(root: Path, key: str) -> Path:
    return root / "audio" / key[:3] / f"{key}.ogg"


def annotated_segment(samples: np.ndarray, labels: np.ndarray) -> Segment:
    """A recording annotated as a whole (an OpenMIC clip, an IRMAS testing excerpt): its labels
    hold for it; per second only its absent classes are known."""
    return Segment(samples, labels, np.where(labels == 0, 0.0, UNKNOWN))


# ---- IRMAS -------------------------------------------------------------------------------------

def irmas_code(code: str, where) -> str:
    if code not in IRMAS_CODES:
        raise ValueError(f"{where}: unknown IRMAS code {code!r} (known: {', '.join(IRMAS_CODES)})")
    return IRMAS_CODES[code]


def irmas_training(root: Path) -> list[tuple[Path, np.ndarray]]:
    """(excerpt, per-second labels (C,)) of every training excerpt, sorted by path."""
    folder = require(root / IRMAS_TRAINING, "IRMAS")
    excerpts = []
    for instrument in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = irmas_code(instrument.name, instrument)
        for path in sorted(instrument.glob("*.wav")):
            drums = [DRUMS[tag] for tag in re.findall(r"\[[a-z_]+\]", path.name) if tag in DRUMS]
            labels = labels_vector(**{name: 1.0})
            if drums:
                labels[CLASS_INDEX["drums"]] = drums[0]
            excerpts.append((path, labels))
    if not excerpts:
        raise ValueError(f"{folder} holds no CODE/*.wav excerpts")
    return excerpts


def irmas_testing(root: Path) -> list[tuple[Path, np.ndarray]]:
    """(excerpt, clip labels (C,)) of every testing excerpt (searched recursively)."""
    parts = sorted(p for p in root.glob(IRMAS_TESTING) if p.is_dir())
    if not parts:
        raise OSError(f"IRMAS: no {IRMAS_TESTING} folder in {root}")
    excerpts = []
    for part in parts:
        for path in sorted(part.rglob("*.wav")):
            text = require(path.with_suffix(".txt"), "IRMAS label file")
            codes = [line.strip() for line in text.read_text().splitlines() if line.strip()]
            labels = labels_vector(**{name: 0.0 for name in IRMAS_CLASSES})
            for code in codes:
                labels[CLASS_INDEX[irmas_code(code, text)]] = 1.0
            excerpts.append((path, labels))
    if not excerpts:
        raise ValueError(f"no IRMAS testing excerpts (*.wav) under {', '.join(map(str, parts))}")
    return excerpts


# ---- the build ---------------------------------------------------------------------------------

def insertions(clips: int, excerpts: int, seed: int) -> list[list[int]]:
    """Per OpenMIC training clip, the excerpts inserted into it: each excerpt once (while a
    clip has room), spread evenly over the clips in a seeded order."""
    rng = np.random.default_rng(seed)
    order, chosen = rng.permutation(clips), [[] for _ in range(clips)]
    for n, excerpt in enumerate(rng.permutation(excerpts)[: clips * MAX_INSERTS]):
        chosen[order[n % clips]].append(int(excerpt))
    if excerpts > clips * MAX_INSERTS:
        log.warning("%d IRMAS training excerpts left out: %d OpenMIC training clips hold at "
                    "most %d each", excerpts - clips * MAX_INSERTS, clips, MAX_INSERTS)
    return chosen


def held_out_split(name: str) -> str:
    return "val" if unit_hash(f"openmic-irmas:{name}") < VAL_FRACTION else "test"


def build(openmic, irmas, out, seed: int = 0) -> dict:
    """Build OpenMIC-IRMAS into `out`; returns a summary."""
    openmic, irmas = Path(openmic), Path(irmas)
    require(openmic, "OpenMIC-2018 folder")
    require(irmas, "IRMAS folder")
    labels = openmic_labels(openmic)
    partitions = openmic_partitions(openmic, labels)
    training, testing = irmas_training(irmas), irmas_testing(irmas)
    out, unreadable, entries = new_data_set(out), Unreadable(), []
    rng = np.random.default_rng(seed)
    inserted = insertions(len(partitions["train"]), len(training), seed)

    def add(name: str, split: str, load, **extra):
        """One clip: its audio written unless a rerun finds it written; its entry."""
        relative = f"{AUDIO_DIR}/{name}.flac"
        segments = load()
        if segments is None:
            return
        if not (out / relative).is_file():
            write_clip(out, relative, np.concatenate([s.samples for s in segments]))
        entries.append(clip_entry(relative, name, split, segments, **extra))

    def training_clip(key: str, chosen: list[int]):
        samples = unreadable.load(openmic_audio(openmic, key))
        if samples is None:
            return None
        base = annotated_segment(samples, labels[key])
        pieces = [(training[i][0], unreadable.load(training[i][0]), training[i][1])
                  for i in chosen]
        pieces = [(path, audio, second) for path, audio, second in pieces if audio is not None]
        at = np.sort(rng.integers(0, base.seconds + 1, len(pieces)))
        segments, start = [], 0
        for position, (_, audio, second) in zip(at, pieces):
            if position > start:
                segments.append(annotated_segment(base.samples[start * SAMPLE_RATE:
                                                              position * SAMPLE_RATE], labels[key]))
            segments.append(Segment(audio[: IRMAS_EXCERPT_S * SAMPLE_RATE], second, second))
            start = position
        if start < base.seconds or not segments:
            segments.append(annotated_segment(base.samples[start * SAMPLE_RATE:], labels[key]))
        return segments

    for key, chosen in zip(track(partitions["train"], description="OpenMIC-IRMAS training clips"),
                           inserted):
        add(key, "train", lambda: training_clip(key, chosen),
            inserted=[training[i][0].relative_to(irmas).as_posix() for i in chosen])
    for key in track(partitions["test"], description="OpenMIC test clips"):
        add(key, held_out_split(key), lambda: whole(unreadable.load(openmic_audio(openmic, key)),
                                                    labels[key]))
    for number, (path, clip) in enumerate(track(testing, description="IRMAS testing excerpts")):
        name = path.relative_to(irmas).as_posix()
        add(f"irmas-test-{number:05d}", held_out_split(name),
            lambda: whole(unreadable.load(path), clip), source=name)
    return finish(out, entries, unreadable)


def whole(samples, labels) -> list[Segment] | None:
    return None if samples is None else [annotated_segment(samples, labels)]


def run(args) -> int:
    summary = build(args.openmic, args.irmas, args.out, args.seed)
    log.info("built OpenMIC-IRMAS: %d clips (%s) in %s", summary["clips"], splits_text(summary),
             args.out)
    return 0


def register(commands) -> None:
    parser = commands.add_parser("openmic-irmas", help="build the paper's OpenMIC-IRMAS",
                                 description=__doc__)
    parser.add_argument("--openmic", required=True, help="unpacked OpenMIC-2018 folder")
    parser.add_argument("--irmas", required=True,
                        help="folder holding IRMAS-TrainingData and IRMAS-TestingData-Part*")
    parser.add_argument("--out", required=True, help="the data set folder to write (new)")
    parser.add_argument("--seed", type=int, default=0, help="where excerpts are inserted")
    parser.set_defaults(func=run)

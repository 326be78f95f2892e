"""Real recordings as data sets: clip writing and labels shared by `import` and `openmic-irmas`,
and the `mmgat-train import` command.

A real data set is a folder like a synthetic one (DIR/manifest.jsonl + 16 kHz FLAC clips under
DIR/audio/), so `frontend`, `fit`, `eval`, `ablate` and `finetune` read it alike. What differs
is what is known: a clip is built from segments (a recording, or excerpts inserted into one),
each with its clip-level labels and its per-second labels, 1 / 0 / unknown (NaN here, null in
the manifest). A clip's class is present where a segment says so, absent where every segment
says it is absent, unknown otherwise (the manifest's `unknown`).

`mmgat-train import --out DATA (--folders ROOT | --csv FILE)`:
- ROOT/CLASS/**/*.(wav|flac|ogg|mp3): one label per folder, a class name or an IRMAS code
  (gac, pia, ...);
- a CSV `path,labels[,split]` (a header row is optional; paths relative to the CSV's folder):
  labels `;`-separated class names, empty for none; split train / val / test.
A file's labels are all its instruments: the others are known absent. Which seconds hold a
listed instrument is not known (it may rest), so those seconds are unknown and training takes
such a clip whole. A file longer than MAX_CLIP_S is cut into clips of MIN_CLIP_S..MAX_CLIP_S
whole seconds, a shorter one is one clip. Splits are by file (no recording in two splits):
70 / 15 / 15 by a hash of its path, unless the CSV gives them. Unreadable files are named,
skipped and counted.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np

from mmgat.model.audio import SAMPLE_RATE, AudioError, load_audio
from mmgat.model.labels import CLASS_INDEX, CLASSES, NUM_CLASSES
from mmgat.model.train.data import MANIFEST, SPLITS, unit_hash
from mmgat.model.train.progress import track

log = logging.getLogger(__name__)

MIN_CLIP_S, MAX_CLIP_S = 10, 19  # the lengths of a data set's clips (as synthetic ones)
AUDIO_DIR = "audio"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
IMPORT_SPLITS = {"train": 0.70, "val": 0.15, "test": 0.15}
# IRMAS's instrument codes (its file names, folders and label files).
IRMAS_CODES = {"cel": "cello", "cla": "clarinet", "flu": "flute", "gac": "guitar",
               "gel": "guitar", "org": "organ", "pia": "piano", "sax": "saxophone",
               "tru": "trumpet", "vio": "violin", "voi": "voice"}
UNKNOWN = np.nan


def labels_vector(fill: float = UNKNOWN, **values) -> np.ndarray:
    """(C,) float: `fill` everywhere, then class name -> value."""
    vector = np.full(NUM_CLASSES, fill, dtype=np.float64)
    for name, value in values.items():
        vector[CLASS_INDEX[name]] = value
    return vector


def class_of(name: str, where: str) -> str:
    """A class name or an IRMAS code -> the class name; ValueError naming `where` otherwise."""
    if name in CLASS_INDEX:
        return name
    if name in IRMAS_CODES:
        return IRMAS_CODES[name]
    raise ValueError(f"{where}: unknown class {name!r} (classes: {', '.join(CLASSES)}; "
                     f"or IRMAS codes {', '.join(IRMAS_CODES)})")


class Segment:
    """Whole seconds of audio with their labels: `clip` (C,) for the segment as a whole and
    `second` (C,) for each of its seconds, 1 / 0 / NaN (unknown)."""

    def __init__(self, samples: np.ndarray, clip: np.ndarray, second: np.ndarray):
        self.seconds = len(samples) // SAMPLE_RATE
        self.samples = samples[: self.seconds * SAMPLE_RATE]
        self.clip, self.second = clip, second


def clip_entry(path: str, name: str, split: str, segments: list[Segment], **extra) -> dict:
    """The manifest entry of a clip made of `segments`, in order."""
    clip = np.stack([s.clip for s in segments])
    present = (clip == 1).any(axis=0)
    absent = (clip == 0).all(axis=0)
    second_labels = {}
    for c, name_ in enumerate(CLASSES):
        values = [None if math.isnan(s.second[c]) else int(s.second[c])
                  for s in segments for _ in range(s.seconds)]
        if any(v != 0 for v in values):  # a class left out is absent in every second
            second_labels[name_] = values
    return {"path": path, "duration": sum(s.seconds for s in segments),
            "second_labels": second_labels,
            "clip_labels": [n for n, p in zip(CLASSES, present) if p],
            "unknown": [n for n, p, a in zip(CLASSES, present, absent) if not p and not a],
            "split": split, "seed": name, "soundfonts": [], **extra}


def write_clip(out: Path, relative: str, samples: np.ndarray) -> None:
    """16 kHz FLAC, written aside and renamed: a stopped build never leaves half a clip."""
    import soundfile

    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".partial.flac")
    soundfile.write(temporary, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    temporary.replace(path)


def new_data_set(out) -> Path:
    out = Path(out)
    if (out / MANIFEST).exists():
        raise ValueError(f"{out / MANIFEST} exists; write the data set into a new folder")
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    return out


def finish(out: Path, entries: list[dict], unreadable: "Unreadable") -> dict:
    """Write the manifest (last: a stopped build has none) -> {"clips", "skipped", "splits"}."""
    if not entries:
        raise ValueError("no clip could be built")
    temporary = out / (MANIFEST + ".tmp")
    temporary.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    temporary.replace(out / MANIFEST)
    unreadable.report(str(out))
    return {"clips": len(entries), "skipped": unreadable.count,
            "splits": {s: sum(e["split"] == s for e in entries) for s in SPLITS}}


def splits_text(summary: dict) -> str:
    return ", ".join(f"{split} {count}" for split, count in summary["splits"].items())


class Unreadable:
    """Audio files that could not be read: each named once as it happens, counted at the end."""

    def __init__(self):
        self.count = 0

    def load(self, path) -> np.ndarray | None:
        try:
            return load_audio(path)
        except AudioError as error:
            self.count += 1
            log.warning("skipped: %s", error)
            return None

    def report(self, what: str) -> None:
        if self.count:
            log.warning("%d unreadable audio file(s) skipped while building %s", self.count, what)


# ---- import ----------------------------------------------------------------------------------

def clip_lengths(seconds: int) -> list[int]:
    """A recording of `seconds` whole seconds -> its clips' lengths: one clip up to MAX_CLIP_S,
    else the fewest near-equal clips of at most MAX_CLIP_S (each at least MIN_CLIP_S)."""
    count = max(1, math.ceil(seconds / MAX_CLIP_S))
    return [seconds // count + (i < seconds % count) for i in range(count)]


def hashed_split(name: str) -> str:
    u, edge = unit_hash(f"import:{name}"), 0.0
    for split, share in IMPORT_SPLITS.items():
        edge += share
        if u < edge:
            return split
    return "test"


def folder_rows(root: Path) -> list[tuple[Path, list[str], str | None]]:
    """ROOT/CLASS/**/*.audio -> (file, [class], None) rows."""
    if not root.is_dir():
        raise OSError(f"no such folder: {root}")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = class_of(folder.name, f"folder {folder}")
        rows += [(path, [name], None) for path in sorted(folder.rglob("*"))
                 if path.suffix.lower() in AUDIO_SUFFIXES]
    if not rows:
        raise ValueError(f"{root} holds no CLASS/*.{{{','.join(s[1:] for s in AUDIO_SUFFIXES)}}} "
                         "files")
    return rows


def csv_rows(table: Path) -> list[tuple[Path, list[str], str | None]]:
    """A `path,labels[,split]` CSV -> (file, classes, split or None) rows."""
    if not table.is_file():
        raise OSError(f"no such file: {table}")
    rows = []
    with open(table, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "path"):
                continue
            where = f"{table} row {number}"
            if len(row) not in (2, 3) or not row[0].strip():
                raise ValueError(f"{where}: want path,labels[,split], got {','.join(row)!r}")
            names = [class_of(n.strip(), where) for n in row[1].split(";") if n.strip()]
            split = row[2].strip() if len(row) == 3 and row[2].strip() else None
            if split is not None and split not in SPLITS:
                raise ValueError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
            rows.append((table.parent / row[0].strip(), names, split))
    if not rows:
        raise ValueError(f"{table} lists no files")
    return rows


def import_recordings(out, folders=None, table=None) -> dict:
    """Write the data set of `folders` (ROOT) or `table` (CSV) into `out`; returns a summary."""
    if (folders is None) == (table is None):
        raise ValueError("give one of --folders ROOT or --csv FILE")
    rows = folder_rows(Path(folders)) if folders else csv_rows(Path(table))
    root = Path(folders) if folders else Path(table).parent
    out, unreadable, entries = new_data_set(out), Unreadable(), []
    for number, (path, names, split) in enumerate(track(rows, description="importing")):
        samples = unreadable.load(path)
        if samples is None:
            continue
        source = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        split = split or hashed_split(source)
        # the listed instruments play somewhere in the file (which seconds is unknown); the
        # others are absent
        clip, second = labels_vector(0.0), labels_vector(0.0)
        for name in names:
            clip[CLASS_INDEX[name]], second[CLASS_INDEX[name]] = 1.0, UNKNOWN
        start = 0
        for piece, length in enumerate(clip_lengths(len(samples) // SAMPLE_RATE)):
            audio = samples[start * SAMPLE_RATE: (start + length) * SAMPLE_RATE]
            start += length
            relative = f"{AUDIO_DIR}/{number:06d}-{piece:02d}.flac"
            write_clip(out, relative, audio)
            entries.append(clip_entry(relative, f"{source}#{piece}", split,
                                      [Segment(audio, clip, second)], source=source))
    return {"files": len(rows) - unreadable.count, **finish(out, entries, unreadable)}


def run(args) -> int:
    summary = import_recordings(args.out, args.folders, args.csv)
    log.info("imported %d files as %d clips (%s) into %s", summary["files"], summary["clips"],
             splits_text(summary), args.out)
    return 0


def register(commands) -> None:
    parser = commands.add_parser("import", help="your own labelled recordings as a data set",
                                 description=__doc__)
    parser.add_argument("--out", required=True, help="the data set folder to write (new)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folders", metavar="ROOT", help="ROOT/CLASS/*.(wav|flac|ogg|mp3)")
    source.add_argument("--csv", metavar="FILE", help="a CSV of path,labels[,split]")
    parser.set_defaults(func=run)

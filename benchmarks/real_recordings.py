"""The shipped model on real recordings that a package registry provides: Debian's
sonic-pi-samples (recorded electric guitars, a piano, drum breaks), tagged with `mmgat-tag`
exactly as a user would tag them.

    sudo apt-get install sonic-pi-samples
    python benchmarks/real_recordings.py --json benchmarks/results/real_recordings.json

For each recording: the classes it holds (by its name and by ear), the labels the model gives
(clip probability >= the model's threshold), the three most probable classes, and in how many
of its seconds each held class is heard (node probability >= the per-second threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mmgat.export.runtime import MMGATSession
from mmgat.stream.tag import main as tag_main

from machine import machine, save

SAMPLES = Path("/usr/share/sonic-pi/samples")
# recording -> the classes it holds (the recordings hold nothing else of the 20)
RECORDINGS = {
    "guit_e_fifths": ("guitar",),  # electric guitar, distorted power chords
    "guit_e_slide": ("guitar",),  # electric guitar, a slide
    "guit_em9": ("guitar",),  # electric guitar, an Em9 chord ringing
    "guit_harmonics": ("guitar",),  # electric guitar, natural harmonics
    "ambi_piano": ("piano",),  # a piano phrase with reverb
    "loop_amen_full": ("drums", "cymbals"),  # the Amen break: kit with ride and crash
    "loop_breakbeat": ("drums", "cymbals"),
    "loop_amen": ("drums", "cymbals"),
}


def tag_recordings(model, directory: Path) -> list[dict]:
    paths = [directory / f"{name}.flac" for name in RECORDINGS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: sudo apt-get install sonic-pi-samples")
    session = MMGATSession(model, cpu=True)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "tags.jsonl"
        model_args = ["--model", str(model)] if model else []
        if tag_main([*map(str, paths), "--out", str(out), "--cpu", "--no-progress", *model_args]):
            raise SystemExit("mmgat-tag failed")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    classes = list(session.metadata["classes"])
    results = []
    for (name, held), row in zip(RECORDINGS.items(), rows):
        top = sorted(row["probs"].items(), key=lambda item: -item[1])[:3]
        heard = np.array(row["seconds"]) >= session.second_thresholds  # (seconds, C)
        heard_seconds = {c: int(heard[:, classes.index(c)].sum()) for c in held}
        results.append({"recording": name, "duration_s": row["duration"], "holds": list(held),
                        "labels": row["labels"], "top3": {c: round(p, 3) for c, p in top},
                        "seconds": len(row["seconds"]), "heard_seconds": heard_seconds,
                        "all_heard": all(c in row["labels"] for c in held),
                        "extra_labels": [c for c in row["labels"] if c not in held]})
    return results


def show(results: list[dict], console: Console) -> None:
    table = Table(title="real recordings (sonic-pi-samples)")
    for column in ("recording", "holds", "labels", "top 3", "heard per second"):
        table.add_column(column)
    for r in results:
        table.add_row(r["recording"], ", ".join(r["holds"]), ", ".join(r["labels"]) or "-",
                      " ".join(f"{c} {p:.2f}" for c, p in r["top3"].items()),
                      ", ".join(f"{c} {n}/{r['seconds']}" for c, n in r["heard_seconds"].items()))
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one)")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="sonic-pi-samples folder")
    args = parser.parse_args(argv)
    results = tag_recordings(args.model, args.samples)
    report = {"benchmark": "real_recordings", "model": args.model or "shipped",
              "machine": machine(), "recordings": results,
              "all_held_classes_heard": sum(r["all_heard"] for r in results),
              "with_extra_labels": sum(bool(r["extra_labels"]) for r in results)}
    save(report, args.json)
    show(results, Console(width=max(120, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

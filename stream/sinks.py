"""Machine-readable outputs: one JSONL record / CSV row per update, flushed as written."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np

from mmgat.stream.pipeline import Update


def record(update: Update, classes, groups) -> dict:
    """The JSONL record: t, probs, active, seconds, latency_ms, overruns (+ input_overflows, groups,
    level_dbfs). `seconds` holds one row per second of the window, oldest first, each a list of
    probabilities in `classes` order (the first record of a JsonlSink names them)."""
    return {
        "t": round(update.t, 4),
        "probs": {name: round(float(p), 5) for name, p in zip(classes, update.probs)},
        "active": update.active,
        "seconds": np.round(update.node_probs.astype(float), 5).tolist(),
        "latency_ms": {stage: round(ms, 3) for stage, ms in update.latency_ms.items()},
        "overruns": int(update.overruns),
        "input_overflows": int(update.input_overflows),
        "groups": {name: round(float(p), 5) for name, p in zip(groups, update.group_probs)},
        "level_dbfs": round(update.level_dbfs, 2),
    }


class TextSink:
    """A text file, or stdout for '-' (flushed but left open at close)."""

    def __init__(self, path: str):
        self.file = sys.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")

    def close(self) -> None:
        if self.file is sys.stdout:
            self.file.flush()
        else:
            self.file.close()


class JsonlSink(TextSink):
    """One JSON object per line. Given `classes`, the first record also carries them, first:
    the order of the columns of every `seconds` row (as the CSV header names its columns)."""

    def __init__(self, path: str, classes=None):
        super().__init__(path)
        self.header = {"classes": list(classes)} if classes is not None else {}

    def write(self, rec: dict) -> None:
        if self.header:
            rec, self.header = {**self.header, **rec}, {}
        self.file.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.file.flush()

    def write_error(self, t: float, message: str) -> None:
        """A fault of the input (e.g. the device went away) at stream time t: {"t", "error"}."""
        self.write({"t": round(t, 4), "error": message})


class CsvSink(TextSink):
    """t, one column per class probability, active (';'-joined)."""

    def __init__(self, path: str, classes):
        super().__init__(path)
        self.classes = list(classes)
        self.writer = csv.writer(self.file)
        self.writer.writerow(["t", *self.classes, "active"])
        self.file.flush()

    def write(self, rec: dict) -> None:
        self.writer.writerow([rec["t"], *(rec["probs"][c] for c in self.classes), ";".join(rec["active"])])
        self.file.flush()

    def write_error(self, t: float, message: str) -> None:
        """A fault of the input: no probabilities, `error: message` in the active column."""
        self.writer.writerow([round(t, 4), *([""] * len(self.classes)), f"error: {message}"])
        self.file.flush()

"""The shipped model on the shipped demo clip, through the path users get (`mmgat-live --file
... --as-fast-as-possible --jsonl`, the model's own window and hop), against the clip's per-second
labels (`model/assets/demo.labels.json`, from the synthesizer's manifest)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmgat.model.frontend_file import ASSETS
from mmgat.model.labels import CLASSES
from mmgat.model.serving import LatestPerSecond

DEMO = ASSETS / "demo.flac"
LABELS = ASSETS / "demo.labels.json"
MOST = 0.5  # a planned instrument must be heard in more than this share of the seconds it plays
STRAY_SECONDS = 2  # an instrument the clip lacks may be heard for at most this many seconds


def heard_per_second(records: list[dict], duration: int, thresholds) -> np.ndarray:
    """(duration, C) bool: was class c heard in second k (audio k..k+1 s)?

    A record at time t scores the window ending at t: its `seconds` rows are the nodes of the
    seconds t - n .. t - 1 (n rows, oldest first). Second k is judged by its node in the last
    window that holds it (`mmgat.model.serving`), as `mmgat-tag` reports per second.
    Heard = that node's probability >= the model's per-second threshold for the class.
    """
    seconds = LatestPerSecond()
    for record in records:
        t = int(round(record["t"]))
        assert t == record["t"], "one record per whole second (hop 1 s) is assumed"
        seconds.add(t, record["seconds"])
    heard = seconds.array()
    assert len(heard) == duration, "every second of the clip must be scored"
    return heard >= np.asarray(thresholds)


def misheard(heard: np.ndarray, labels: np.ndarray) -> list[str]:
    """What the check finds wrong, one line per class: a planned instrument heard in at most
    half of the seconds it plays, or an instrument the clip lacks heard for more than 2 s."""
    problems = []
    for c, name in enumerate(CLASSES):
        plays = labels[:, c] > 0
        if plays.any():
            hits = int((heard[:, c] & plays).sum())
            if not hits > MOST * plays.sum():
                problems.append(f"{name}: heard in {hits} of the {plays.sum()} s it plays")
        elif heard[:, c].sum() > STRAY_SECONDS:
            problems.append(f"{name}: not in the clip, heard for {heard[:, c].sum()} s")
    return problems


def demo_labels() -> np.ndarray:
    """(seconds, C) 0/1 per-second labels of the demo clip."""
    second_labels = json.loads(LABELS.read_text())["second_labels"]
    return np.array([second_labels[name] for name in CLASSES]).T


def test_the_labels_describe_the_clip():
    import soundfile

    info = json.loads(LABELS.read_text())
    assert info["clip"] == DEMO.name and soundfile.info(str(DEMO)).duration == info["duration"] == 18
    labels = demo_labels()
    assert labels.shape == (18, len(CLASSES))
    assert sorted(CLASSES[c] for c in np.flatnonzero(labels.any(axis=0))) == sorted(info["clip_labels"])


def test_the_check_passes_a_model_that_hears_the_clip_and_fails_one_that_does_not():
    labels = demo_labels()
    assert misheard(labels > 0, labels) == []
    guitar, drums, piano = (CLASSES.index(name) for name in ("guitar", "drums", "piano"))
    half_deaf = labels > 0
    half_deaf[:9, guitar] = False  # guitar plays all 18 s: 9 of 18 is not more than half
    half_deaf[:3, piano] = True  # piano never plays: 3 s is too many
    half_deaf[5:7, drums] = False  # drums still heard in 5 of their 7 s: fine
    assert misheard(half_deaf, labels) == ["guitar: heard in 9 of the 18 s it plays",
                                           "piano: not in the clip, heard for 3 s"]


def test_records_are_mapped_to_the_last_window_holding_each_second():
    """Window 3, 5 s of audio: seconds 0-2 from the record at 3 s, 3 and 4 from the one at 5 s."""
    def record(t, n):
        return {"t": float(t), "seconds": [[(t - n + j) / 10] * len(CLASSES) for j in range(n)]}

    records = [record(1, 1), record(2, 2), record(3, 3), record(4, 3), record(5, 3)]
    heard = heard_per_second(records, 5, [0.25] * len(CLASSES))
    assert heard[:, 0].tolist() == [False, False, False, True, True]  # second k scored (k / 10)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the shipped model hears drums in 2 of their 7 s, and piano (13 s) and "
                   "trumpet (4 s), which the clip does not hold: issue 28")
def test_the_shipped_model_hears_its_demo_clip(tmp_path, capsys):
    from mmgat.export.runtime import MMGATSession
    from mmgat.stream.cli import main

    out = tmp_path / "demo.jsonl"
    assert main(["--file", str(DEMO), "--as-fast-as-possible", "--no-display", "--jsonl", str(out), "--cpu"]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    labels = demo_labels()
    heard = heard_per_second(records, len(labels), MMGATSession(cpu=True).second_thresholds)
    problems = misheard(heard, labels)
    assert not problems, "misheard: " + "; ".join(problems)

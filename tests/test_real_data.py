"""Real recordings in: the OpenMIC-IRMAS builder, `import`, and unknown labels through the data
sets, losses and metrics (a synthetic set reads as before)."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from mmgat.model.labels import CLASS_INDEX, CLASSES, NUM_CLASSES
from mmgat.model.train import data as data_module
from mmgat.model.train.cli import main
from mmgat.model.train.data import ClipSet, entry_split, read_manifest, second_targets_of
from mmgat.model.train.losses import MMGATLoss
from mmgat.model.train.metrics import evaluate_scores, tune_thresholds
from mmgat.model.train.openmic_irmas import build, held_out_split
from mmgat.model.train.real import clip_lengths, import_recordings
from real_fixtures import (IRMAS_TEST, IRMAS_TRAIN, OPENMIC_TEST, OPENMIC_TRAIN, write_irmas,
                           write_openmic, write_recordings)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("archives")
    return write_openmic(root / "openmic"), write_irmas(root / "irmas")


@pytest.fixture(scope="module")
def built(archives, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "openmic-irmas"
    build(*archives, out, seed=0)
    return out


def entries_by_name(directory):
    return {entry["seed"]: entry for entry in read_manifest(directory)}


def test_the_build_follows_the_papers_splits(built):
    entries = entries_by_name(built)
    train = [e for e in entries.values() if e["split"] == "train"]
    assert sorted(e["seed"] for e in train) == sorted(OPENMIC_TRAIN)  # one clip per OpenMIC clip
    inserted = [name for e in train for name in e["inserted"]]
    assert sorted(inserted) == sorted(f"IRMAS-TrainingData/{f}/{n}" for f, n in IRMAS_TRAIN)
    for entry in train:
        assert entry["duration"] == 10 + 3 * len(entry["inserted"]) <= 19
    held_out = [e for e in entries.values() if e["split"] != "train"]
    assert len(held_out) == len(OPENMIC_TEST) + len(IRMAS_TEST)
    for entry in held_out:
        name = entry.get("source", entry["seed"])
        assert entry["split"] == held_out_split(name) == entry_split(entry)
    import soundfile
    for entry in entries.values():
        info = soundfile.info(built / entry["path"])
        assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 16_000 * entry["duration"])


def test_openmic_labels_positive_negative_unknown(built):
    entry = entries_by_name(built)["100001_15360"]  # piano 1.0, guitar 0.0, rest unobserved
    assert entry["clip_labels"] == ["piano"]
    assert set(entry["unknown"]) == set(CLASSES) - {"piano", "guitar"}
    seconds, known = second_targets_of(entry)
    assert not known[:, CLASS_INDEX["piano"]].any()  # which seconds hold the piano: unknown
    assert known[:, CLASS_INDEX["guitar"]].all() and not seconds.any()
    relevance_below_half = entries_by_name(built)["100003_7680"]  # cello 0.75, drums 0.1
    assert relevance_below_half["clip_labels"] == ["cello"]
    assert "drums" not in relevance_below_half["unknown"]


def test_inserted_excerpts_are_known_per_second_and_join_the_union(built):
    for entry in entries_by_name(built).values():
        if entry["split"] != "train":
            continue
        seconds, known = second_targets_of(entry)
        observed = OPENMIC_TRAIN[entry["seed"]]
        for name in entry["inserted"]:
            code, file_name = name.split("/")[1:]
            instrument = {"cel": "cello", "gac": "guitar", "pia": "piano", "voi": "voice"}[code]
            assert instrument in entry["clip_labels"]
            c = CLASS_INDEX[instrument]
            assert seconds[:, c].sum() >= 3 and known[seconds[:, c] == 1, c].all()
            if "[dru]" in file_name:
                assert "drums" in entry["clip_labels"]
        for name, relevance in observed.items():
            assert (name in entry["clip_labels"]) >= (relevance >= 0.5)
            if relevance < 0.5 and name not in entry["clip_labels"] and name != "drums":
                # observed absent in the OpenMIC part, but an IRMAS excerpt annotates only its
                # instrument (and drums): the clip may hold it
                assert name in entry["unknown"]
                c = CLASS_INDEX[name]
                assert (known[:, c] == (seconds[:, CLASS_INDEX[instrument]] == 0)).all() or \
                    len(entry["inserted"]) > 1
    piano_clip = [e for e in entries_by_name(built).values()
                  if any("[pia][nod]" in n for n in e.get("inserted", []))]
    for entry in piano_clip:
        seconds, known = second_targets_of(entry)
        inserted = seconds[:, CLASS_INDEX["piano"]] == 1
        assert known[inserted, CLASS_INDEX["drums"]].all()


def test_irmas_test_excerpts_annotate_irmas_classes_only(built):
    entries = [e for e in read_manifest(built) if e.get("source", "").startswith("IRMAS-Testing")]
    assert len(entries) == len(IRMAS_TEST)
    by_source = {e["source"]: e for e in entries}
    entry = by_source["IRMAS-TestingData-Part2/IRTestingData-Part2/01 - Hello-10.wav"]
    assert entry["clip_labels"] == ["cello", "saxophone", "trumpet"]
    irmas = {"cello", "clarinet", "flute", "guitar", "organ", "piano", "saxophone", "trumpet",
             "violin", "voice"}
    assert set(entry["unknown"]) == set(CLASSES) - irmas
    assert entry["duration"] == 8
    guitar = by_source["IRMAS-TestingData-Part1/Part1/(02) dont kill the whale-3.wav"]
    assert guitar["clip_labels"] == ["guitar"]  # gel, CRLF and tab padding


def test_the_built_set_loads_with_its_masks(built):
    clips = data_module.synth_clips(read_manifest(built), [
        np.zeros((e["duration"], 128), np.float32) for e in read_manifest(built)],
        {"name": "x", "fingerprint": None, "file": None})
    assert not clips.label_mask.all() and clips.second_masks is not None
    assert ((clips.targets == 1) <= clips.label_mask).all()  # a positive is always known
    rng = np.random.default_rng(0)
    for i in range(len(clips)):
        window, target, mask, seconds, second_mask = data_module.crop(clips, i, 6, rng)
        assert len(window) == len(clips.features[i])  # unknown seconds: the clip is taken whole
        np.testing.assert_array_equal(target, clips.targets[i])


@pytest.mark.parametrize("breakage, message", [
    ("no-npz", "openmic-2018.npz not found"),
    ("no-partition", "split01_test.csv not found"),
    ("key-without-audio", "but its audio"),
    ("key-not-in-npz", "which openmic-2018.npz does not label"),
    ("no-irmas-training", "IRMAS-TrainingData not found"),
    ("no-irmas-testing", "no IRMAS-TestingData-Part* folder"),
    ("unknown-code-folder", "unknown IRMAS code 'xyz'"),
    ("unknown-code-label", "unknown IRMAS code 'bnj'"),
    ("missing-label-file", "IRMAS label file"),
])
def test_bad_archives_get_one_line(archives, tmp_path, capsys, breakage, message):
    openmic, irmas = (shutil.copytree(a, tmp_path / a.name) for a in archives)
    test_wav = irmas / "IRMAS-TestingData-Part1" / "Part1" / "02 - Song One-1.wav"
    if breakage == "no-npz":
        (openmic / "openmic-2018.npz").unlink()
    elif breakage == "no-partition":
        (openmic / "partitions" / "split01_test.csv").unlink()
    elif breakage == "key-without-audio":
        (openmic / "audio" / "100" / "100002_0.ogg").unlink()
    elif breakage == "key-not-in-npz":
        with open(openmic / "partitions" / "split01_train.csv", "a") as handle:
            handle.write("999999_0\n")
    elif breakage == "no-irmas-training":
        shutil.rmtree(irmas / "IRMAS-TrainingData")
    elif breakage == "no-irmas-testing":
        for part in irmas.glob("IRMAS-TestingData-Part*"):
            shutil.rmtree(part)
    elif breakage == "unknown-code-folder":
        (irmas / "IRMAS-TrainingData" / "cel").rename(irmas / "IRMAS-TrainingData" / "xyz")
    elif breakage == "unknown-code-label":
        test_wav.with_suffix(".txt").write_text("pia\t\nbnj\t\n")
    elif breakage == "missing-label-file":
        test_wav.with_suffix(".txt").unlink()
    status = main(["openmic-irmas", "--openmic", str(openmic), "--irmas", str(irmas),
                   "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and message in err[0], err


def test_unreadable_audio_is_named_skipped_and_counted(archives, tmp_path, caplog):
    openmic, irmas = (shutil.copytree(a, tmp_path / a.name) for a in archives)
    (openmic / "audio" / "100" / "100002_0.ogg").write_bytes(b"not an ogg")
    excerpt = irmas / "IRMAS-TrainingData" / "pia" / "[pia][nod][jaz_blu]1022__3.wav"
    excerpt.write_bytes(b"RIFF")
    with caplog.at_level(logging.WARNING):
        summary = build(openmic, irmas, tmp_path / "out")
    assert summary["skipped"] == 2
    assert summary["clips"] == len(OPENMIC_TRAIN) + len(OPENMIC_TEST) - 1 + len(IRMAS_TEST)
    text = caplog.text
    assert "100002_0.ogg" in text and "1022__3.wav" in text and "2 unreadable" in text


def test_a_rerun_after_a_stop_keeps_the_written_clips(archives, tmp_path):
    out = tmp_path / "out"
    build(*archives, out)
    first = (out / "manifest.jsonl").read_text()
    (out / "manifest.jsonl").unlink()  # stopped before the manifest was written
    written = out / "audio" / "000046_3840.flac"
    stamp = written.stat().st_mtime_ns
    build(*archives, out)
    assert (out / "manifest.jsonl").read_text() == first and written.stat().st_mtime_ns == stamp


# ---- import ------------------------------------------------------------------------------------

def test_clip_lengths():
    assert clip_lengths(5) == [5] and clip_lengths(19) == [19]
    for seconds in range(20, 200):
        lengths = clip_lengths(seconds)
        assert sum(lengths) == seconds and all(10 <= n <= 19 for n in lengths), seconds


def test_import_folders(tmp_path):
    root = write_recordings(tmp_path / "mine")
    summary = import_recordings(tmp_path / "data", folders=root)
    entries = read_manifest(tmp_path / "data")
    assert summary["clips"] == len(entries) == 6  # the 45 s piano is three clips of 15 s
    pieces = [e for e in entries if e["source"] == "pia/etude.flac"]
    assert [e["duration"] for e in pieces] == [15, 15, 15]
    assert len({e["split"] for e in pieces}) == 1  # a recording stays in one split
    for entry in entries:
        assert entry["unknown"] == [] and len(entry["clip_labels"]) == 1
        seconds, known = second_targets_of(entry)
        c = CLASS_INDEX[entry["clip_labels"][0]]
        assert not known[:, c].any() and known[:, np.arange(NUM_CLASSES) != c].all()
    assert {e["clip_labels"][0] for e in entries} == {"guitar", "piano", "voice", "drums"}


def test_import_csv_with_splits_and_errors(tmp_path, capsys):
    root = write_recordings(tmp_path / "mine")
    table = root / "labels.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "labels", "split"],
                                      ["guitar/strum.wav", "guitar;voice", "val"],
                                      ["drums/loop.wav", "", ""],
                                      ["missing.wav", "piano", "train"]])
    summary = import_recordings(tmp_path / "data", table=table)
    assert summary["skipped"] == 1 and summary["clips"] == 2
    entries = read_manifest(tmp_path / "data")
    assert entries[0]["split"] == "val" and entries[0]["clip_labels"] == ["guitar", "voice"]
    assert entries[1]["clip_labels"] == []
    bad = root / "bad.csv"
    bad.write_text("guitar/strum.wav,guitar\ndrums/loop.wav,drums;banjolele\n")
    capsys.readouterr()
    assert main(["import", "--csv", str(bad), "--out", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 2" in err[0] and "banjolele" in err[0]
    assert main(["import", "--csv", str(table), "--out", str(tmp_path / "data")]) == 1
    assert "exists" in capsys.readouterr().err
    (root / "lute").mkdir()
    assert main(["import", "--folders", str(root), "--out", str(tmp_path / "third")]) == 1
    assert "unknown class 'lute'" in capsys.readouterr().err


# ---- unknown labels in losses and metrics ----------------------------------------------------

def synthetic_like_batch(seed=0, b=4, n=5):
    generator = torch.Generator().manual_seed(seed)
    targets = (torch.rand(b, NUM_CLASSES, generator=generator) > 0.7).float()
    node_targets = (torch.rand(b, n, NUM_CLASSES, generator=generator) > 0.7).float()
    groups = (torch.rand(b, 3, generator=generator) > 0.5).float()
    out = {"logits": torch.randn(b, NUM_CLASSES, generator=generator),
           "group_logits": torch.randn(b, 3, generator=generator),
           "node_logits": torch.randn(b, n, NUM_CLASSES, generator=generator),
           "embedding": torch.randn(b, 128, generator=generator)}
    batch = {"targets": targets, "label_mask": torch.ones_like(targets, dtype=torch.bool),
             "group_targets": groups, "group_mask": torch.ones_like(groups, dtype=torch.bool),
             "node_targets": node_targets, "node_mask": torch.ones(b, n, dtype=torch.bool)}
    return out, batch


def test_all_known_node_masks_change_nothing_and_unknowns_carry_no_loss():
    loss_fn = MMGATLoss(128)
    out, batch = synthetic_like_batch()
    total, parts = loss_fn(out, batch)
    known = {**batch, "node_label_mask": torch.ones_like(batch["node_targets"], dtype=torch.bool)}
    assert loss_fn(out, known)[1] == parts  # a synthetic set: the same figures
    unknown = known["node_label_mask"].clone()
    unknown[0, :, 3] = False
    flipped = {**known, "node_label_mask": unknown, "node_targets": batch["node_targets"].clone()}
    flipped["node_targets"][0, :, 3] = 1 - flipped["node_targets"][0, :, 3]
    once, twice = loss_fn(out, {**known, "node_label_mask": unknown})[1], loss_fn(out, flipped)[1]
    assert once["node"] == twice["node"] != parts["node"]


def test_metrics_ignore_unknowns_and_all_known_masks_change_nothing():
    rng = np.random.default_rng(0)
    targets = (rng.random((30, NUM_CLASSES)) > 0.7).astype(np.float32)
    scores = rng.random((30, NUM_CLASSES))
    ones = np.ones(targets.shape, dtype=bool)
    thresholds = tune_thresholds(targets, scores)
    np.testing.assert_array_equal(thresholds, tune_thresholds(targets, scores, ones))
    assert evaluate_scores(targets, scores, thresholds) == \
        evaluate_scores(targets, scores, thresholds, ones)
    mask = ones.copy()
    mask[:10, 2] = False
    flipped = targets.copy()
    flipped[:10, 2] = 1 - flipped[:10, 2]
    np.testing.assert_array_equal(tune_thresholds(targets, scores, mask),
                                  tune_thresholds(flipped, scores, mask))
    assert evaluate_scores(targets, scores, thresholds, mask) == \
        evaluate_scores(flipped, scores, thresholds, mask)


def test_a_synthetic_set_has_no_unknowns(tmp_path):
    from test_train_data import write_synthetic_set

    directory = write_synthetic_set(tmp_path / "set", {"train": 3, "val": 1, "test": 1})
    entries = read_manifest(directory)
    clips = data_module.synth_clips(entries, [np.zeros((e["duration"], 128), np.float32)
                                              for e in entries], {})
    assert clips.label_mask.all() and clips.second_masks is None
    for entry, targets in zip(entries, clips.targets):
        seconds, known = second_targets_of(entry)
        assert known.all()
        np.testing.assert_array_equal(targets, seconds.max(axis=0))


def test_eval_support_counts_known_positives():
    from mmgat.model.train.evaluate import score_report

    targets = np.zeros((3, NUM_CLASSES), np.float32)
    targets[:, 0] = 1
    mask = np.ones(targets.shape, dtype=bool)
    mask[0, 0] = False
    clips = ClipSet(keys=["a", "b", "c"], features=[], targets=targets, label_mask=mask,
                    second_targets=None, splits=np.array(["test"] * 3), soundfonts=[[]] * 3,
                    frontend={})
    report = score_report(clips, np.full(targets.shape, 0.9), np.full((3, 3), 0.9), [0.5] * 20,
                          [0.5] * 3)
    assert report["per_class"][CLASSES[0]]["support"] == 2
    json.dumps(report)


def test_the_frontend_loss_on_known_targets_is_plain_bce():
    from mmgat.model.train.train_frontend import UNKNOWN, known_bce

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, NUM_CLASSES + 3, generator=generator)
    targets = (torch.rand(64, NUM_CLASSES + 3, generator=generator) > 0.8).float()
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(known_bce(logits, targets), plain, rtol=1e-6, atol=0)
    partly = targets.clone()
    partly[:10, 2] = UNKNOWN
    keep = torch.ones_like(targets, dtype=torch.bool)
    keep[:10, 2] = False
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], targets[keep])
    torch.testing.assert_close(known_bce(logits, partly), expected)

"""Data sets, cache, OpenMIC loader and batching of the trainer (no audio: synthetic instances)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgat.model.labels import CLASSES, NUM_CLASSES, group_max, GROUPS
from mmgat.model.serving import served_windows
from mmgat.model.train import data as data_module
from mmgat.model.train.data import (MANIFEST, cache_path, load_data, synth_split, write_cache)
from mmgat.model.train.predict import collate

TEST_FINGERPRINT = "0123456789abcdef"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Graphs of <= 20 nodes gain nothing from more threads, and on a shared CPU extra threads
    oversubscribe it (measured: 20x slower training)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_synthetic_set(directory, counts=None, seed=0, dim=128, noise=0.5,
                        frontend_file=None) -> Path:
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
                {"name": "vggish-trunk", "fingerprint": TEST_FINGERPRINT,
                 "file": frontend_file and str(frontend_file)})
    return directory


def write_openmic(directory, n=40, seed=0) -> Path:
    """A small OpenMIC-2018 copy of the real structure; keys k000..; 10 keys in neither split."""
    directory = Path(directory)
    (directory / "partitions").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = np.array([f"{i:06d}_{rng.integers(0, 9999)}" for i in range(n)])
    np.savez(directory / "openmic-2018.npz",
             X=rng.integers(0, 256, size=(n, 10, 128)).astype(np.uint8),
             Y_true=rng.random((n, NUM_CLASSES)).astype(np.float32),
             Y_mask=rng.random((n, NUM_CLASSES)) < 0.3, sample_key=keys)
    (directory / "partitions" / "split01_train.csv").write_text("\n".join(keys[:20]) + "\n")
    (directory / "partitions" / "split01_test.csv").write_text("\n".join(keys[20:30]) + "\n")
    return directory / "openmic-2018.npz"


def test_synthetic_split_is_stable_and_proportioned():
    splits = [synth_split(seed) for seed in range(4000)]
    assert splits == [synth_split(seed) for seed in range(4000)]
    fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(fractions["test"] - 0.15) < 0.02
    assert abs(fractions["val"] - 0.85 * 0.15) < 0.02


def test_synthetic_set_reads_cache_and_labels(tmp_path):
    directory = write_synthetic_set(tmp_path / "set", {"train": 5, "val": 2, "test": 2})
    clips = load_data(directory)
    entries = [json.loads(line) for line in (directory / MANIFEST).read_text().splitlines()]
    assert clips.keys == [e["path"] for e in entries]
    assert clips.frontend["fingerprint"] == TEST_FINGERPRINT
    for clip, entry, features, seconds in zip(clips.targets, entries, clips.features,
                                              clips.second_targets):
        assert [CLASSES[c] for c in np.flatnonzero(clip)] == entry["clip_labels"]
        assert len(features) == len(seconds) == entry["duration"]
        assert features.dtype == np.float32
    assert clips.label_mask.all()
    assert [len(clips.subset(s)) for s in ("train", "val", "test")] == [5, 2, 2]
    assert len(clips.subset("all")) == 9


def test_stale_cache_is_refused(tmp_path):
    from mmgat.model.frontend import Frontend, save_frontend, seeded_init

    directory = write_synthetic_set(tmp_path / "set", {"train": 2, "val": 1, "test": 1})
    with pytest.raises(ValueError, match="stale cache"):
        load_data(directory, expected_fingerprint="fedcba9876543210")
    frontend_file = tmp_path / "frontend.pt"
    save_frontend(seeded_init(Frontend(), 3), frontend_file)
    with pytest.raises(ValueError, match="stale cache.*--rebuild-cache"):
        load_data(directory, frontend_file=frontend_file, device="cpu")


def test_cache_is_built_from_audio_and_rebuilt_on_request(tmp_path):
    import soundfile

    from mmgat.model.frontend import Frontend, save_frontend, seeded_init

    directory = write_synthetic_set(tmp_path / "set", {"train": 2, "val": 1, "test": 0})
    cache_path(directory, "embedding").unlink()
    rng = np.random.default_rng(0)
    for entry in (json.loads(line) for line in (directory / MANIFEST).read_text().splitlines()):
        samples = 0.1 * rng.standard_normal(entry["duration"] * 16000 + 123)  # partial last second
        soundfile.write(directory / entry["path"], samples.astype(np.float32), 16000)
    files = []
    for seed in (0, 1):
        files.append(tmp_path / f"frontend{seed}.pt")
        save_frontend(seeded_init(Frontend(), seed), files[-1])
    first = load_data(directory, frontend_file=files[0], device="cpu")
    assert [len(f) for f in first.features] == [len(s) for s in first.second_targets]
    assert first.features[0].shape[1] == 128
    again = load_data(directory, device="cpu")  # no frontend given: the cache's own
    assert again.frontend == first.frontend
    np.testing.assert_array_equal(again.features[0], first.features[0])
    with pytest.raises(ValueError, match="stale"):
        load_data(directory, frontend_file=files[1], device="cpu")
    rebuilt = load_data(directory, frontend_file=files[1], rebuild=True, device="cpu")
    assert rebuilt.frontend["fingerprint"] != first.frontend["fingerprint"]
    assert rebuilt.frontend["file"] == str(files[1])
    mel = load_data(directory, input_kind="mel", device="cpu")
    assert mel.frontend["name"] == "logmel-stats" and mel.features[0].shape[1] == 128


def test_openmic_loader_honours_splits_and_masks(tmp_path):
    path = write_openmic(tmp_path)
    clips = load_data(path)
    with np.load(path) as raw:
        keys, truth, mask = list(raw["sample_key"]), raw["Y_true"], raw["Y_mask"]
        features = raw["X"]
    train_keys = (tmp_path / "partitions" / "split01_train.csv").read_text().split()
    test_keys = (tmp_path / "partitions" / "split01_test.csv").read_text().split()
    assert sorted(clips.subset("test").keys) == sorted(test_keys)
    assert sorted(clips.subset("train").keys + clips.subset("val").keys) == sorted(train_keys)
    assert len(clips.subset("val")) > 0 and len(clips) == 30  # unlisted keys left out
    assert clips.frontend["name"] == "vggish-audioset"
    for i, key in enumerate(clips.keys):
        row = keys.index(key)
        np.testing.assert_array_equal(clips.label_mask[i], mask[row])
        np.testing.assert_array_equal(clips.targets[i], (truth[row] >= 0.5) & mask[row])
        np.testing.assert_array_equal(clips.features[i], features[row].astype(np.float32))


def test_openmic_unknown_key_is_a_clear_error(tmp_path):
    path = write_openmic(tmp_path)
    (tmp_path / "partitions" / "split01_test.csv").write_text("nope_1\n")
    with pytest.raises(ValueError, match="nope_1"):
        load_data(path)


def test_openmic_masked_entries_carry_no_gradient(tmp_path):
    from mmgat.model.mmgat import MMGAT, MMGATConfig
    from mmgat.model.train.losses import MMGATLoss

    clips = load_data(write_openmic(tmp_path)).subset("train")
    config = MMGATConfig(label_embeddings=False)
    batch = next(data_module.training_batches(clips, 16, 10, config, "cpu",
                                              np.random.default_rng(0)))
    assert not batch["label_mask"].all() and batch["nodes"].shape[1] == 10
    torch.manual_seed(0)
    out = MMGAT(config)(batch["nodes"], batch["weights"], batch["scale_masks"], batch["node_mask"])
    out["logits"].retain_grad()
    out["group_logits"].retain_grad()
    loss_fn = MMGATLoss(config.hidden)
    loss, _ = loss_fn(out, batch)
    loss.backward()
    assert (out["logits"].grad[~batch["label_mask"]] == 0).all()
    assert (out["logits"].grad[batch["label_mask"]] != 0).all()
    assert (out["group_logits"].grad[~batch["group_mask"]] == 0).all()
    # Flipping unlabelled targets changes nothing.
    flipped = dict(batch, targets=torch.where(batch["label_mask"], batch["targets"],
                                              1 - batch["targets"]))
    assert loss_fn(out, flipped)[0] == loss


def test_masked_group_targets():
    targets = np.zeros((3, NUM_CLASSES), dtype=np.float32)
    mask = np.ones((3, NUM_CLASSES), dtype=bool)
    targets[0, CLASSES.index("voice")] = 1.0  # "other" present
    mask[1, CLASSES.index("drums")] = False  # "hard" unknown
    targets[2, CLASSES.index("piano")] = 1.0
    mask[2, CLASSES.index("drums")] = False  # "hard" present anyway
    groups, group_mask = data_module.masked_group_targets(targets, mask)
    np.testing.assert_array_equal(groups, group_max(targets * mask))
    hard = GROUPS.index("hard")
    assert not group_mask[1, hard] and group_mask[2, hard] and group_mask[0].all()


def test_crops_cover_every_window_length_with_the_union_of_their_labels(tmp_path):
    clips = load_data(write_synthetic_set(tmp_path / "set", {"train": 4, "val": 0, "test": 0}))
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(400):
        i = int(rng.integers(len(clips)))
        window, target, mask, seconds, second_mask = data_module.crop(clips, i, 6, rng)
        assert mask.all() and second_mask.all()
        start = next(s for s in range(len(clips.features[i]))
                     if np.array_equal(clips.features[i][s: s + len(window)], window))
        np.testing.assert_array_equal(seconds, clips.second_targets[i][start: start + len(window)])
        np.testing.assert_array_equal(target, seconds.max(axis=0))
        lengths.add(len(window))
    assert lengths == set(range(1, 7))


def test_collate_pads_and_builds_the_graph():
    from mmgat.model.graph import build_graph
    from mmgat.model.mmgat import MMGATConfig

    rng = np.random.default_rng(0)
    windows = [rng.standard_normal((n, 128)).astype(np.float32) for n in (3, 7, 1)]
    config = MMGATConfig(similarity="l1", neighbours=3)
    batch = collate(windows, config, "cpu")
    assert batch["nodes"].shape == (3, 7, 128)
    assert batch["node_mask"].sum(dim=1).tolist() == [3, 7, 1]
    weights, masks = build_graph(torch.from_numpy(windows[0])[None], torch.ones(1, 3, dtype=bool),
                                 3, "l1")
    torch.testing.assert_close(batch["weights"][0, :3, :3], weights[0])
    assert torch.equal(batch["scale_masks"][0, :, :3, :3], masks[0])


def test_evaluation_windows_are_those_users_are_served():
    """Hop 1 s: a window ends at every second, W long once the window has filled."""
    assert served_windows(3, 10) == [(0, 1), (0, 2), (0, 3)]
    assert served_windows(12, 10)[-3:] == [(0, 10), (1, 11), (2, 12)]
    for length in range(1, 30):
        windows = served_windows(length, 4)
        assert [end for _, end in windows] == list(range(1, length + 1))
        assert all(end - start == min(end, 4) for start, end in windows)


def test_a_subset_sharing_the_cache_embeds_nothing_and_new_clips_are_added(tmp_path, monkeypatch):
    directory = write_synthetic_set(tmp_path / "set", {"train": 4, "val": 2, "test": 2})
    full = load_data(directory)
    subset = tmp_path / "subset"
    subset.mkdir()
    lines = (directory / MANIFEST).read_text().splitlines()
    (subset / MANIFEST).write_text("\n".join(lines[2:5]) + "\n")
    (subset / ".mmgat-cache").symlink_to(directory / ".mmgat-cache")

    def no_extraction(directory, paths, extractor):
        assert not paths, f"re-embedded {paths}"
        return []

    monkeypatch.setattr(data_module, "extract_instances", no_extraction)
    part = load_data(subset)
    for key, features in zip(part.keys, part.features):
        np.testing.assert_array_equal(features, full.features[full.keys.index(key)])

    extra = json.loads(lines[0])
    extra["path"] = "new.wav"
    with open(subset / MANIFEST, "a") as manifest:
        manifest.write(json.dumps(extra) + "\n")
    new_instances = np.ones((extra["duration"], 128), np.float32)
    monkeypatch.setattr(data_module, "extract_instances",
                        lambda directory, paths, extractor: [new_instances for _ in paths])
    monkeypatch.setattr(data_module, "make_extractor",
                        lambda kind, file, device: (None, full.frontend))
    grown = load_data(subset)
    np.testing.assert_array_equal(grown.features[-1], new_instances)
    assert len(data_module.read_cache(cache_path(directory, "embedding"))[0]) == len(lines) + 1

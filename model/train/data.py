"""Data sets as cached per-second instances, their splits, and batches of instance graphs.

Training and evaluation read only `ClipSet`s: per clip an (n_seconds, 128) float32 array of
instances plus its targets (what computes the instances, and a model's outputs over the clips,
is in predict.py). Two sources:

- a synthetic set (`mmgat-train synth`): DIR/manifest.jsonl + audio. The frontend embeds every
  clip once; the instances go to DIR/.mmgat-cache/embedding.npz (float16, one array for the
  whole set + offsets + clip paths + the frontend's name, fingerprint and file). A cache built
  by another frontend is refused (stale) unless a rebuild is asked for. The "mel-spectrogram
  input" ablation caches per-second log-mel statistics (mean and std of each of the 64 bands =
  128 values) the same way in DIR/.mmgat-cache/mel.npz.
- a local OpenMIC-2018 copy: openmic-2018.npz (X (N, 10, 128) AudioSet-VGGish features,
  Y_true, Y_mask, sample_key) + partitions/split01_{train,test}.csv. Targets are
  Y_true >= 0.5; entries outside Y_mask are unlabelled and masked out of loss and metrics.

Unknown labels. Real recordings are annotated in part (OpenMIC leaves most classes of a clip
unobserved; IRMAS annotates 11 instruments): a manifest entry may list clip-level `unknown`
classes, and its `second_labels` may hold null for a second whose label is unknown. Unknown
entries count as neither positive nor negative in every loss and metric (`label_mask`,
`second_masks`). A synthetic set has none, and is read exactly as before.

Splits never depend on file order. An entry's own `split` field wins (imported and built sets
split by recording, see real.py). Synthetic: a clip's seed is hashed to u in [0, 1);
u < 0.15 -> test, u < 0.15 + 0.85 * 0.15 -> val, else train (so test = 15 %, val = 15 % of the
rest). OpenMIC: test = split01_test.csv; val = the train keys whose hash u < 0.15. Thresholds
and early stopping use val only; test is for reporting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mmgat.model.frontend import AUDIOSET, default_device
from mmgat.model.graph import MAX_WINDOW
from mmgat.model.labels import CLASSES, NUM_CLASSES, group_max
from mmgat.model.train.predict import collate, extract_instances, make_extractor

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
CACHE_DIR = ".mmgat-cache"
INPUTS = ("embedding", "mel")
TEST_FRACTION = 0.15
VAL_FRACTION = 0.15
SPLITS = ("train", "val", "test")
OPENMIC_SPLITS = {"train": "split01_train.csv", "test": "split01_test.csv"}


@dataclass
class ClipSet:
    """Clips as instances + targets. `label_mask` False marks unlabelled (clip, class) pairs."""

    keys: list[str]
    features: list[np.ndarray]  # per clip (n_seconds, D) float32
    targets: np.ndarray  # (N, C) float32 clip-level multi-hot
    label_mask: np.ndarray  # (N, C) bool
    second_targets: list[np.ndarray] | None  # per clip (n_seconds, C), when known
    splits: np.ndarray  # (N,) "train" | "val" | "test"
    soundfonts: list[list[str]]
    frontend: dict  # {"name", "fingerprint", "file"} of what produced the instances
    second_masks: list[np.ndarray] | None = None  # per clip (n_seconds, C) bool; None: all known

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, split: str) -> "ClipSet":
        """One split, or the whole set for "all"."""
        if split == "all":
            return self
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
        chosen = np.flatnonzero(self.splits == split)
        return replace(
            self, keys=[self.keys[i] for i in chosen], features=[self.features[i] for i in chosen],
            targets=self.targets[chosen], label_mask=self.label_mask[chosen],
            second_targets=None if self.second_targets is None
            else [self.second_targets[i] for i in chosen],
            second_masks=None if self.second_masks is None
            else [self.second_masks[i] for i in chosen],
            splits=self.splits[chosen], soundfonts=[self.soundfonts[i] for i in chosen])

    def all_second_masks(self) -> list[np.ndarray] | None:
        """Per clip (n_seconds, C) bool masks of the per-second labels (all True when known)."""
        if self.second_targets is None:
            return None
        return self.second_masks or [np.ones(s.shape, dtype=bool) for s in self.second_targets]

    @property
    def input_dim(self) -> int:
        return int(self.features[0].shape[1])

    def summary(self) -> dict:
        return {"clips": len(self), "seconds": int(sum(len(f) for f in self.features)),
                "soundfonts": sorted({s for clip in self.soundfonts for s in clip}),
                "splits": {s: int((self.splits == s).sum()) for s in SPLITS}}


def unit_hash(text: str) -> float:
    """A stable pseudo-random number in [0, 1) for a string (same on every machine)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16 ** 12


def synth_split(seed) -> str:
    u = unit_hash(f"clip-seed:{seed}")
    if u < TEST_FRACTION:
        return "test"
    return "val" if u < TEST_FRACTION + (1 - TEST_FRACTION) * VAL_FRACTION else "train"


def entry_split(entry: dict) -> str:
    """A manifest entry's split: its own `split` field, else the hash of its seed."""
    return entry.get("split") or synth_split(entry.get("seed", entry["path"]))


# ---------------------------------------------------------------------------------------------
# The on-disk cache of instances.


def cache_path(directory, input_kind: str) -> Path:
    return Path(directory) / CACHE_DIR / f"{input_kind}.npz"


def read_manifest(directory) -> list[dict]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise OSError(f"no {MANIFEST} in {directory}")
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not entries:
        raise ValueError(f"{path} lists no clips")
    return entries


def write_cache(path: Path, paths: list[str], instances: list[np.ndarray], frontend: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, features=np.concatenate(instances).astype(np.float16),
             offsets=np.cumsum([0] + [len(i) for i in instances]).astype(np.int64),
             paths=np.array(paths), frontend=np.array(json.dumps(frontend)))
    temporary.replace(path)


class DamagedCache(ValueError):
    """A cache file that cannot be read whole (truncated, or not ours)."""


def read_cache(path: Path) -> tuple[list[str], list[np.ndarray], dict]:
    try:
        with np.load(path) as cache:
            features, offsets = cache["features"].astype(np.float32), cache["offsets"]
            paths, frontend = [str(p) for p in cache["paths"]], json.loads(str(cache["frontend"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DamagedCache(f"{path} is damaged ({type(error).__name__})") from None
    if len(offsets) != len(paths) + 1 or offsets[-1] != len(features):
        raise DamagedCache(f"{path} is damaged (its offsets do not fit its instances)")
    return paths, [features[a:b] for a, b in zip(offsets[:-1], offsets[1:])], frontend


def cached_instances(directory, paths: list[str], input_kind: str = "embedding",
                     frontend_file=None, rebuild: bool = False, device=None,
                     expected_fingerprint: str | None = None) -> tuple[list[np.ndarray], dict]:
    """Per-clip instances of `paths` (relative to `directory`) and the frontend that made them.

    Read from the cache; clips it lacks are computed and added to it (so subsets of a data set
    that share its cache never embed a clip twice), everything is recomputed on `rebuild`. A
    cache made by another frontend than the one given (or the fingerprint expected) is refused
    as stale. With no frontend given, the cache's own is used."""
    if input_kind not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {input_kind!r}")
    device = device or default_device()
    path, extractor, known = cache_path(directory, input_kind), None, {}
    if path.is_file() and not rebuild:
        try:
            cached_paths, instances, frontend = read_cache(path)
        except DamagedCache as error:  # rebuilt from the audio, never read in part
            if frontend_file is None and input_kind == "embedding" and expected_fingerprint is None:
                raise DamagedCache(f"{error}; rebuild it with the frontend that made it "
                                   "(--frontend FILE --rebuild-cache)") from None
            log.warning("%s; rebuilding it", error)
            return cached_instances(directory, paths, input_kind, frontend_file, True, device,
                                    expected_fingerprint)
        wanted = expected_fingerprint
        if wanted is None and (frontend_file is not None or input_kind == "mel"):
            extractor = make_extractor(input_kind, frontend_file, device)
            wanted = extractor[1]["fingerprint"]
        if wanted is not None and wanted != frontend["fingerprint"]:
            raise ValueError(f"stale cache {path}: built by frontend {frontend['name']} "
                             f"({frontend['fingerprint']}), not the one asked for ({wanted}); "
                             "rebuild it (--rebuild-cache)")
        known = dict(zip(cached_paths, instances))
        if all(p in known for p in paths):
            return [known[p] for p in paths], frontend
        frontend_file = frontend_file or frontend["file"]  # missing clips: same frontend
    extractor, frontend = extractor or make_extractor(input_kind, frontend_file, device)
    if expected_fingerprint is not None and expected_fingerprint != frontend["fingerprint"]:
        raise ValueError(f"frontend {frontend['file']} ({frontend['fingerprint']}) is not the one "
                         f"asked for ({expected_fingerprint})")
    return grown_cache(directory, path, paths, known, extractor, frontend), frontend


def grown_cache(directory, path: Path, paths: list[str], known: dict, extractor,
                identity: dict) -> list[np.ndarray]:
    """Instances of `paths`: those in `known` (path -> instances, read from the cache at
    `path`), the others computed by `extractor` and added; the cache is rewritten with all of
    them, under `identity` ({"name", "fingerprint", "file"}), when it grew."""
    missing = [p for p in dict.fromkeys(paths) if p not in known]
    if missing:  # rounded as the cache stores them: fresh or cached, the same instances
        known.update((p, i.astype(np.float16).astype(np.float32))
                     for p, i in zip(missing, extract_instances(directory, missing, extractor)))
        write_cache(path, list(known), list(known.values()), identity)
    return [known[p] for p in paths]


# ---------------------------------------------------------------------------------------------
# Data sets.


def second_targets_of(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """Manifest per-second labels (class -> list of 0/1/null) -> ((duration, C) float32 targets,
    (duration, C) bool mask, False where null: unknown). A class the entry does not list is
    absent, unless the entry lists it as `unknown`."""
    seconds = np.zeros((int(entry["duration"]), NUM_CLASSES), dtype=np.float32)
    mask = np.ones(seconds.shape, dtype=bool)
    unknown = set(entry.get("unknown", ()))
    for c, name in enumerate(CLASSES):
        labels = entry["second_labels"].get(name)
        if labels is None:
            mask[:, c] = name not in unknown
            continue
        labels = labels[: len(seconds)]
        if None in labels:
            known = np.array([v is not None for v in labels])
            seconds[: len(labels), c] = [v or 0 for v in labels]
            mask[: len(labels), c] = known
        else:
            seconds[: len(labels), c] = labels
    return seconds, mask


def clip_targets(entry: dict, seconds: np.ndarray, mask: np.ndarray):
    """A clip's (targets (C,), label mask (C,)) from its per-second labels: a class is present
    when a second says so, or, where some of its seconds are unknown, when the entry's
    `clip_labels` list it; unknown when the entry lists it as `unknown`."""
    targets = seconds.max(axis=0)
    partly_unknown = ~mask.all(axis=0)
    if partly_unknown.any():
        listed = np.isin(CLASSES, entry.get("clip_labels", []))
        targets = np.where(partly_unknown, np.maximum(targets, listed), targets)
    return targets.astype(np.float32), ~np.isin(CLASSES, entry.get("unknown", []))


def load_synth(directory, input_kind: str = "embedding", frontend_file=None,
               rebuild: bool = False, device=None, expected_fingerprint=None) -> ClipSet:
    entries = read_manifest(directory)
    paths = [entry["path"] for entry in entries]
    instances, frontend = cached_instances(directory, paths, input_kind, frontend_file, rebuild,
                                           device, expected_fingerprint)
    return synth_clips(entries, instances, frontend)


def synth_clips(entries: list[dict], instances: list[np.ndarray], frontend: dict) -> ClipSet:
    """Manifest entries + their clips' instances -> a ClipSet with clip and per-second labels
    (and their masks)."""
    paths = [entry["path"] for entry in entries]
    seconds, masks, targets, label_mask = [], [], [], []
    for clip, entry in zip(instances, entries):  # align: a clip may hold a partial last second
        labels, known = second_targets_of(entry)
        if len(labels) < len(clip):
            labels = np.concatenate([labels, np.repeat(labels[-1:], len(clip) - len(labels), 0)])
            known = np.concatenate([known, np.repeat(known[-1:], len(clip) - len(known), 0)])
        seconds.append(labels[: len(clip)])
        masks.append(known[: len(clip)])
        clip_target, clip_mask = clip_targets(entry, seconds[-1], masks[-1])
        targets.append(clip_target)
        label_mask.append(clip_mask)
    return ClipSet(keys=paths, features=instances, targets=np.stack(targets),
                   label_mask=np.stack(label_mask), second_targets=seconds,
                   second_masks=None if all(m.all() for m in masks) else masks,
                   splits=np.array([entry_split(e) for e in entries]),
                   soundfonts=[list(entry.get("soundfonts", [])) for entry in entries],
                   frontend=frontend)


def read_keys(path: Path) -> list[str]:
    if not path.is_file():
        raise OSError(f"OpenMIC split file not found: {path}")
    return [line.strip().split(",")[0] for line in path.read_text().splitlines() if line.strip()]


def load_openmic(npz_path, partitions=None) -> ClipSet:
    """A local OpenMIC-2018 copy; `partitions` defaults to the npz's folder / partitions."""
    npz_path = Path(npz_path)
    partitions = Path(partitions) if partitions else npz_path.parent / "partitions"
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            features, truth, mask, keys = (data["X"], data["Y_true"], data["Y_mask"],
                                           [str(k) for k in data["sample_key"]])
    except KeyError as error:
        raise ValueError(f"{npz_path} lacks {error} (want X, Y_true, Y_mask, sample_key)") from None
    if features.ndim != 3 or truth.shape != (len(keys), NUM_CLASSES) or mask.shape != truth.shape:
        raise ValueError(f"{npz_path}: want X (N, T, D), Y_true and Y_mask (N, {NUM_CLASSES})")
    index = {key: i for i, key in enumerate(keys)}
    chosen, splits = [], []
    for split, name in OPENMIC_SPLITS.items():
        for key in read_keys(partitions / name):
            if key not in index:
                raise ValueError(f"{partitions / name} names {key}, not in {npz_path.name}")
            chosen.append(index[key])
            splits.append(split if split == "test" or unit_hash(f"openmic:{key}") >= VAL_FRACTION
                          else "val")
    mask = mask[chosen].astype(bool)
    return ClipSet(keys=[keys[i] for i in chosen],
                   features=[features[i].astype(np.float32) for i in chosen],
                   targets=((truth[chosen] >= 0.5) & mask).astype(np.float32), label_mask=mask,
                   second_targets=None, splits=np.array(splits),
                   soundfonts=[[] for _ in chosen],
                   frontend={"name": AUDIOSET, "fingerprint": None, "file": None})


def load_data(data, input_kind: str = "embedding", frontend_file=None, rebuild: bool = False,
              device=None, expected_fingerprint=None) -> ClipSet:
    """A synthetic DIR (with manifest.jsonl) or an OpenMIC-2018 .npz."""
    data = Path(data)
    if data.is_file() and data.suffix == ".npz":
        if input_kind != "embedding":
            raise ValueError("OpenMIC-2018 holds VGGish features only (no audio for --input mel)")
        return load_openmic(data)
    if (data / MANIFEST).is_file():
        return load_synth(data, input_kind, frontend_file, rebuild, device, expected_fingerprint)
    raise OSError(f"{data} is neither a directory with {MANIFEST} nor an OpenMIC .npz")


# ---------------------------------------------------------------------------------------------
# Windows and batches of graphs.


def crop(clips: ClipSet, i: int, window: int, rng: np.random.Generator):
    """A random window of W consecutive seconds, W uniform in 1..min(len, window), so the model
    sees every window length the live runtime uses -> (instances, target, label mask,
    per-second targets, per-second mask). Its target is the union of its seconds' labels.
    Without per-second labels (OpenMIC) the window is the whole clip (up to `window`), because a
    shorter crop may miss a labelled instrument, and its per-second targets are None. A clip
    with unknown seconds is taken whole (up to MAX_WINDOW nodes), so that its clip labels hold:
    where a real recording says "guitar", no part of it is known to hold the guitar."""
    features = clips.features[i]
    if clips.second_targets is None:
        length = min(len(features), window)
        start = int(rng.integers(0, len(features) - length + 1))
        return features[start: start + length], clips.targets[i], clips.label_mask[i], None, None
    if clips.second_masks is not None and not clips.second_masks[i].all():
        return (features[:MAX_WINDOW], clips.targets[i], clips.label_mask[i],
                clips.second_targets[i][:MAX_WINDOW], clips.second_masks[i][:MAX_WINDOW])
    length = int(rng.integers(1, min(len(features), window) + 1))
    start = int(rng.integers(0, len(features) - length + 1))
    seconds = clips.second_targets[i][start: start + length]
    return (features[start: start + length], seconds.max(0), clips.label_mask[i], seconds,
            np.ones(seconds.shape, dtype=bool))


def padded_seconds(seconds: list[np.ndarray], nodes: int, dtype=np.float32) -> np.ndarray:
    """Per-second targets (or masks) of a batch's windows -> (B, nodes, C), zero (False) on
    padded nodes."""
    padded = np.zeros((len(seconds), nodes, NUM_CLASSES), dtype=dtype)
    for b, window in enumerate(seconds):
        padded[b, : len(window)] = window
    return padded


def masked_group_targets(targets: np.ndarray, label_mask: np.ndarray):
    """A group is known present when a labelled member is present, known absent when all its
    members are labelled absent, and unknown (masked) otherwise."""
    present = group_max(targets * label_mask)
    has_unlabelled = group_max(~label_mask)
    return present, (present > 0) | (has_unlabelled == 0)


def training_batches(clips: ClipSet, batch_size: int, window: int, config, device,
                     rng: np.random.Generator):
    """One epoch of shuffled batches of random crops, with targets and loss masks, plus each
    node's per-second targets where the data set has them."""
    order = rng.permutation(len(clips))
    for start in range(0, len(order), batch_size):
        chosen = order[start: start + batch_size]
        windows, targets, label_mask, seconds, second_masks = zip(
            *(crop(clips, i, window, rng) for i in chosen))
        targets, label_mask = np.stack(targets), np.stack(label_mask)
        groups, group_mask = masked_group_targets(targets, label_mask)
        batch = collate(list(windows), config, device)
        arrays = [("targets", targets.astype(np.float32)), ("label_mask", label_mask),
                  ("group_targets", groups.astype(np.float32)), ("group_mask", group_mask)]
        if clips.second_targets is not None:  # each node's own labels (synthetic sets)
            nodes = batch["nodes"].shape[1]
            arrays += [("node_targets", padded_seconds(seconds, nodes)),
                       ("node_label_mask", padded_seconds(second_masks, nodes, bool))]
        batch.update({name: torch.from_numpy(np.asarray(value)).to(device)
                      for name, value in arrays})
        yield batch

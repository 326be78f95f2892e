"""`mmgat-train frontend`: train the `vggish-trunk` frontend on per-second labels.

Every 1 s frame of a synthetic clip is one example; its targets are the 20 classes playing in
that second plus their onset groups. A linear probe (128 -> 23) on the frontend's embedding
makes the 128-d instances linearly separable by class, which is what MMGAT's cosine graph and
attention want. Two phases, both seeded:

1. head: the trunk keeps its seeded random weights (or AudioSet's, with --init), rounded to
   the fp16 the frontend file stores; its pooled block statistics are computed once per frame
   of every clip (streamed clip by clip, the one expensive pass; cached in DIR/.mmgat-cache
   for this trunk, so another head on the same clips costs minutes) and the head + probe are
   fitted on the train split's (cheap, many epochs).
2. fine-tune (optional): the whole network trains end to end on timbre-augmented frames of
   at most FINE_TUNE_CLIPS clips for a time budget (--minutes); the validation F1 decides
   which weights are kept.

Then the data set's embedding cache is written for the new frontend: while the trunk is the
one the statistics came from, the saved head applied to them, so `mmgat-train fit` never runs
the trunk over the data again.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmgat.model.audio import load_audio, split_frames
from mmgat.model.frontend import (AUDIOSET, TRUNK, Frontend, FrontendError, default_device,
                                  load_audioset, load_frontend, probe_fingerprint, probe_frames,
                                  save_frontend, seeded_init)
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS, group_max
from mmgat.model.train.augment import augment
from mmgat.model.train.data import (cache_path, cached_instances, grown_cache, read_cache,
                                    read_manifest, second_targets_of, synth_split, write_cache)
from mmgat.model.train.metrics import f1_scores
from mmgat.model.train.progress import progress_bar

FEATURE_BATCH = 64
POOLED = "pooled"  # the cache of pooled trunk statistics (fp16, 3.75 KB per second of audio)
FINE_TUNE_CLIPS = 1500  # train clips whose audio the fine-tune holds in memory (64 KB a second)


def frame_targets(entry: dict, seconds: int) -> np.ndarray:
    """(seconds, C + G) float32: the classes playing in each second, then their onset groups."""
    labels = second_targets_of(entry)[:seconds]
    return np.concatenate([labels, group_max(labels)], axis=1).astype(np.float32)


def load_frames(directory, entries) -> tuple[np.ndarray, np.ndarray]:
    """All whole seconds of the clips -> frames (n, FRAME_SAMPLES) and targets (n, C + G)."""
    frames, targets = [], []
    with progress_bar(transient=True) as progress:
        for entry in progress.track(entries, description="reading audio"):
            clip = split_frames(load_audio(Path(directory) / entry["path"]))
            labels = frame_targets(entry, len(clip))
            frames.append(clip[: len(labels)])
            targets.append(labels)
    return np.concatenate(frames), np.concatenate(targets)


def initial_frontend(init, seed: int) -> Frontend:
    """Seeded random trunk, or the conv trunk of AudioSet VGGish / one of our frontend files."""
    frontend = seeded_init(Frontend(TRUNK), seed)
    if init is None:
        return frontend
    init = [Path(p) for p in init]
    source = load_audioset(*init) if len(init) == 2 else load_frontend(init[0])
    trunk = source.net.vgg.features if source.name == AUDIOSET else source.net.features
    frontend.net.features.load_state_dict(trunk.state_dict())
    if source.name == TRUNK:
        frontend.net.head.load_state_dict(source.net.head.state_dict())
    return frontend


def stored_precision(frontend: Frontend) -> Frontend:
    """Round the weights to the fp16 the frontend file stores, so that statistics computed now
    are those of the frontend as it will be loaded."""
    frontend.net.load_state_dict({k: v.half().float() for k, v in frontend.net.state_dict().items()})
    return frontend


class PooledStatistics:
    """The trunk's pooled block statistics (n, POOLED_DIM) per frame: an extractor for the
    data set caches, which stream the clips (the audio of a large set never sits in memory)."""

    name = "pooled trunk statistics"

    def __init__(self, frontend: Frontend):
        self.frontend = frontend

    @torch.inference_mode()
    def embed(self, frames: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(frames, dtype=torch.float32).to(self.frontend.device)
        return self.frontend.net.pooled(self.frontend.examples(batch)).float().cpu().numpy()

    def fingerprint(self) -> str:
        return probe_fingerprint(self.embed(probe_frames()))


def pooled_statistics(data, paths: list[str], frontend: Frontend) -> list[np.ndarray]:
    """Per clip (seconds, POOLED_DIM) statistics of the frontend's trunk: read from the data
    set's cache when it holds them for this trunk, computed (and added to it) otherwise."""
    extractor = PooledStatistics(frontend)
    identity = {"name": f"{frontend.name} pooled statistics", "file": None,
                "fingerprint": extractor.fingerprint()}
    path, known = cache_path(data, POOLED), {}
    if path.is_file():
        cached_paths, statistics, recorded = read_cache(path)
        if recorded["fingerprint"] == identity["fingerprint"]:  # else another trunk's: replaced
            known = dict(zip(cached_paths, statistics))
    return grown_cache(data, path, paths, known, extractor, identity)


def stacked(statistics: list[np.ndarray], targets: list[np.ndarray], chosen: list[int], device):
    return (torch.from_numpy(np.concatenate([statistics[i] for i in chosen])).to(device),
            np.concatenate([targets[i] for i in chosen]))


def per_second_f1(logits: torch.Tensor, targets: np.ndarray) -> float:
    predictions = (torch.sigmoid(logits).cpu().numpy() >= 0.5).astype(np.float32)
    return float(f1_scores(targets[:, :NUM_CLASSES], predictions[:, :NUM_CLASSES])["f1_micro"])


def fit_head(frontend, probe, features, targets, val_features, val_targets, epochs, seed) -> float:
    generator = torch.Generator().manual_seed(seed)
    params = list(frontend.net.head.parameters()) + list(probe.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    targets_t = torch.from_numpy(targets).to(features.device)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state = -1.0, None
    with progress_bar() as progress:
        task = progress.add_task("fitting head", total=epochs)
        for _ in range(epochs):
            for batch in torch.randperm(len(features), generator=generator).split(256):
                optimizer.zero_grad()
                loss_fn(probe(frontend.net.head(features[batch])), targets_t[batch]).backward()
                optimizer.step()
            with torch.no_grad():
                score = per_second_f1(probe(frontend.net.head(val_features)), val_targets)
            if score > best:
                best, best_state = score, snapshot(frontend, probe)
            progress.update(task, advance=1, description=f"fitting head  val F1 {best:.3f}")
    restore(frontend, probe, best_state)
    return best


def snapshot(frontend, probe) -> tuple[dict, dict]:
    return ({k: v.detach().clone() for k, v in frontend.net.state_dict().items()},
            {k: v.detach().clone() for k, v in probe.state_dict().items()})


def restore(frontend, probe, state) -> None:
    frontend.net.load_state_dict(state[0])
    probe.load_state_dict(state[1])


def evaluate(frontend, probe, frames, targets, device) -> float:
    logits = []
    with torch.inference_mode():
        for start in range(0, len(frames), FEATURE_BATCH):
            batch = torch.from_numpy(frames[start:start + FEATURE_BATCH]).to(device)
            logits.append(probe(frontend(batch)).cpu())
    return per_second_f1(torch.cat(logits), targets)


def fine_tune(frontend, probe, frames, targets, val_frames, val_targets, minutes, seed, device,
              best) -> float:
    """End to end on augmented frames until the time budget is spent; keeps the best on val."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW([
        {"params": frontend.net.features.parameters(), "lr": 1e-4},
        {"params": list(frontend.net.head.parameters()) + list(probe.parameters()), "lr": 5e-4},
    ], weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    best_state, deadline = snapshot(frontend, probe), time.monotonic() + 60 * minutes
    steps_per_check = max(1, len(frames) // (4 * FEATURE_BATCH))
    with progress_bar() as progress:
        task = progress.add_task("fine-tuning", total=60 * minutes)
        step, started = 0, time.monotonic()
        while time.monotonic() < deadline:
            frontend.train()
            index = rng.integers(0, len(frames), FEATURE_BATCH)
            batch = np.stack([augment(frames[i], rng) for i in index]).astype(np.float32)
            optimizer.zero_grad()
            loss = loss_fn(probe(frontend(torch.from_numpy(batch).to(device))),
                           torch.from_numpy(targets[index]).to(device))
            loss.backward()
            optimizer.step()
            step += 1
            if step % steps_per_check == 0 or time.monotonic() >= deadline:
                frontend.eval()
                score = evaluate(frontend, probe, val_frames, val_targets, device)
                if score > best:
                    best, best_state = score, snapshot(frontend, probe)
            progress.update(task, completed=time.monotonic() - started,
                            description=f"fine-tuning  loss {loss.item():.3f}  val F1 {best:.3f}")
    restore(frontend, probe, best_state)
    frontend.eval()
    return best


def train_frontend(data, out, seed: int = 0, head_epochs: int = 30, minutes: float = 20.0,
                   init=None, max_clips: int | None = None, device=None) -> dict:
    device = device or default_device()
    torch.manual_seed(seed)
    entries = read_manifest(data)[:max_clips]
    splits = [synth_split(entry.get("seed", entry["path"])) for entry in entries]
    train = [i for i, s in enumerate(splits) if s == "train"]
    val = [i for i, s in enumerate(splits) if s == "val"]
    if not train or not val:
        raise ValueError(f"{data}: too few clips for a train and a validation split")
    started = time.monotonic()
    frontend = stored_precision(initial_frontend(init, seed)).to(device).eval()
    paths = [entry["path"] for entry in entries]
    statistics = pooled_statistics(data, paths, frontend)  # every split: the embedding cache
    targets = [frame_targets(entry, len(s)) for entry, s in zip(entries, statistics)]
    statistics = [s[: len(t)] for s, t in zip(statistics, targets)]
    probe = nn.Linear(frontend.net.head[-1].out_features, NUM_CLASSES + NUM_GROUPS).to(device)
    train_statistics, train_targets = stacked(statistics, targets, train, device)
    head_f1 = fit_head(frontend, probe, train_statistics, train_targets,
                       *stacked(statistics, targets, val, device), head_epochs, seed)
    tuned_f1 = head_f1
    if minutes > 0:
        frames, frames_targets = load_frames(data, [entries[i] for i in train[:FINE_TUNE_CLIPS]])
        val_frames, val_targets = load_frames(data, [entries[i] for i in val])
        tuned_f1 = fine_tune(frontend, probe, frames, frames_targets, val_frames, val_targets,
                             minutes, seed, device, head_f1)
    summary = {"clips": len(train), "val_clips": len(val), "frames": len(train_targets),
               "seed": seed, "head_epochs": head_epochs, "minutes": minutes,
               "init": [str(p) for p in init] if init else f"seeded random ({seed})",
               "val_f1_micro_per_second": {"head": head_f1, "fine_tuned": tuned_f1},
               "device": str(device), "train_seconds": round(time.monotonic() - started, 1),
               "soundfonts": sorted({sf for i in train for sf in entries[i].get("soundfonts", [])})}
    fingerprint = save_frontend(frontend.cpu(), out, summary)
    write_embedding_cache(data, paths, statistics if tuned_f1 == head_f1 else None, out)
    return {"fingerprint": fingerprint, "file": str(out), **summary}


def write_embedding_cache(data, paths: list[str], statistics, frontend_file: Path) -> None:
    """The data set's embedding cache for the frontend just written: its head on the pooled
    statistics when the trunk is still theirs, else a fresh pass of the whole frontend."""
    if statistics is None:  # the fine-tune changed the trunk
        cached_instances(data, paths, "embedding", frontend_file=frontend_file, rebuild=True)
        return
    frontend = load_frontend(frontend_file)  # the stored (fp16) head, as the runtime has it
    with torch.inference_mode():
        instances = [frontend.net.head(torch.from_numpy(s)).numpy() for s in statistics]
    write_cache(cache_path(data, "embedding"), paths, instances,
                {"name": frontend.name, "file": str(frontend_file),
                 "fingerprint": frontend.recorded_fingerprint})


def run(args) -> int:
    if args.init and len(args.init) not in (1, 2):
        raise FrontendError("--init takes one frontend file, or AudioSet's VGGISH_PTH PCA_PTH")
    result = train_frontend(args.data, Path(args.out), args.seed, args.head_epochs, args.minutes,
                            args.init, args.max_clips)
    print(f"wrote {result['file']} (fingerprint {result['fingerprint']}); per-second val F1 "
          f"micro: head {result['val_f1_micro_per_second']['head']:.3f}, fine-tuned "
          f"{result['val_f1_micro_per_second']['fine_tuned']:.3f}")
    return 0


def register(commands) -> None:
    parser = commands.add_parser("frontend", help="train the vggish-trunk frontend",
                                 description=__doc__)
    parser.add_argument("--data", required=True, help="synthetic data set (mmgat-train synth)")
    parser.add_argument("--out", required=True, help="frontend file to write (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="end-to-end fine-tuning budget (0: head only)")
    parser.add_argument("--init", nargs="+", metavar="FILE",
                        help="start from a frontend file, or AudioSet's two VGGish release files")
    parser.add_argument("--max-clips", type=int, help="use only the first N clips")
    parser.set_defaults(func=run)

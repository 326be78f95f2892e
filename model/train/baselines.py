"""Baselines for the ablation table, trained and scored like MMGAT (thresholds tuned on val,
the epoch with the best val F1 micro kept, reported on test):

- pooled MLP: the clip's instances mean-pooled over time -> MLP -> classes (no graph at all);
- per-second MLP: each second's instance alone -> MLP -> classes, trained on the per-second
  labels (no graph, no context); a clip's prediction is the maximum over its seconds. The
  localisation baseline: its per-second F1 is what MMGAT's node outputs must beat;
- ConvNet on log-mel (after Han et al. 2017, "Deep convolutional neural networks for
  predominant instrument recognition", slimmed for CPU: one 3x3 conv per block instead of two):
  conv + max-pooling blocks, global max pooling, a linear head; trained on 1 s log-mel
  examples with per-second labels, an epoch being one random second of every training clip (as
  an MMGAT epoch is one random crop of every clip: all 211k seconds of synth20k an epoch would
  cost 8 min of one core each); a clip's prediction is the maximum over its seconds. Needs the
  audio (synthetic sets only): its log-mel examples come from the cache the frontend trainer
  keeps (DIR/.mmgat-cache/logmel.npy), built on first use.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmgat.model.frontend import native_bf16
from mmgat.model.labels import NUM_CLASSES, group_max
from mmgat.model.train.data import ClipSet, masked_group_targets, read_manifest
from mmgat.model.train.evaluate import per_second_scores, score_report
from mmgat.model.train.fit import restore_rng, rng_state
from mmgat.model.train.losses import masked_bce
from mmgat.model.train.metrics import evaluate_scores, tune_thresholds
from mmgat.model.train.progress import track
from mmgat.model.train.train_frontend import logmel_cache

CONV_CHANNELS = (16, 32, 64, 128)


class PooledMLP(nn.Module):
    def __init__(self, input_dim: int, hidden: int = 256, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(input_dim), nn.Linear(input_dim, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, NUM_CLASSES))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class ConvNet(nn.Module):
    """(B, 1, 96, 64) log-mel examples -> (B, C) float32 logits. `bf16`: autocast with
    channels-last weights, as the frontend trainer runs where bf16 is native (about 2.5x faster
    than fp32 for one training step on one core of the 2-core EPYC)."""

    def __init__(self, channels=CONV_CHANNELS, dropout: float = 0.3, bf16: bool = False):
        super().__init__()
        self.bf16 = bf16
        blocks, previous = [], 1
        for width in channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(previous, NUM_CLASSES))

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        examples = examples.contiguous(memory_format=torch.channels_last)
        with torch.autocast(examples.device.type, torch.bfloat16, enabled=self.bf16):
            return self.head(self.features(examples).amax(dim=(2, 3))).float()


def train_and_report(model, batches, clip_probs, clips: ClipSet, epochs: int, lr: float,
                     seed: int, device, description: str, second_probs=None,
                     patience: int | None = None, checkpoint: Path | None = None) -> dict:
    """Generic loop: `batches(train, rng)` yields (inputs, targets, mask) tensors on device,
    `clip_probs(clip_set)` -> (N, C) numpy; `second_probs(clip_set)`, where the model scores
    seconds, -> per clip (n_seconds, C) numpy. Stops after `patience` epochs without a better
    val F1 micro, as MMGAT's fit does. With `checkpoint`, the loop's state is written there after
    every epoch and a run stopped part way continues from it. Returns the test report of the
    best val epoch, with per-second scores (thresholds tuned on the val seconds) when it scores
    seconds."""
    torch.manual_seed(seed)
    rng = np.random.Generator(np.random.PCG64(seed))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    train, val, test = clips.subset("train"), clips.subset("val"), clips.subset("test")
    best_f1, best_state, best_thresholds, best_epoch, start = -1.0, None, None, 0, 0
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        restore_rng(rng, saved["rng"])
        best_f1, best_state, best_thresholds, best_epoch, start = (
            saved[k] for k in ("best_f1", "best_state", "best_thresholds", "best_epoch", "epoch"))
    for epoch in track(range(start, epochs), description=description):
        model.train()
        for inputs, targets, mask in batches(train, rng):
            loss = masked_bce(model(inputs), targets, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        probs = clip_probs(val)
        thresholds = tune_thresholds(val.targets, probs, val.label_mask)
        f1 = evaluate_scores(val.targets, probs, thresholds, val.label_mask)["f1_micro"]
        if f1 > best_f1:
            best_f1, best_thresholds, best_epoch = f1, thresholds, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif patience is not None and epoch - best_epoch >= patience:
            break
        if checkpoint is not None:  # written aside, then renamed: a kill never leaves half a file
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng_state(rng), "best_f1": best_f1, "best_state": best_state,
                        "best_thresholds": best_thresholds, "best_epoch": best_epoch,
                        "epoch": epoch + 1}, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
    model.load_state_dict(best_state)
    model.eval()
    val_groups, group_mask = masked_group_targets(val.targets, val.label_mask)
    group_thresholds = tune_thresholds(val_groups, group_max(clip_probs(val)), group_mask)
    probs = clip_probs(test)
    report = score_report(test, probs, group_max(probs), best_thresholds, group_thresholds)
    if second_probs is not None and clips.second_targets is not None:
        second_thresholds = tune_thresholds(np.concatenate(val.second_targets),
                                            np.concatenate(second_probs(val)),
                                            np.concatenate(val.all_second_masks()))
        report["per_second"] = per_second_scores(test.second_targets, second_probs(test),
                                                 second_thresholds, test.all_second_masks())
    return report


def pooled_mlp(directory, clips: ClipSet, epochs: int, seed: int, device, patience=None,
               checkpoint=None, batch_size: int = 32, lr: float = 1e-3) -> dict:
    """Test report of the pooled MLP (`directory` unused: the instances are in `clips`)."""
    def pooled(clip_set):
        return torch.from_numpy(np.stack([f.mean(axis=0) for f in clip_set.features])).to(device)

    def batches(train, rng):
        inputs = pooled(train)
        targets = torch.from_numpy(train.targets).to(device)
        mask = torch.from_numpy(train.label_mask).to(device)
        order = torch.from_numpy(rng.permutation(len(train))).to(device)
        for start in range(0, len(order), batch_size):
            chosen = order[start: start + batch_size]
            yield inputs[chosen], targets[chosen], mask[chosen]

    torch.manual_seed(seed)  # the initial weights are the seed's, whatever ran before
    model = PooledMLP(clips.input_dim)

    @torch.inference_mode()
    def clip_probs(clip_set):
        return torch.sigmoid(model(pooled(clip_set))).cpu().numpy()

    return train_and_report(model, batches, clip_probs, clips, epochs, lr, seed, device,
                            "baseline: pooled MLP", patience=patience, checkpoint=checkpoint)


def per_second_mlp(directory, clips: ClipSet, epochs: int, seed: int, device, patience=None,
                   checkpoint=None, batch_size: int = 256, lr: float = 1e-3) -> dict:
    """Test report (with per-second scores) of the per-second MLP (`directory` unused)."""
    if clips.second_targets is None:
        raise ValueError("the per-second MLP needs per-second labels (a synthetic set)")

    def batches(train, rng):
        inputs = torch.from_numpy(np.concatenate(train.features)).to(device)
        targets = torch.from_numpy(np.concatenate(train.second_targets)).to(device)
        masks = torch.from_numpy(np.concatenate(train.all_second_masks())).to(device)
        order = torch.from_numpy(rng.permutation(len(inputs))).to(device)
        for start in range(0, len(order), batch_size):
            chosen = order[start: start + batch_size]
            yield inputs[chosen], targets[chosen], masks[chosen]

    torch.manual_seed(seed)  # the initial weights are the seed's, whatever ran before
    model = PooledMLP(clips.input_dim)

    @torch.inference_mode()
    def second_probs(clip_set):
        inputs = torch.from_numpy(np.concatenate(clip_set.features)).to(device)
        probs = torch.sigmoid(model(inputs)).cpu().numpy()
        return np.split(probs, np.cumsum([len(f) for f in clip_set.features])[:-1])

    def clip_probs(clip_set):
        return np.stack([seconds.max(axis=0) for seconds in second_probs(clip_set)])

    return train_and_report(model, batches, clip_probs, clips, epochs, lr, seed, device,
                            "baseline: per-second MLP", second_probs, patience, checkpoint)


def log_mel_rows(directory, clips: ClipSet) -> dict[str, np.ndarray]:
    """Per clip key, its (n_seconds, 96, 64) fp16 log-mel examples: views into the frontend
    trainer's memory-mapped cache of the set (computed once, shared by every seed)."""
    entries = read_manifest(directory)
    examples, _, clip_of = logmel_cache(directory, entries)
    starts = np.searchsorted(clip_of, np.arange(len(entries) + 1))
    rows = {entry["path"]: examples[start:end]
            for entry, start, end in zip(entries, starts[:-1], starts[1:])}
    for key, features in zip(clips.keys, clips.features):
        if len(rows[key]) != len(features):
            raise ValueError(f"{key}: {len(rows[key])} log-mel seconds but {len(features)} "
                             "instances; rebuild the caches")
    return rows


def convnet(directory, clips: ClipSet, epochs: int, seed: int, device, patience=None,
            checkpoint=None, batch_size: int = 64, lr: float = 1e-3) -> dict:
    """Test report of the log-mel ConvNet trained on the audio of `directory`."""
    if clips.second_targets is None:
        raise ValueError("the ConvNet baseline needs audio with per-second labels "
                         "(a synthetic set)")
    examples = log_mel_rows(directory, clips)

    def batches(train, rng):  # one random second of every clip, as fit draws one crop of each
        order = rng.permutation(len(train))
        chosen_seconds = [int(rng.integers(len(f))) for f in train.features]
        second_masks = train.all_second_masks()
        for start in range(0, len(order), batch_size):
            chosen = [(i, chosen_seconds[i]) for i in order[start: start + batch_size]]
            inputs = np.stack([examples[train.keys[i]][s] for i, s in chosen])
            inputs = inputs.astype(np.float32)[:, None]
            targets = np.stack([train.second_targets[i][s] for i, s in chosen])
            masks = np.stack([second_masks[i][s] for i, s in chosen])
            yield (torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device),
                   torch.from_numpy(masks).to(device))

    torch.manual_seed(seed)  # the initial weights are the seed's, whatever ran before
    model = ConvNet(bf16=native_bf16(torch.device(device))).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def second_probs(clip_set):
        return [torch.sigmoid(model(torch.from_numpy(examples[key].astype(np.float32)[:, None])
                                    .to(device))).cpu().numpy() for key in clip_set.keys]

    def clip_probs(clip_set):
        return np.stack([seconds.max(axis=0) for seconds in second_probs(clip_set)])

    return train_and_report(model, batches, clip_probs, clips, epochs, lr, seed, device,
                            "baseline: ConvNet on log-mel", second_probs, patience, checkpoint)

"""`mmgat-train frontend`: train the `vggish-trunk` frontend end to end on per-second labels.

Every whole second of a clip is one example; its targets are the 20 classes playing in that
second plus their onset groups. Targets a real recording leaves unknown (data.py) carry no loss. A linear classifier on the frontend's 128-d output
(the `probe`) makes the instances carry instrument identity linearly, which is what MMGAT's
cosine graph and attention want.

- The log-mel examples are computed once into an fp16 memory-mapped cache
  (DIR/.mmgat-cache/logmel.npy, 12 KB per second of audio) with the targets beside it.
- The whole network trains: the VGGish conv trunk with BatchNorm after every convolution (the
  trunk is deep and starts from random weights), then its pooled head and the probe. BatchNorm
  is folded into each convolution's weight and bias when saved, so the frontend file holds
  torchvggish's plain layer stack.
- On the CPU: bf16 autocast with channels-last tensors where the CPU has native bf16 (2.3x
  faster than fp32 on a 2-core EPYC), fp32 otherwise; CUDA when present.
- Augmentation on the log-mel: gain, mixing two seconds (targets: the union of their labels),
  time and frequency masks.
- AdamW with a one-cycle schedule over `--epochs`; `--minutes` bounds one invocation and
  `--resume` continues from DIR/.mmgat-cache/frontend-train.pt (written at every validation),
  so a long run can be spread over several sessions. The best validation F1 is kept.

When the schedule is done the frontend is saved (fp16) and the data set's embedding cache is
rebuilt with it from the audio, exactly as the runtime computes it, so `mmgat-train fit`
trains at once.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mmgat.model.audio import EXAMPLE_FRAMES, LOG_OFFSET, N_MELS, load_audio, split_frames
from mmgat.model.frontend import (AUDIOSET, TRUNK, Frontend, FrontendError, LogMel, VGGishTrunk,
                                  default_device, load_audioset, load_frontend, native_bf16,
                                  save_frontend, seeded_init)
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS
from mmgat.model.train.data import (cache_path, cached_instances, entry_split,
                                    masked_group_targets, read_manifest, second_targets_of)
from mmgat.model.train.losses import masked_bce
from mmgat.model.train.metrics import f1_scores
from mmgat.model.train.progress import progress_bar, track

log = logging.getLogger(__name__)

BATCH = 64
EVAL_BATCH = 256
# When training continues a trunk: the batch that sets BatchNorm, and the examples (a superset)
# its probe is first fitted on, with Adam at PROBE_LR for PROBE_STEPS full-batch steps.
KEEP_FUNCTION_EXAMPLES = 256
PROBE_EXAMPLES = 4096
PROBE_STEPS = 300
PROBE_LR = 1e-2
VAL_SECONDS = 4000  # a fixed, evenly spaced sample of the validation seconds
VALIDATE_EVERY_S = 240.0  # validation + checkpoint cadence (seconds of training)
LOGMEL = "logmel"  # the log-mel cache: DIR/.mmgat-cache/logmel.npy + logmel.json
STATE = "frontend-train"  # the resumable training state: DIR/.mmgat-cache/frontend-train.pt
SILENT = float(np.log(LOG_OFFSET))  # the log-mel of silence: what masks write


# ---- the log-mel cache -------------------------------------------------------------------------

UNKNOWN = -1.0  # a target whose label is unknown (real recordings annotated in part)


def frame_targets(entry: dict, seconds: int) -> np.ndarray:
    """(seconds, C + G) float32: the classes playing in each second, then their onset groups;
    UNKNOWN where a second's label is unknown (a group: where an unlabelled member may be the
    one playing)."""
    labels, known = (part[:seconds] for part in second_targets_of(entry))
    groups, groups_known = masked_group_targets(labels, known)
    return np.concatenate([np.where(known, labels, UNKNOWN), np.where(groups_known, groups, UNKNOWN)],
                          axis=1).astype(np.float32)


def union(targets: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """The labels of two sounds mixed: present where either is present, absent where both are
    known absent, unknown otherwise."""
    return torch.where((targets == 1) | (others == 1), torch.ones_like(targets),
                       torch.minimum(targets, others))


def known_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE over the known targets (UNKNOWN ones carry no gradient)."""
    known = targets != UNKNOWN
    return masked_bce(logits, targets.clamp_min(0), known)


def logmel_cache(data, entries: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(examples (n, 96, 64) fp16 memory-mapped, targets (n, C + G), clip index (n,)) of every
    whole labelled second of the clips; computed once, reused while the clip list is the same."""
    array_path = cache_path(data, LOGMEL).with_suffix(".npy")
    index_path = array_path.with_suffix(".json")
    paths = [entry["path"] for entry in entries]
    if index_path.is_file() and array_path.is_file():
        try:
            index = json.loads(index_path.read_text())
            examples = np.load(array_path, mmap_mode="r")
            damaged = examples.shape != (len(index["clip"]), EXAMPLE_FRAMES, N_MELS)
        except (OSError, ValueError, KeyError):
            damaged = True
        if damaged:  # e.g. truncated by a full disk: rebuilt, never read in part
            log.warning("%s is damaged; rebuilding it", array_path)
        elif index["paths"] == paths:
            return (examples, np.asarray(index["targets"], np.float32),
                    np.asarray(index["clip"], np.int64))
    log_mel, examples, targets, clip = LogMel(), [], [], []
    with torch.inference_mode():
        for number, entry in enumerate(track(entries, description="log-mel cache")):
            frames = split_frames(load_audio(Path(data) / entry["path"]))
            labels = frame_targets(entry, len(frames))
            examples.append(log_mel.examples(torch.from_numpy(frames[: len(labels)]))[:, 0]
                            .numpy().astype(np.float16))
            targets.append(labels)
            clip += [number] * len(labels)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(array_path, np.concatenate(examples))
    targets = np.concatenate(targets)
    index_path.write_text(json.dumps({"paths": paths, "targets": targets.astype(int).tolist(),
                                      "clip": clip}))
    return np.load(array_path, mmap_mode="r"), targets, np.asarray(clip, np.int64)


# ---- the network while it trains ---------------------------------------------------------------

def with_batch_norm(net: VGGishTrunk) -> VGGishTrunk:
    """Each convolution followed by BatchNorm (same layer indices, so the blocks stay where
    `block_outputs` looks for them)."""
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.Conv2d):
            net.features[i] = nn.Sequential(layer, nn.BatchNorm2d(layer.out_channels))
    return net


def fold_batch_norm(net: VGGishTrunk) -> VGGishTrunk:
    """BatchNorm (running statistics) folded into the preceding convolution's weight and bias:
    torchvggish's plain layer stack again, same outputs."""
    for i, layer in enumerate(net.features):
        if isinstance(layer, nn.Sequential):
            conv, norm = layer.eval()
            net.features[i] = fuse_conv_bn_eval(conv, norm)
    return net


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


@torch.no_grad()
def keep_function(model: "Trainee", examples: torch.Tensor) -> None:
    """Set each BatchNorm to undo its own normalisation on `examples` (scale = the batch's
    standard deviation, shift = its mean, running statistics the same), so a trained trunk
    computes what it computed before BatchNorm was inserted: fresh BatchNorm would rescale every
    layer, and continued training first spent ~1,000 steps winning back what it had."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_parameters()  # running statistics (0, 1), scale 1, shift 0
    inputs = {}
    hooks = [n.register_forward_pre_hook(lambda m, args: inputs.__setitem__(m, args[0].float()))
             for n in norms]
    model.eval()  # so every BatchNorm passes its input through
    model(examples)
    model.train()
    for hook in hooks:
        hook.remove()
    for norm in norms:
        var, mean = torch.var_mean(inputs[norm], dim=(0, 2, 3), correction=0)
        norm.weight.copy_((var + norm.eps).sqrt())
        norm.bias.copy_(mean)
        norm.running_var.copy_(var)
        norm.running_mean.copy_(mean)


class Trainee(nn.Module):
    """The trunk with BatchNorm, its pooled head and the probe: log-mel (B, 96, 64) -> logits."""

    def __init__(self, net: VGGishTrunk):
        super().__init__()
        self.net = with_batch_norm(net)
        self.probe = nn.Linear(net.head[-1].out_features, NUM_CLASSES + NUM_GROUPS)
        self.to(memory_format=torch.channels_last)  # weights too: oneDNN's fast layout

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = examples[:, None].contiguous(memory_format=torch.channels_last)
        return self.probe(self.net(x))


# ---- augmentation on the log-mel ---------------------------------------------------------------

def augmented(examples: torch.Tensor, targets: torch.Tensor, generator: torch.Generator):
    """Gain (-12..+6 dB), a second mixed in for half the examples (-12..0 dB, targets the union
    of both), two time masks (<= 12 frames) and two frequency masks (<= 8 bands)."""
    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=generator)

    b = len(examples)
    magnitude = (examples.exp() - LOG_OFFSET).clamp_min(0)
    partner = torch.randperm(b, generator=generator)
    mixed = torch.rand(b, generator=generator) < 0.5
    partner_gain = torch.where(mixed, 10 ** (uniform(-12, 0, b) / 20), torch.zeros(b))
    magnitude = magnitude + partner_gain[:, None, None] * magnitude[partner]
    targets = torch.where(mixed[:, None], union(targets, targets[partner]), targets)
    gain = 10 ** (uniform(-12, 6, b) / 20)
    examples = torch.log(magnitude * gain[:, None, None] + LOG_OFFSET)
    for axis, size, longest in ((1, EXAMPLE_FRAMES, 12), (2, N_MELS, 8)):
        for _ in range(2):
            width = (torch.rand(b, generator=generator) * (longest + 1)).long()
            start = (torch.rand(b, generator=generator) * (size - width + 1)).long()
            position = torch.arange(size)
            mask = (position >= start[:, None]) & (position < (start + width)[:, None])
            examples = examples.masked_fill(mask[:, :, None] if axis == 1 else mask[:, None, :],
                                            SILENT)
    return examples, targets


# ---- training ----------------------------------------------------------------------------------

def evaluated(model: Trainee, forward, examples, device, autocast: bool) -> torch.Tensor:
    """`forward` (the model or a part of it) over log-mel `examples` (N, 96, 64), EVAL_BATCH at
    a time with the model in eval mode -> float32 outputs on the CPU."""
    model.eval()
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
        for start in range(0, len(examples), EVAL_BATCH):
            batch = torch.from_numpy(np.asarray(examples[start:start + EVAL_BATCH], np.float32))
            outputs.append(forward(batch.to(device)).float().cpu())
    model.train()
    return torch.cat(outputs)


def validation_f1(model: Trainee, examples, targets, device, autocast: bool) -> float:
    logits = evaluated(model, model, examples, device, autocast)
    predictions = (logits.sigmoid().numpy() >= 0.5).astype(np.float32)
    classes = targets[:, :NUM_CLASSES]
    return float(f1_scores(classes, predictions[:, :NUM_CLASSES], classes != UNKNOWN)["f1_micro"])


def fit_probe(model: Trainee, examples, targets, device, autocast: bool) -> None:
    """Fit the fresh probe on the trunk's frozen outputs, so that continued training starts with
    a classifier that agrees with the trunk rather than sending random gradients into it."""
    def instances(batch):
        return model.net(batch[:, None].contiguous(memory_format=torch.channels_last))

    features = evaluated(model, instances, examples, device, autocast).to(device)
    targets = torch.as_tensor(targets, device=device)
    optimizer = torch.optim.Adam(model.probe.parameters(), lr=PROBE_LR)
    for _ in range(PROBE_STEPS):
        loss = known_bce(model.probe(features), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def state_path(data) -> Path:
    return cache_path(data, STATE).with_suffix(".pt")


def save_state(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def seconds_per_step(device, repeats: int = 2) -> float:
    """Measured seconds of one training step (BATCH examples, forward and backward) on
    `device`, after one warm-up step: sizes a schedule to a time budget."""
    device = torch.device(device)
    model = Trainee(VGGishTrunk()).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters())
    examples = torch.randn(BATCH, EXAMPLE_FRAMES, N_MELS, device=device)
    targets = torch.zeros(BATCH, NUM_CLASSES + NUM_GROUPS, device=device)
    for repeat in range(repeats + 1):
        if repeat == 1:
            started = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=native_bf16(device)):
            loss = known_bce(model(examples).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / repeats


def train_frontend(data, out, seed: int = 0, epochs: float = 5.0, minutes: float | None = None,
                   resume: bool = False, init=None, max_clips: int | None = None,
                   lr: float = 2e-3, device=None, steps: int | None = None) -> dict:
    """Train (or continue training) the frontend; returns a summary with `done` False when the
    time budget ran out before the schedule ended (resume later). `steps` sets the schedule's
    length instead of `epochs`."""
    run = FrontendRun(data, seed, epochs, init, max_clips, lr, device, steps)
    if resume:
        run.restore()
    run.train(minutes)
    summary = run.summary()
    if run.step < run.total_steps:
        return {"done": False, **summary}
    return {"done": True, **run.save(out, summary), **summary}


class FrontendRun:
    """One frontend training run: its data (the log-mel cache, the train and validation
    seconds), the network, optimizer, one-cycle schedule and augmentation generator, the loop
    state (step, best validation F1 and its weights, training seconds) and its checkpoint."""

    def __init__(self, data, seed: int, epochs: float, init, max_clips: int | None, lr: float,
                 device, steps: int | None):
        self.data, self.seed, self.epochs, self.init, self.lr = data, seed, epochs, init, lr
        self.device = torch.device(device or default_device())
        self.autocast = native_bf16(self.device)
        self.entries = read_manifest(data)[:max_clips]
        self.examples, self.targets, self.clip = logmel_cache(data, self.entries)
        self.train_index, val = split_seconds(data, self.entries, self.clip)  # rows of the cache
        self.val_seconds = len(val)
        self.val_examples, self.val_targets = np.asarray(self.examples[val]), self.targets[val]

        torch.manual_seed(seed)
        self.model = Trainee(initial_frontend(init, seed).net).to(self.device).train()
        if init is not None:  # (a resumed run then loads its own state over it)
            self.adopt_trunk()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4,
                                           fused=True)
        self.total_steps = steps or max(1, int(epochs * len(self.train_index) / BATCH))
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=lr, total_steps=self.total_steps, pct_start=0.1)
        self.generator = torch.Generator().manual_seed(seed)
        self.checkpoint_path = state_path(data)
        self.step, self.best, self.best_weights, self.spent = 0, -1.0, None, 0.0

    def adopt_trunk(self) -> None:
        """A trunk that continues training keeps its function (keep_function) and starts with a
        probe fitted to it (fit_probe), on a seeded sample of the train seconds."""
        chosen = np.random.default_rng(self.seed).choice(
            self.train_index, min(PROBE_EXAMPLES, len(self.train_index)), replace=False)
        keep_function(self.model, torch.from_numpy(np.asarray(
            self.examples[np.sort(chosen[:KEEP_FUNCTION_EXAMPLES])], np.float32)).to(self.device))
        chosen.sort()  # memory-mapped rows read in order
        fit_probe(self.model, self.examples[chosen], self.targets[chosen], self.device,
                  self.autocast)

    def restore(self) -> None:
        """Continue from the checkpoint of this data set's run, when there is one."""
        if not self.checkpoint_path.is_file():
            return
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if state["total_steps"] != self.total_steps or state["seed"] != self.seed:
            raise ValueError(f"{self.checkpoint_path} belongs to another run "
                             "(epochs/seed/clips differ)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.step, self.best, self.best_weights, self.spent = (
            state["step"], state["best"], state["best_weights"], state["spent_s"])

    def checkpoint(self) -> None:
        save_state(self.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "generator": self.generator.get_state(),
            "step": self.step, "best": self.best, "best_weights": self.best_weights,
            "spent_s": self.spent, "total_steps": self.total_steps, "seed": self.seed})

    def train_step(self) -> float:
        """One step on an augmented batch of random train seconds -> its loss."""
        chosen = np.sort(self.train_index[
            torch.randint(len(self.train_index), (BATCH,), generator=self.generator).numpy()])
        batch, targets = augmented(torch.from_numpy(np.asarray(self.examples[chosen], np.float32)),
                                   torch.from_numpy(self.targets[chosen]), self.generator)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            logits = self.model(batch.to(self.device))
        loss = known_bce(logits.float(), targets.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.step += 1
        return loss.item()

    def validate(self) -> float:
        """Validation F1 of the weights now; the best weights kept (on a tie the later, longer
        trained ones); then a checkpoint."""
        score = validation_f1(self.model, self.val_examples, self.val_targets, self.device,
                              self.autocast)
        if score >= self.best:
            self.best = score
            self.best_weights = {k: v.detach().cpu().clone()
                                 for k, v in self.model.state_dict().items()}
        self.checkpoint()
        return score

    def train(self, minutes: float | None) -> None:
        """Train until the schedule ends or `minutes` have passed (at least one step per
        invocation, however short), validating every VALIDATE_EVERY_S and at the end."""
        started = time.monotonic()
        deadline = started + 60 * minutes if minutes else float("inf")
        last_check, first_step, loss = started, self.step, float("nan")
        with progress_bar() as bar:
            task = bar.add_task("training the frontend", total=self.total_steps,
                                completed=self.step)
            while self.step < self.total_steps:
                step_loss = self.train_step()
                loss = step_loss if self.step == first_step + 1 else \
                    0.98 * loss + 0.02 * step_loss  # smoothed, for the display
                now = time.monotonic()
                out_of_time = now >= deadline
                if (now - last_check >= VALIDATE_EVERY_S or self.step == self.total_steps
                        or out_of_time):
                    self.spent += now - last_check
                    last_check = now
                    score = self.validate()
                    if log.isEnabledFor(logging.INFO):  # an info line: -q hides it
                        bar.console.print(  # the bar's console: above the live bar, not through it
                            f"step {self.step}/{self.total_steps}  loss {loss:.3f}  val F1 "
                            f"{score:.3f} (best {self.best:.3f})  {self.spent / 60:.1f} min")
                rate = BATCH * (self.step - first_step) / max(now - started, 1e-9)
                bar.update(task, completed=self.step, description=(
                    f"training the frontend  loss {loss:.3f}  {rate:.0f} ex/s  "
                    f"val F1 {self.best:.3f}"))
                if out_of_time:
                    break

    def summary(self) -> dict:
        clips = np.unique(self.clip[self.train_index])
        return {"clips": int(len(clips)), "seconds": int(len(self.train_index)),
                "val_seconds": self.val_seconds, "seed": self.seed, "epochs": self.epochs,
                "lr": self.lr, "steps": self.step, "total_steps": self.total_steps,
                "batch": BATCH, "precision": "bf16 autocast" if self.autocast else "fp32",
                "device": str(self.device), "train_seconds": round(self.spent, 1),
                "val_f1_micro_per_second": self.best,
                "init": ([str(p) for p in self.init] if self.init
                         else f"seeded random ({self.seed})"),
                "soundfonts": sorted({sf for i in clips
                                      for sf in self.entries[i].get("soundfonts", [])})}

    def save(self, out, summary: dict) -> dict:
        """The best weights, BatchNorm folded, saved as the frontend file `out` (fp16, with
        `summary`); the data set's embedding cache rebuilt with it -> {fingerprint, file}."""
        self.model.load_state_dict(self.best_weights)
        frontend = Frontend(TRUNK)
        frontend.net = fold_batch_norm(self.model.net.cpu().float()).eval()
        fingerprint = save_frontend(frontend, out, summary)
        cached_instances(self.data, [entry["path"] for entry in self.entries], "embedding",
                         frontend_file=out, rebuild=True)
        return {"fingerprint": fingerprint, "file": str(out)}


def split_seconds(data, entries: list[dict], clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of the cached seconds, by their clips' split; val thinned to a fixed,
    evenly spaced sample of VAL_SECONDS."""
    split_of_clip = np.array([entry_split(entry) for entry in entries])
    train = np.flatnonzero(split_of_clip[clip] == "train")
    val = np.flatnonzero(split_of_clip[clip] == "val")
    if not len(train) or not len(val):
        raise ValueError(f"{data}: too few clips for a train and a validation split")
    return train, val[np.linspace(0, len(val) - 1, min(VAL_SECONDS, len(val))).astype(int)]


def run(args) -> int:
    if args.init and len(args.init) not in (1, 2):
        raise FrontendError("--init takes one frontend file, or AudioSet's VGGISH_PTH PCA_PTH")
    result = train_frontend(args.data, Path(args.out), args.seed, args.epochs, args.minutes,
                            args.resume, args.init, args.max_clips, args.lr)
    if not result["done"]:
        log.info("stopped at step %d of %d (per-second val F1 micro %.3f); continue with --resume",
                 result["steps"], result["total_steps"], result["val_f1_micro_per_second"])
        return 0
    log.info("wrote %s (fingerprint %s); per-second val F1 micro %.3f", result["file"],
             result["fingerprint"], result["val_f1_micro_per_second"])
    return 0


def register(commands) -> None:
    parser = commands.add_parser("frontend", help="train the vggish-trunk frontend end to end",
                                 description=__doc__)
    parser.add_argument("--data", required=True, help="synthetic data set (mmgat-train synth)")
    parser.add_argument("--out", required=True, help="frontend file to write (.npz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=5.0,
                        help="length of the schedule, in passes over the train seconds")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--minutes", type=float,
                        help="stop after this long (checkpointed; continue with --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run checkpointed in the data set's cache folder")
    parser.add_argument("--init", nargs="+", metavar="FILE",
                        help="start from a frontend file, or AudioSet's two VGGish release files")
    parser.add_argument("--max-clips", type=int, help="use only the first N clips")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=run)

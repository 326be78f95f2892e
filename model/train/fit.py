"""`mmgat-train fit`: train MMGAT on cached instances.

Writes CKPT_DIR/model.pt (the epoch with the best validation F1 micro), CKPT_DIR/last.pt (the
latest epoch plus optimizer, loss centres, loop state and RNG states, for --resume) and
CKPT_DIR/metrics.json. Both .pt files are `mmgat.model.checkpoint` checkpoints (torch.save of
tensors and plain containers, `weights_only` loadable), read back by `load_checkpoint`:

    config            MMGATConfig.to_dict() (config["extra"]["input"]: "embedding" | "mel")
    text_embeddings   float32 tensor (C, text_dim), or None without label embeddings
    state_dict        MMGAT state_dict (float32, CPU)
    classes, groups   the class / onset-group names, in output order
    thresholds        NUM_CLASSES floats tuned on validation (max per-class F1), for the clip
                      probabilities (the max over the clip's windows)
    second_thresholds NUM_CLASSES floats tuned the same way on the per-second node outputs
                      (the clip thresholds where the data has no per-second labels)
    group_thresholds  NUM_GROUPS floats tuned on validation (without the auxiliary head: for
                      group probability = max of its member classes' probabilities)
    text_encoder      the text encoder's name, or None
    frontend          {"name", "fingerprint", "file"} of what produced the instances
                      (OpenMIC: {"vggish-audioset", None, None}; mel input: "logmel-stats")
    window            W: graphs of 1..W seconds in training; evaluation windows of W
    hop               1.0 (1 s instances back to back)
    training          data summary (data, clips, seconds, soundfonts, splits), seed, epochs,
                      best_epoch, seconds_elapsed, device, torch, options
    metrics           validation metrics of that epoch (f1_micro, f1_macro, map, per class...)
last.pt adds: options, loss_state, optimizer, state (epoch, best_f1, best_epoch, bad_epochs,
history, elapsed), rng.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress, TextColumn

from mmgat.model.checkpoint import load_checkpoint, save_checkpoint
from mmgat.model.frontend import default_device
from mmgat.model.graph import SIMILARITIES
from mmgat.model.labels import CLASSES, GROUPS
from mmgat.model.mmgat import MMGAT, MMGATConfig
from mmgat.model.window import check_window
from mmgat.model.train.data import (INPUTS, ClipSet, load_data, masked_group_targets,
                                    training_batches)
from mmgat.model.train.predict import predict_clips, torch_scorer
from mmgat.model.train.losses import LossSwitches, MMGATLoss
from mmgat.model.train.metrics import evaluate_scores, tune_thresholds
from mmgat.model.train.text import label_embeddings
from mmgat.model.train.progress import progress_bar

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
LAST_FILE = "last.pt"
METRICS_FILE = "metrics.json"


def save_atomically(path: Path, model: MMGAT, **fields_) -> None:
    """A crash mid-write must not destroy the previous checkpoint: write aside, then rename."""
    save_checkpoint(path.with_suffix(".tmp.pt"), model, **fields_).replace(path)


@dataclass
class FitOptions:
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    window: int = 10  # crops of 1..window seconds; evaluation windows of `window`
    patience: int = 10  # epochs without a better val F1 micro before stopping
    frontend: str | None = None  # frontend file that builds the cache (default: the cache's own)
    input: str = "embedding"  # "embedding" (frontend instances) | "mel" (log-mel statistics)
    single_scale: bool = False
    label_embeddings: bool = True
    auxiliary: bool = True
    center: bool = True
    node_loss: bool = True  # per-second labels supervise each node (see losses.py)
    second_readout: bool = False  # per-second outputs from a readout of their own (mmgat.py)
    similarity: str = MMGATConfig.similarity
    neighbours: int = MMGATConfig.neighbours
    heads: int = MMGATConfig.heads
    clip_weights: str | None = None  # local open_clip weights for the label text
    label_loss: bool = True  # Loss_label (off when continuing a model whose decoder is not shipped)
    init: str | None = None  # start from this checkpoint's model (its configuration wins)
    minutes: float | None = None  # stop after the epoch that reaches this much training time
    rebuild_cache: bool = False
    resume: bool = False
    device: str | None = None
    progress: bool = True

    @classmethod
    def from_kwargs(cls, values: dict) -> "FitOptions":
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown fit options: {', '.join(unknown)}")
        options = cls(**values)
        check_window(options.window)
        if options.epochs < 1 or options.batch_size < 1:
            raise ValueError("epochs and batch size must be >= 1")
        return options


# Options a resumed run takes from the command line; everything else comes from last.pt.
RESUMABLE = ("epochs", "patience", "device", "progress", "resume", "rebuild_cache", "minutes")


def model_config(options: FitOptions, input_dim: int, text_dim: int | None) -> MMGATConfig:
    return MMGATConfig(input_dim=input_dim, scales=(1,) if options.single_scale else (1, 2, 3),
                       label_embeddings=options.label_embeddings, auxiliary=options.auxiliary,
                       second_readout=options.second_readout,
                       similarity=options.similarity, neighbours=options.neighbours,
                       heads=options.heads,
                       text_dim=text_dim or MMGATConfig.text_dim, extra={"input": options.input})


def validate(model, clips, window, device) -> tuple[dict, dict]:
    """-> (val metrics at per-class thresholds tuned on val, the tuned thresholds: clip-level
    `thresholds`, `group_thresholds`, and `second_thresholds` for the per-second node outputs;
    those are the clip thresholds where the data has no per-second labels)."""
    model.eval()
    probs, group_probs, second_probs = predict_clips(torch_scorer(model), clips, window,
                                                     model.config, device)
    thresholds = tune_thresholds(clips.targets, probs, clips.label_mask)
    groups, group_mask = masked_group_targets(clips.targets, clips.label_mask)
    group_thresholds = tune_thresholds(groups, group_probs, group_mask)
    metrics = evaluate_scores(clips.targets, probs, thresholds, clips.label_mask)
    metrics["groups"] = evaluate_scores(groups, group_probs, group_thresholds, group_mask)
    second_thresholds = thresholds
    if clips.second_targets is not None:
        second_targets = np.concatenate(clips.second_targets)
        second_mask = np.concatenate(clips.all_second_masks())
        second_probs = np.concatenate(second_probs)
        second_thresholds = tune_thresholds(second_targets, second_probs, second_mask)
        metrics["per_second"] = evaluate_scores(second_targets, second_probs, second_thresholds,
                                                second_mask)
    return metrics, {"thresholds": [float(t) for t in thresholds],
                     "group_thresholds": [float(t) for t in group_thresholds],
                     "second_thresholds": [float(t) for t in second_thresholds]}


def train_epoch(model, loss_fn, optimizer, clips, options, device, rng, progress) -> dict:
    model.train()
    totals, steps = {}, 0
    task = progress.add_task("  batches", total=-(-len(clips) // options.batch_size), status="")
    for batch in training_batches(clips, options.batch_size, options.window, model.config,
                                  device, rng):
        out = model(batch["nodes"], batch["weights"], batch["scale_masks"], batch["node_mask"])
        loss, parts = loss_fn(out, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value
        steps += 1
        progress.advance(task)
    progress.remove_task(task)
    return {name: value / max(steps, 1) for name, value in totals.items()}


def rng_state(rng: np.random.Generator) -> dict:
    state = {"numpy": json.dumps(rng.bit_generator.state), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(data, out, clips: ClipSet | None = None, text: tuple | None = None, **kwargs) -> dict:
    """Train MMGAT on `data` (synthetic DIR or OpenMIC .npz) into checkpoint dir `out`.

    kwargs are FitOptions. `clips` reuses an already loaded data set; `text` = (embeddings
    (C, D), encoder name) stands in for the text encoder. Returns the metrics.json summary."""
    options, out = FitOptions.from_kwargs(kwargs), Path(out)
    last = load_checkpoint(out / LAST_FILE)[1] if options.resume else None
    if last is not None:
        options = resumed_options(options, last)
    device = torch.device(options.device) if options.device else default_device()
    if clips is None:
        clips = load_data(data, options.input, options.frontend, options.rebuild_cache, device)
    train, val = clips.subset("train"), clips.subset("val")
    if not len(train) or not len(val):
        raise ValueError(f"{data}: {len(train)} training and {len(val)} validation clips; "
                         "need both")
    run = TrainingRun(str(data), clips, options, text, device)
    if last is not None:
        run.restore(last)
    columns = (*Progress.get_default_columns(), TextColumn("{task.fields[status]}"))
    with progress_bar(*columns, disable=not options.progress) as progress:
        epochs = progress.add_task(  # bounded by time: no epoch count to count down
            "epochs", total=options.epochs if options.minutes is None else None,
            completed=run.state["epoch"], status="")
        while (run.state["epoch"] < options.epochs and run.state["bad_epochs"] < options.patience
               and not run.out_of_time()):
            status = run.epoch(train, val, out, progress)
            progress.update(epochs, advance=1, status=status)
    best = load_checkpoint(out / MODEL_FILE)[1]
    summary = {"checkpoint": str(out / MODEL_FILE), "best_epoch": run.state["best_epoch"],
               "epochs": run.state["epoch"], "val": best["metrics"], "history": run.state["history"],
               "training": best["training"]}
    (out / METRICS_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def resumed_options(options: FitOptions, last: dict) -> FitOptions:
    """A resumed run's options: those of last.pt, but RESUMABLE ones from the command line."""
    known = {f.name for f in fields(FitOptions)}  # older runs may record retired options
    return FitOptions(**{**{k: v for k, v in last["options"].items() if k in known},
                         **{k: getattr(options, k) for k in RESUMABLE}})


class TrainingRun:
    """One fit's model, loss, optimizer, RNG and loop state, and its checkpoints."""

    def __init__(self, data: str, clips: ClipSet, options: FitOptions, text: tuple | None, device):
        self.data, self.clips, self.options, self.device = data, clips, options, device
        embeddings, self.encoder = None, None
        if options.init:  # continue a model: its configuration and label text
            self.model, checkpoint = load_checkpoint(options.init)
            self.encoder = checkpoint.get("text_encoder")
        elif options.label_embeddings:
            embeddings, self.encoder = text or label_embeddings(options.clip_weights)
            embeddings = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        torch.manual_seed(options.seed)
        self.rng = np.random.Generator(np.random.PCG64(options.seed))
        if not options.init:
            self.model = MMGAT(model_config(options, clips.input_dim, None if embeddings is None
                                            else embeddings.shape[1]), embeddings)
        config = self.model.to(device).config
        switches = LossSwitches(center=options.center, node=options.node_loss,
                                label=options.label_loss)
        self.loss_fn = MMGATLoss(config.hidden, switches).to(device)
        self.optimizer = torch.optim.AdamW([*self.model.parameters(), *self.loss_fn.parameters()],
                                           lr=options.lr, weight_decay=options.weight_decay)
        self.state = {"epoch": 0, "best_f1": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": [],
                      "elapsed": 0.0}

    def restore(self, last: dict) -> None:
        self.model.load_state_dict(last["state_dict"])
        self.loss_fn.load_state_dict(last["loss_state"])
        self.optimizer.load_state_dict(last["optimizer"])
        self.state = last["state"]
        restore_rng(self.rng, last["rng"])

    def out_of_time(self) -> bool:
        minutes = self.options.minutes
        return minutes is not None and self.state["elapsed"] >= 60 * minutes

    def epoch(self, train: ClipSet, val: ClipSet, out: Path, progress) -> str:
        """Train one epoch, validate, write last.pt (and model.pt when validation F1 rose);
        returns a status line."""
        state, started = self.state, time.perf_counter()
        losses = train_epoch(self.model, self.loss_fn, self.optimizer, train, self.options, self.device,
                             self.rng, progress)
        metrics, thresholds = validate(self.model, val, self.options.window, self.device)
        state["epoch"] += 1
        state["elapsed"] += time.perf_counter() - started
        state["history"].append({"epoch": state["epoch"], "loss": losses,
                                 **{k: metrics[k] for k in ("f1_micro", "f1_macro", "map")}})
        if metrics["f1_micro"] > state["best_f1"]:
            state.update(best_f1=metrics["f1_micro"], best_epoch=state["epoch"], bad_epochs=0)
            save_atomically(out / MODEL_FILE, self.model, **self.described(metrics, thresholds))
        else:
            state["bad_epochs"] += 1
        save_atomically(out / LAST_FILE, self.model, **self.described(metrics, thresholds),
                        options=asdict(self.options), loss_state=self.loss_fn.state_dict(),
                        optimizer=self.optimizer.state_dict(), state=state, rng=rng_state(self.rng))
        status = (f"loss {sum(losses.values()):.3f}  val F1 micro {metrics['f1_micro']:.3f}  "
                  f"best {state['best_f1']:.3f} (epoch {state['best_epoch']})  "
                  f"{len(train) / (time.perf_counter() - started):.0f} ex/s")
        if self.options.minutes is not None:
            left = max(0.0, 60 * self.options.minutes - state["elapsed"])
            status += f"  {left // 60:.0f}:{left % 60:02.0f} left"
        return status

    def described(self, metrics: dict, thresholds: dict) -> dict:
        """Everything a checkpoint holds besides the model itself."""
        options, state = self.options, self.state
        return {
            "classes": list(CLASSES), "groups": list(GROUPS), **thresholds,
            "text_encoder": self.encoder, "frontend": dict(self.clips.frontend),
            "window": options.window, "hop": 1.0,
            "training": {"data": self.data, **self.clips.summary(), "seed": options.seed,
                         "epochs": state["epoch"], "best_epoch": state["best_epoch"],
                         "seconds_elapsed": round(state["elapsed"], 1), "device": str(self.device),
                         "torch": str(torch.__version__), "options": asdict(options)},
            "metrics": metrics,
        }


def run(args) -> int:
    options = {f.name: getattr(args, f.name) for f in fields(FitOptions) if hasattr(args, f.name)}
    summary = fit(args.data, args.out, **options)
    val = summary["val"]
    log.info("best epoch %d/%d: val f1_micro %.3f f1_macro %.3f mAP %.3f -> %s",
             summary["best_epoch"], summary["epochs"], val["f1_micro"], val["f1_macro"], val["map"],
             summary["checkpoint"])
    return 0


def register(commands) -> None:
    parser = commands.add_parser("fit", help="train MMGAT on cached instances",
                                 description=fit.__doc__)
    parser.add_argument("--data", required=True,
                        help="synthetic DIR (manifest.jsonl) or OpenMIC .npz")
    parser.add_argument("--out", required=True, help="checkpoint directory")
    parser.add_argument("--frontend", help="frontend file for the instance cache")
    parser.add_argument("--epochs", type=int, default=FitOptions.epochs)
    parser.add_argument("--batch-size", type=int, default=FitOptions.batch_size)
    parser.add_argument("--lr", type=float, default=FitOptions.lr)
    parser.add_argument("--weight-decay", type=float, default=FitOptions.weight_decay)
    parser.add_argument("--seed", type=int, default=FitOptions.seed)
    parser.add_argument("--window", type=int, default=FitOptions.window)
    parser.add_argument("--patience", type=int, default=FitOptions.patience)
    parser.add_argument("--clip-weights", help="local open_clip weights for the label text")
    parser.add_argument("--init", metavar="CKPT",
                        help="continue this checkpoint's model (its configuration wins)")
    parser.add_argument("--minutes", type=float,
                        help="stop after the epoch that reaches this much training time")
    parser.add_argument("--rebuild-cache", action="store_true")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; "
                        "1 avoids oversubscription on a busy machine)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--single-scale", action="store_true", help="only the 1-hop scale")
    parser.add_argument("--no-label-embeddings", dest="label_embeddings", action="store_false",
                        help="graph only: a plain class head, no label semantic embeddings")
    parser.add_argument("--no-auxiliary", dest="auxiliary", action="store_false",
                        help="principal only: no onset-group head")
    parser.add_argument("--no-center", dest="center", action="store_false", help="no center loss")
    parser.add_argument("--no-label-loss", dest="label_loss", action="store_false",
                        help="no Loss_label (label embeddings kept)")
    parser.add_argument("--no-node-loss", dest="node_loss", action="store_false",
                        help="the paper's loss only: no per-second loss on the nodes")
    parser.add_argument("--second-readout", action="store_true",
                        help="per-second outputs from a readout apart from the pooled clip one")
    parser.add_argument("--similarity", choices=SIMILARITIES, default=FitOptions.similarity)
    parser.add_argument("--neighbours", type=int, default=FitOptions.neighbours)
    parser.add_argument("--heads", type=int, default=FitOptions.heads,
                        help="attention heads per scale (hidden size must divide by it)")
    parser.add_argument("--input", choices=INPUTS, default="embedding",
                        help="frontend embeddings, or per-second log-mel statistics (ablation)")
    parser.set_defaults(func=run)

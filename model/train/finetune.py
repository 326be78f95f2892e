"""`mmgat-train finetune --data DATA --out DIR [--minutes M] [--resume] [--replay SYNTH]`:
continue the shipped default (its `vggish-trunk` frontend and its MMGAT) on DATA.

DIR/data is the set trained on: DATA's train and val clips plus, with `--replay`, train and val
clips of a synthetic set (`mmgat-train synth`, the training SoundFonts), about REPLAY_SHARE of
its seconds, so that every batch replays synthetic clips and the classes DATA lacks are not
forgotten. (Links, no audio copied; caches in DIR/data/.mmgat-cache.) Without --replay only
DATA is trained on, and the classes it lacks drift; a warning says so.

1. The frontend: where DATA has per-second labels (an OpenMIC-IRMAS build, a synthetic set),
   the trunk continues on them (`mmgat-train frontend` from the shipped trunk, bf16 autocast
   and channels-last where the CPU has native bf16, fp16 log-mel cache) for FRONTEND_SHARE of
   the time, its schedule sized by a measured training step; then the instances are recomputed
   with it. Recordings labelled per file (`mmgat-train import`) say nothing about single
   seconds, so there the trunk stays as shipped and MMGAT gets all the time.
2. MMGAT continues from the shipped model (`mmgat-train fit --init`), clip labels through its
   multi-instance pooling, for the rest of the time, at FINETUNE_LR; the epoch with the best
   validation F1 micro is kept, thresholds retuned on validation. Loss_label stays off: its
   decoder is not shipped, and a fresh one would pull the label encoder.
3. DIR/mmgat.onnx is exported with its frontend beside it, for `mmgat-live --model` and
   `mmgat-tag --model`.

Progress shows examples/s, validation F1 and time left; the frontend checkpoints every few
minutes and MMGAT every epoch (DIR/finetune.json says which stage a run is in), so a run stopped
with Ctrl-C continues with --resume.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from mmgat.model.frontend import DEFAULT_FRONTEND, default_device
from mmgat.model.train.data import MANIFEST, entry_split, read_manifest, second_targets_of
from mmgat.model.train.fit import MODEL_FILE, fit
from mmgat.model.train.shipped import SHIPPED_MODEL, shipped_checkpoint
from mmgat.model.train.train_frontend import seconds_per_step, train_frontend

log = logging.getLogger(__name__)

REPLAY_SHARE = 0.5  # of the training seconds, replayed synthetic clips
FRONTEND_SHARE = 0.5  # of the time, for the frontend (where DATA has per-second labels)
FRONTEND_LR = 5e-4  # peak: a quarter of training from scratch
FRONTEND_STEP_MARGIN = 0.8  # of the steps a measured step time fits: data loading, validation
FINETUNE_LR = 3e-4
PATIENCE = 20  # epochs without a better validation F1 micro
STATE = "finetune.json"
MIX = "data"
BASE = "base.pt"
CHECKPOINTS = "ckpt"
MODEL = "mmgat.onnx"


def mixed_entries(data: Path, replay: Path | None, seed: int) -> list[dict]:
    """DATA's train and val entries, plus replayed ones, paths through the mix's links."""
    own = [{**e, "path": f"data/{e['path']}", "split": entry_split(e)} for e in read_manifest(data)]
    own = [e for e in own if e["split"] != "test"]
    if replay is None:
        log.warning("no --replay set: only DATA is trained on, and the classes it lacks may be "
                    "forgotten (render one with mmgat-train synth)")
        return own
    pool = [{**e, "path": f"replay/{e['path']}", "split": entry_split(e)}
            for e in read_manifest(replay)]
    rng, chosen = np.random.default_rng(seed), []
    for split in ("train", "val"):
        wanted = REPLAY_SHARE / (1 - REPLAY_SHARE) * sum(e["duration"] for e in own
                                                          if e["split"] == split)
        candidates = [pool[i] for i in rng.permutation(len(pool)) if pool[i]["split"] == split]
        seconds = 0
        for entry in candidates:
            if seconds >= wanted:
                break
            chosen.append(entry)
            seconds += entry["duration"]
        if seconds < wanted:
            log.warning("%s holds %d %s seconds, fewer than the %d a %.0f %% replay share wants",
                        replay, seconds, split, wanted, 100 * REPLAY_SHARE)
    return own + chosen


def write_mix(out: Path, data: Path, replay: Path | None, seed: int) -> Path:
    mix = out / MIX
    mix.mkdir(parents=True, exist_ok=True)
    for name, target in (("data", data), ("replay", replay)):
        if target is not None and not (mix / name).exists():
            os.symlink(os.path.relpath(target.resolve(), mix.resolve()), mix / name)
    entries = mixed_entries(data, replay, seed)
    (mix / MANIFEST).write_text("".join(json.dumps(e) + "\n" for e in entries))
    return mix


def has_second_labels(data: Path) -> bool:
    """Whether some second of DATA's training clips has a known positive label."""
    for entry in read_manifest(data):
        if entry_split(entry) == "train":
            seconds, known = second_targets_of(entry)
            if (seconds * known).any():
                return True
    return False


def read_state(out: Path, resume: bool) -> dict | None:
    path = out / STATE
    if resume:
        if not path.is_file():
            raise ValueError(f"nothing to resume in {out} (no {STATE})")
        return json.loads(path.read_text())
    if path.exists():
        raise ValueError(f"{out} holds a fine-tuning run; continue it with --resume or use a "
                         "new folder")
    return None


def write_state(out: Path, state: dict) -> None:
    (out / (STATE + ".tmp")).write_text(json.dumps(state, indent=2))
    (out / (STATE + ".tmp")).replace(out / STATE)


def finetune(data, out, minutes: float = 20.0, resume: bool = False, replay=None, seed: int = 0,
             base=SHIPPED_MODEL, device=None, frontend_steps: int | None = None,
             progress: bool = True) -> dict:
    """Fine-tune artifact `base` (default: the shipped one) on `data` into `out`; returns a
    summary. `frontend_steps` fixes the frontend's schedule (default: sized to the time)."""
    data, out = Path(data), Path(out)
    replay = None if replay is None else Path(replay)
    for folder in (data, replay):
        if folder is not None and not (folder / MANIFEST).is_file():
            raise OSError(f"{folder} is not a data set (no {MANIFEST})")
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}")
    device = str(device or default_device())
    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out, resume)
    if state is None:
        write_mix(out, data, replay, seed)
        frontend_minutes = minutes * FRONTEND_SHARE if has_second_labels(data) else 0.0
        if frontend_minutes and frontend_steps is None:
            frontend_steps = max(1, int(FRONTEND_STEP_MARGIN * 60 * frontend_minutes
                                        / seconds_per_step(device)))
        state = {"data": str(data), "replay": None if replay is None else str(replay),
                 "minutes": minutes, "seed": seed, "base": str(base),
                 "stage": "frontend" if frontend_minutes else "mmgat",
                 "frontend_steps": frontend_steps if frontend_minutes else 0,
                 "frontend_seconds": 0.0}
        shipped_checkpoint(out / BASE, base, seed)
        write_state(out, state)
    mix, frontend_file = out / MIX, out / Path(DEFAULT_FRONTEND).name
    if state["stage"] == "frontend":
        result = train_frontend(mix, frontend_file, seed, resume=resume, init=[base_frontend(out)],
                                lr=FRONTEND_LR, device=device, steps=state["frontend_steps"])
        state.update(stage="mmgat", frontend_seconds=result["train_seconds"])  # over resumes too
        write_state(out, state)
        log.info("frontend: per-second val F1 micro %.3f after %d steps",
                 result["val_f1_micro_per_second"], result["steps"])
    if state["stage"] == "mmgat":
        left = max(state["minutes"] - state["frontend_seconds"] / 60, 0.5)
        checkpoints = out / CHECKPOINTS
        fit(mix, checkpoints, init=str(out / BASE), minutes=left, epochs=10_000,
            patience=PATIENCE, lr=FINETUNE_LR, label_loss=False, seed=state["seed"],
            frontend=str(frontend_file) if frontend_file.is_file() else base_frontend(out),
            resume=(checkpoints / "last.pt").is_file(), device=device, progress=progress)
        state["stage"] = "export"
        write_state(out, state)
    from mmgat.export.onnx import export_checkpoint

    model = export_checkpoint(out / CHECKPOINTS / MODEL_FILE, out / MODEL)
    state["stage"] = "done"
    write_state(out, state)
    return {"model": str(model), **json.loads((out / CHECKPOINTS / "metrics.json").read_text())}


def base_frontend(out: Path) -> str:
    """The frontend file the base checkpoint names."""
    from mmgat.model.checkpoint import load_checkpoint

    return load_checkpoint(out / BASE)[1]["frontend"]["file"]


def run(args) -> int:
    summary = finetune(args.data, args.out, args.minutes, args.resume, args.replay, args.seed,
                       args.base, args.device)
    val = summary["val"]
    log.info("wrote %s: val F1 micro %.3f, macro %.3f (epoch %d of %d)", summary["model"],
             val["f1_micro"], val["f1_macro"], summary["best_epoch"], summary["epochs"])
    return 0


def register(commands) -> None:
    parser = commands.add_parser("finetune", help="continue the shipped default on a data set",
                                 description=__doc__)
    parser.add_argument("--data", required=True, help="data set (import, openmic-irmas, synth)")
    parser.add_argument("--out", required=True, help="folder for the run and DIR/mmgat.onnx")
    parser.add_argument("--minutes", type=float, default=20.0, help="time budget (default 20)")
    parser.add_argument("--resume", action="store_true", help="continue a stopped run in OUT")
    parser.add_argument("--replay", metavar="SYNTH_DIR",
                        help="synthetic set (mmgat-train synth) replayed so other classes stay")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=str(SHIPPED_MODEL),
                        help="artifact to continue (default: the shipped model)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=run)

"""`mmgat-train synth`: render the synthetic training set (FluidSynth + General MIDI SoundFonts).

Each clip is 10-19 s (integer seconds) of 16 kHz mono with 1-5 instruments of one `Song`
(compose.py) that enter and leave at second boundaries; every second has at least one
instrument. The pieces, one concern each:

- instruments.py: which patches play each class, and how (the catalogue);
- planning.py: a clip's plan, a pure function of its seed and the run's settings;
- fluidsynth.py, singing.py and hydrogen.py: the sound sources (libfluidsynth, espeak-ng,
  recorded Hydrogen drum kits); negatives.py: noises without an instrument; playing.py: guitar
  and piano techniques;
- render.py: a plan -> audio and per-second labels;
- this module: the command, worker processes, the manifest and resuming.

Every part picks its SoundFont at random among those given. The same seed gives the same
bytes: a clip depends only on its own seed (from (seed, index)) and the run's settings, which
DIR/synth.json records with everything else the audio depends on (the SoundFont files' hashes,
the espeak-ng version). A rerun of the same run keeps the clips already written and renders
the rest (after Ctrl-C, or to grow a set with a larger --clips); a rerun whose settings differ
is refused.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.frontend import sha256_file
from mmgat.model.labels import CLASSES
from mmgat.model.train import hydrogen
from mmgat.model.train.fluidsynth import FluidSynth, check_soundfont
from mmgat.model.train.planning import SoundFont, clip_seed
from mmgat.model.train.progress import progress_bar
from mmgat.model.train.render import manifest_record, render_clip
from mmgat.model.train.singing import ESPEAK, espeak_version

log = logging.getLogger(__name__)

# The training SoundFonts; every other SoundFont is kept for evaluation.
DEFAULT_SOUNDFONTS = (
    "FluidR3_GM.sf2",  # Debian fluid-soundfont-gm
    "sf_GMbank.sf2",  # Debian csound-soundfont
    "OPL-3_FM_128M.sf2",  # Debian opl3-soundfont
    "Black_Pearl_4_LV2.sf2",  # Debian avldrums.lv2-soundfont: recorded kits, drums and cymbals only
    "Red_Zeppelin_4_LV2.sf2",
)
DEFAULT_SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts")
SOUNDFONT_PATH_VARIABLE = "MMGAT_SOUNDFONT_PATH"
PARTIAL_SUFFIX = ".partial.wav"  # a clip being written; renamed when complete
DEFAULT_NEGATIVES = 0.2  # share of clips with a background (--negatives)
DEFAULT_BANDS = 0.2  # share of band clips (--bands)
DEFAULT_PLAYING = 0.2  # share of guitar and piano parts played with a technique (--playing)
SETTINGS_FILE = "synth.json"  # what a run was asked for, so that a rerun resumes only the same run


# ---- workers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunConfig:
    out: Path
    soundfonts: tuple[Path, ...]
    min_s: int
    max_s: int
    classes: tuple[str, ...]
    espeak: bool  # whether espeak-ng sings (it is installed)
    conditions: float  # the chance scale of the recording conditions (conditions.py); 0: none
    kits: tuple[str, ...] = ()  # Hydrogen kits (hydrogen.py) for drums and cymbals
    bands: float = 0.0  # share of band clips (planning.py)
    negatives: float = 0.0  # share of clips with a background without instruments (negatives.py)
    playing: float = 0.0  # share of guitar and piano parts played with a technique (playing.py)


_worker: dict = {}  # per process: the config, its synthesizers and SoundFonts


def _init_worker(config: RunConfig, child: bool = True):
    if child:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
        import torch

        torch.set_num_threads(1)  # one process per core already
    try:
        synths = {path: FluidSynth(path) for path in config.soundfonts}
    except (OSError, ValueError) as error:  # raised by the first task: a failing initializer
        _worker["error"] = error  # would make multiprocessing.Pool restart the worker forever
        return
    _worker.update(config=config, synths=synths,
                   soundfonts=[SoundFont(p, s.presets) for p, s in synths.items()],
                   kits={kit.name: kit for kit in hydrogen.find_kits(config.kits)})


def _render_task(task: tuple[int, int]) -> dict:
    if "error" in _worker:
        raise _worker["error"]
    index, seed = task
    config = _worker["config"]
    clip = render_clip(seed, _worker["soundfonts"], _worker["synths"], config.min_s, config.max_s,
                       config.classes, config.espeak, config.conditions, _worker["kits"],
                       config.bands, config.negatives, config.playing)
    relative = clip_path(index)
    temporary = config.out / f"clips/.{index:06d}{PARTIAL_SUFFIX}"
    soundfile.write(temporary, clip.audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(temporary, config.out / relative)  # a clip file is whole or absent
    return manifest_record(clip, relative)


def clip_path(index: int) -> str:
    return f"clips/{index:06d}.wav"


def _close_worker():
    for synth in _worker.get("synths", {}).values():
        synth.close()
    _worker.clear()


def _results(config: RunConfig, tasks: list[tuple[int, int]], workers: int):
    """Manifest records in index order, rendered by `workers` processes."""
    if workers == 1:
        _init_worker(config, child=False)
        try:
            yield from map(_render_task, tasks)
        finally:
            _close_worker()
        return
    # spawn: no forking of a process that holds torch. Leaving the block (also on Ctrl-C)
    # terminates the workers at once.
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (config,)) as pool:
        yield from pool.imap(_render_task, tasks)


# ---- command line ------------------------------------------------------------------------------

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="render the synthetic training set with FluidSynth",
        description="Render multi-instrument clips with per-second labels from General MIDI SoundFonts.")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--clips", required=True, type=int, help="number of clips")
    parser.add_argument("--seed", required=True, type=int, help="run seed")
    parser.add_argument("--soundfont", action="append", type=Path, metavar="SF2",
                        help="SoundFont to render with (repeatable; default: the training SoundFonts "
                             + ", ".join(DEFAULT_SOUNDFONTS) + f", found in ${SOUNDFONT_PATH_VARIABLE} "
                             f"or {':'.join(DEFAULT_SOUNDFONT_DIRS)})")
    parser.add_argument("--min-s", type=int, default=10, help="shortest clip, seconds (default 10)")
    parser.add_argument("--max-s", type=int, default=19, help="longest clip, seconds (default 19)")
    parser.add_argument("--classes", help="comma-separated subset of classes to draw from (default all)")
    parser.add_argument("--conditions", type=float, default=1.0, metavar="P",
                        help="recording conditions (room, device, compressor, codec: conditions.py), "
                             "each at its chance times P, 0..1 (default 1; 0: none)")
    parser.add_argument("--negatives", type=float, default=DEFAULT_NEGATIVES, metavar="P",
                        help="share of clips with noise, hum, fans, rooms, clicks or speech: alone, "
                             f"around the music or under it (negatives.py; default {DEFAULT_NEGATIVES}; 0: none)")
    parser.add_argument("--kits", metavar="NAMES",
                        help="comma-separated Hydrogen kits in " + str(hydrogen.KIT_DIR) + " that play "
                             "drums and cymbals beside the SoundFonts (default: the training kits "
                             + ", ".join(hydrogen.TRAINING_KITS) + "; 'none': no kit)")
    parser.add_argument("--bands", type=float, default=DEFAULT_BANDS, metavar="P",
                        help="share of band clips: a Hydrogen kit over guitars or keys mixed down to "
                             f"-12 dB (default {DEFAULT_BANDS}; needs kits)")
    parser.add_argument("--playing", type=float, default=DEFAULT_PLAYING, metavar="P",
                        help="share of guitar and piano parts played with a technique: power chords "
                             "through an amp, palm mutes, slides, bends, harmonics; electric or ambient "
                             f"piano, sustain pedal (playing.py; default {DEFAULT_PLAYING}; 0: none)")
    parser.add_argument("--workers", type=int, default=_cores(),
                        help="processes (default: all cores)")
    parser.set_defaults(func=run)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def soundfont_dirs() -> tuple[Path, ...]:
    """Where the training SoundFonts are looked for: $MMGAT_SOUNDFONT_PATH (folders separated
    by ':'), else Debian's folders."""
    setting = os.environ.get(SOUNDFONT_PATH_VARIABLE)
    return tuple(Path(d) for d in (setting.split(":") if setting else DEFAULT_SOUNDFONT_DIRS) if d)


def find_soundfont(name: str, dirs=None) -> Path | None:
    """The first file called `name` in the SoundFont folders, or None."""
    return next((d / name for d in (dirs or soundfont_dirs()) if (d / name).is_file()), None)


def resolve_soundfonts(given: list[Path] | None) -> tuple[Path, ...]:
    if given:
        for path in given:
            if not path.is_file():
                raise OSError(f"no such SoundFont: {path}")
        paths = tuple(given)
    else:
        found = {name: find_soundfont(name) for name in DEFAULT_SOUNDFONTS}
        paths = tuple(path for path in found.values() if path)
        if not paths:
            raise OSError(f"none of the training SoundFonts ({', '.join(DEFAULT_SOUNDFONTS)}) is in "
                          f"{':'.join(map(str, soundfont_dirs()))}: apt-get install fluid-soundfont-gm "
                          f"csound-soundfont opl3-soundfont avldrums.lv2-soundfont, set ${SOUNDFONT_PATH_VARIABLE}, or pass "
                          "--soundfont")
        for name in (name for name, path in found.items() if path is None):
            log.warning("%s is missing; rendering without it", name)
    for path in paths:
        check_soundfont(path)
    return paths


def _parse_classes(text: str | None) -> tuple[str, ...]:
    if not text:
        return CLASSES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CLASSES]
    if unknown or not names:
        raise ValueError(f"unknown classes {unknown}; choose from {', '.join(CLASSES)}")
    return names


def resolve_kits(text: str | None) -> tuple[hydrogen.Kit, ...]:
    """The Hydrogen kits --kits names (default: the training kits that are installed)."""
    if text is None:
        kits = hydrogen.find_kits(hydrogen.TRAINING_KITS)
        if not kits:
            log.warning("no Hydrogen kit in %s (apt-get install hydrogen-drumkits); rendering without",
                        hydrogen.KIT_DIR)
        return kits
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    kits = hydrogen.find_kits(names)
    missing = sorted(set(names) - {kit.name for kit in kits})
    if missing:
        raise ValueError(f"no Hydrogen kit {', '.join(missing)} in {hydrogen.KIT_DIR}")
    return kits


def _check_arguments(args):
    if args.clips < 1:
        raise ValueError("--clips must be at least 1")
    if not 1 <= args.min_s <= args.max_s:
        raise ValueError("need 1 <= --min-s <= --max-s")
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    for name in ("conditions", "negatives", "bands", "playing"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name} must be in 0..1")


def run(args) -> int:
    _check_arguments(args)
    classes = _parse_classes(args.classes)
    soundfonts = resolve_soundfonts(args.soundfont)
    espeak = espeak_version()
    if espeak is None:
        log.warning("%s not found; voice uses SoundFont voices only", ESPEAK)
    out = Path(args.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    kits = resolve_kits(args.kits)
    bands = args.bands if kits else 0.0
    config = RunConfig(out, soundfonts, args.min_s, args.max_s, classes, espeak is not None, args.conditions,
                       tuple(kit.name for kit in kits), bands, args.negatives, args.playing)
    # Everything the clips depend on: a rerun resumes only when all of it is the same. Settings
    # added later are absent when off, so that older runs still resume.
    settings = {"seed": args.seed, "soundfonts": [p.name for p in soundfonts],
                "soundfont_sha256": [sha256_file(p) for p in soundfonts],
                "espeak": espeak, "min_s": args.min_s, "max_s": args.max_s,
                "classes": list(classes),
                **({"conditions": args.conditions} if args.conditions else {}),
                **({"kits": [k.name for k in kits], "kit_sha256": [k.sha256 for k in kits]} if kits else {}),
                **({"bands": bands} if bands else {}),
                **({"negatives": args.negatives} if args.negatives else {}),
                **({"playing": args.playing} if args.playing else {})}
    records = finished_records(out, settings, args.clips)
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    tasks = [(i, clip_seed(args.seed, i)) for i in range(len(records), args.clips)]
    try:
        _write_manifest(out / "manifest.jsonl", _results(config, tasks, max(1, min(args.workers, len(tasks)))),
                        records, args.clips)
    finally:  # also on Ctrl-C: the distribution of the clips in the manifest
        for partial in (out / "clips").glob(f".*{PARTIAL_SUFFIX}"):  # from terminated workers
            partial.unlink()
        distribution = label_distribution(records)
        (out / "label_distribution.json").write_text(json.dumps(distribution, indent=2) + "\n")
    _print_distribution(distribution)
    return 0


def finished_records(out: Path, settings: dict, clips: int) -> list[dict]:
    """The first clips (at most `clips`) of an earlier run with these settings in `out`, whole
    and in index order: a rerun (after Ctrl-C, or with a larger --clips) goes on from there."""
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        return []
    recorded = out / SETTINGS_FILE
    before = json.loads(recorded.read_text()) if recorded.is_file() else {}
    differing = sorted(key for key in settings.keys() | before.keys()
                       if settings.get(key) != before.get(key))
    if differing:
        raise ValueError(f"{out} holds clips of another synth run ({', '.join(differing)} "
                         "differ); choose a new --out")
    records = []
    for index, line in enumerate(manifest.read_text().splitlines()[:clips]):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            break
        if record.get("path") != clip_path(index) or not (out / record["path"]).is_file():
            break
        records.append(record)
    return records


def _write_manifest(path: Path, results, records: list, total: int):
    """One line per finished clip (after those of `records`), in index order, flushed as it
    comes (Ctrl-C safe)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    started = time.monotonic()
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.2f} clips/s"), TimeRemainingColumn())
    resumed = len(records)
    with open(path, "w") as manifest, progress_bar(*columns) as progress:
        manifest.writelines(json.dumps(record) + "\n" for record in records)
        manifest.flush()
        task = progress.add_task("synth", total=total, completed=resumed, rate=0.0)
        for record in results:
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            records.append(record)
            rate = (len(records) - resumed) / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=1, rate=rate)


def label_distribution(records: list[dict]) -> dict:
    """Per class: clips containing it and seconds it is active."""
    return {
        "clips": len(records),
        "seconds": sum(r["duration"] for r in records),
        "classes": {c: {"clips": sum(c in r["clip_labels"] for r in records),
                        "seconds": sum(sum(r["second_labels"][c]) for r in records)} for c in CLASSES},
    }


def _print_distribution(distribution: dict):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{distribution['clips']} clips, {distribution['seconds']} s")
    for column in ("class", "clips", "% clips", "seconds", "% seconds"):
        table.add_column(column, justify="left" if column == "class" else "right")
    clips, seconds = max(distribution["clips"], 1), max(distribution["seconds"], 1)
    for name, counts in distribution["classes"].items():
        table.add_row(name, str(counts["clips"]), f"{100 * counts['clips'] / clips:.1f}",
                      str(counts["seconds"]), f"{100 * counts['seconds'] / seconds:.1f}")
    Console().print(table)

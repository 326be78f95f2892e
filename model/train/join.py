"""`mmgat-train join --out DIR SET...`: several synthetic sets as one, without copying audio.

DIR gets a link per set (`DIR/0`, `DIR/1`, ... pointing at it) and one manifest whose paths go
through those links, in the order given. A clip keeps its split: splits hash the clip's seed,
not its place (data.py). Clips of two sets with the same seed would be the same clip twice,
so that is refused (sets rendered with different run seeds never share one). A clip of an
imported or built set keeps the split its manifest names. `--split test`
keeps the clips of one split: e.g. a held-out set to evaluate on without embedding the rest.
`--without-soundfont NAME` drops every clip that uses that SoundFont (a file name, e.g.
OPL-3_FM_128M.sf2): the training set of a leave-one-SoundFont-out run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mmgat.model.train.data import MANIFEST, SPLITS, entry_split, read_manifest

log = logging.getLogger(__name__)


def join(out, sets, split: str | None = None, without_soundfonts=()) -> int:
    """Writes the joined manifest (of one split's clips when `split` is given, of the clips
    that use none of `without_soundfonts`) and links; returns the number of clips."""
    out = Path(out)
    if (out / MANIFEST).exists():
        raise ValueError(f"{out / MANIFEST} exists; join into a new folder")
    entries, seeds, excluded = [], {}, set(without_soundfonts)
    for index, folder in enumerate(map(Path, sets)):
        for entry in read_manifest(folder):
            if entry["seed"] in seeds:
                raise ValueError(f"{folder} and {seeds[entry['seed']]} both hold clip seed {entry['seed']}")
            seeds[entry["seed"]] = folder
            if ((split is None or entry_split(entry) == split)
                    and not excluded & set(entry["soundfonts"])):
                entries.append({**entry, "path": f"{index}/{entry['path']}"})
    if not entries:
        raise ValueError("no clip is left to join")
    out.mkdir(parents=True, exist_ok=True)
    for index, folder in enumerate(map(Path, sets)):
        os.symlink(os.path.relpath(folder.resolve(), out.resolve()), out / str(index))
    with open(out / MANIFEST, "w") as manifest:
        manifest.writelines(json.dumps(entry) + "\n" for entry in entries)
    log.info("joined %d %sclips from %s into %s", len(entries), f"{split} " if split else "",
             ", ".join(map(str, sets)), out)
    return len(entries)


def run(args) -> int:
    join(args.out, args.sets, args.split, args.without_soundfont)
    return 0


def register(commands) -> None:
    parser = commands.add_parser("join", help="several synthetic sets as one (no audio copied)",
                                 description=__doc__)
    parser.add_argument("sets", nargs="+", metavar="SET", help="synthetic set folders")
    parser.add_argument("--out", required=True, help="the joined set's folder (new)")
    parser.add_argument("--split", choices=SPLITS, help="only the clips of this split")
    parser.add_argument("--without-soundfont", action="append", default=[], metavar="NAME",
                        help="leave out every clip that uses this SoundFont file (repeatable)")
    parser.set_defaults(func=run)

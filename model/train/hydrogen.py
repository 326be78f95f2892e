"""Recorded drum kits in Hydrogen's format (Debian's hydrogen-drumkits): samples + drumkit.xml.

A kit is read with the standard library's XML parser: per instrument its name, gain and
velocity layers (sample file, velocity range, gain). Instruments are sorted into the General
MIDI percussion roles the composer writes (compose.py: kick, snare, side stick, toms, hi-hats,
ride, crash) by their names; claps, cowbells, hand percussion, effects and loops are left out.
Drums = kick, snare, side stick, toms; cymbals = hi-hats, ride, crash (as in instruments.py).

`render(kit, notes, song, n_samples, rng)` plays GM percussion notes (compose.Note) on the kit:
one instrument per role and part, the velocity layer by velocity, each hit its sample at the
note's velocity, an open hi-hat choked by the next closed or pedal one, as a drummer's foot
does. Kits are found in `KIT_DIR`; which kits train and which are held out is decided here once.
"""

from __future__ import annotations

import functools
import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from mmgat.model.audio import SAMPLE_RATE, to_mono_16k
from mmgat.model.train import compose

KIT_DIR = Path("/usr/share/hydrogen/data/drumkits")
# Kits of drum sets (hand percussion and djembe kits are none). Two acoustic kits are held out
# of every training run for the guitar-under-drums test; the rest train.
TRAINING_KITS = ("Audiophob", "BJA_Pacific", "ColomboAcousticDrumkit", "ElectricEmpireKit",
                 "HardElectro1", "Millo-Drums_v.1", "Millo_MultiLayered2", "The Black Pearl 1.0",
                 "VariBreaks", "rumpf_kit_z01_h2")
HELD_OUT_KITS = ("ForzeeStereo", "Millo_MultiLayered3")
KIT_PREFIX = "hydrogen/"  # how a manifest names a Hydrogen kit among the SoundFonts of a clip
CHOKE_S = 0.03  # an open hi-hat's fade when the pedal closes it

# Role of an instrument by its name (first match wins; order matters: "ride bell" before "ride").
_ROLE_PATTERNS = (
    ("skip", r"clap|cowbell|conga|whistle|zap|fx|click|sample|tamb|agogo|shaker|maraca|djembe|"
             r"(?<!bass )drum \d|roll|choke|swish|flink|^\d+$|^\s*$|^[a-g]#?\d - *$"),
    ("ride_bell", r"bell|cup"),
    ("crash", r"crash|splash|china|cymbal"),
    ("ride", r"ride"),
    ("pedal_hat", r"pedal|\bpd\b"),
    ("open_hat", r"open|\bop\b|semi|hh.*ohh|side ohh"),
    ("closed_hat", r"hat|hh|hi-hat|hihat"),
    ("kick", r"kick|bass ?drum|bassdrum|\bbd\b"),
    ("side_stick", r"stick|rim ?click"),
    ("snare", r"snare|rimshot"),
    ("tom", r"tom"),
)
# GM percussion keys -> roles, with fallbacks where a kit lacks the role.
_GM_ROLES = {
    **{k: ("kick",) for k in compose.KICKS},
    **{k: ("snare",) for k in compose.SNARES},
    compose.SIDE_STICK: ("side_stick", "snare"),
    **{k: ("tom",) for k in compose.TOMS_HIGH_TO_LOW},
    compose.CLOSED_HAT: ("closed_hat", "pedal_hat"),
    compose.PEDAL_HAT: ("pedal_hat", "closed_hat"),
    compose.OPEN_HAT: ("open_hat", "closed_hat"),
    **{k: ("crash", "ride") for k in compose.CRASHES + (compose.SPLASH, compose.CHINA)},
    **{k: ("ride", "crash") for k in compose.RIDES},
    compose.RIDE_BELL: ("ride_bell", "ride", "crash"),
}
HAT_CLOSERS = (compose.CLOSED_HAT, compose.PEDAL_HAT)


@dataclass(frozen=True)
class Layer:
    path: Path
    low: float  # velocity range, 0..1
    high: float
    gain: float


@dataclass(frozen=True)
class Instrument:
    name: str
    role: str
    gain: float
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Kit:
    name: str  # the kit's folder
    instruments: tuple[Instrument, ...]
    sha256: str  # of drumkit.xml: a synth run records it

    def by_role(self, role: str) -> list[Instrument]:
        return [i for i in self.instruments if i.role == role]


def role_of(name: str) -> str | None:
    """The GM percussion role of an instrument called `name`, None when it plays no role here."""
    lowered = name.lower()
    for role, pattern in _ROLE_PATTERNS:
        if re.search(pattern, lowered):
            return None if role == "skip" else role
    return None


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


def _number(element: ET.Element, tag: str, default: float) -> float:
    text = element.findtext(tag)
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


@functools.cache
def load_kit(folder: Path) -> Kit:
    """The kit in `folder` (its drumkit.xml and samples), only instruments with a role and a
    readable sample."""
    folder = Path(folder)
    xml_file = folder / "drumkit.xml"
    if not xml_file.is_file():
        raise OSError(f"{folder} holds no drumkit.xml (apt-get install hydrogen-drumkits)")
    root = _strip_namespaces(ET.parse(xml_file).getroot())
    instruments = []
    for element in root.iter("instrument"):
        name = (element.findtext("name") or "").strip()
        role = role_of(name)
        if role is None or (element.findtext("isMuted") or "").strip() == "true":
            continue
        layers = [Layer(folder / layer.findtext("filename").strip(), _number(layer, "min", 0.0),
                        _number(layer, "max", 1.0), _number(layer, "gain", 1.0))
                  for layer in element.iter("layer") if (layer.findtext("filename") or "").strip()]
        if not layers and (element.findtext("filename") or "").strip():  # old format: one sample
            layers = [Layer(folder / element.findtext("filename").strip(), 0.0, 1.0, 1.0)]
        layers = [layer for layer in layers if layer.path.is_file()]
        if layers:
            gain = _number(element, "gain", 1.0) * _number(element, "volume", 1.0)
            instruments.append(Instrument(name, role, gain, tuple(sorted(layers, key=lambda layer: layer.low))))
    digest = hashlib.sha256(xml_file.read_bytes()).hexdigest()
    return Kit(folder.name, tuple(instruments), digest)


def find_kits(names, directory: Path = KIT_DIR) -> tuple[Kit, ...]:
    """The named kits that are installed (a missing one is skipped: the run records which)."""
    return tuple(load_kit(directory / name) for name in names if (directory / name / "drumkit.xml").is_file())


@functools.cache  # the ten training kits' samples: 29 MB at SAMPLE_RATE; resampling is the slow part
def sample(path: Path) -> np.ndarray:
    """A layer's sample, mono at SAMPLE_RATE."""
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return to_mono_16k(audio, rate)


def choose_instruments(kit: Kit, rng: np.random.Generator) -> dict[int, Instrument]:
    """One instrument per GM key the kit can play (toms spread high to low over the kit's)."""
    # sorted: a set's order changes from process to process, the draws must not
    roles = sorted({r for roles in _GM_ROLES.values() for r in roles})
    chosen_role = {role: (options[int(rng.integers(len(options)))] if options else None)
                   for role in roles for options in [kit.by_role(role)]}
    toms = kit.by_role("tom")
    out = {}
    for key, roles in _GM_ROLES.items():
        if roles == ("tom",) and toms:
            index = compose.TOMS_HIGH_TO_LOW.index(key) * len(toms) // len(compose.TOMS_HIGH_TO_LOW)
            out[key] = toms[index]
            continue
        instrument = next((chosen_role[r] for r in roles if chosen_role.get(r)), None)
        if instrument is not None:
            out[key] = instrument
    return out


def _layer(instrument: Instrument, velocity: float) -> Layer:
    inside = [layer for layer in instrument.layers if layer.low <= velocity <= layer.high]
    if inside:
        return inside[-1]
    return min(instrument.layers, key=lambda layer: abs((layer.low + layer.high) / 2 - velocity))


def render(kit: Kit, notes: list[compose.Note], song: compose.Song, n_samples: int,
           rng: np.random.Generator) -> np.ndarray:
    """GM percussion notes played on the kit, mono (n_samples,) at SAMPLE_RATE."""
    instruments = choose_instruments(kit, rng)
    out = np.zeros(n_samples)
    hits = sorted((n for n in notes if n.pitch in instruments), key=lambda n: n.start)
    closers = [int(song.seconds(n.start) * SAMPLE_RATE) for n in hits if n.pitch in HAT_CLOSERS]
    choke = int(CHOKE_S * SAMPLE_RATE)
    for note in hits:
        start = int(round(song.seconds(note.start) * SAMPLE_RATE))
        if start >= n_samples:
            continue
        velocity = note.velocity / 127
        instrument = instruments[note.pitch]
        layer = _layer(instrument, velocity)
        wave = sample(layer.path) * (layer.gain * instrument.gain * velocity)
        if note.pitch == compose.OPEN_HAT:
            stop = next((c for c in closers if c > start), None)
            if stop is not None and stop - start < len(wave):
                wave = wave[: stop - start + choke].copy()
                wave[-choke:] *= np.linspace(1.0, 0.0, min(choke, len(wave)))[-len(wave[-choke:]):]
        end = min(n_samples, start + len(wave))
        out[start:end] += wave[: end - start]
    return out

"""Planning a clip: a pure function of its seed and the run's settings (SoundFonts and their
presets, clip lengths, classes, whether espeak-ng may sing), so that the same seed gives the
same plan on every machine with the same inputs. Rendering the plan is render.py's job.

A clip has 1-5 instruments of one `Song` (compose.py), each with its SoundFont, patch, idiom,
seconds, mix gain and augmentation. What issue 28 added draws from a stream of its own
(EXTRAS_STREAM), after the plan above, so that a run without it plans exactly as before:

- recorded Hydrogen kits (hydrogen.py) play drums and cymbals parts (KIT_CHANCE of them), often
  a dense breakbeat through a drum bus (compression, saturation);
- band clips (`bands` of them): a Hydrogen kit under guitars or keys mixed down to -12 dB, as in
  records where the drums mask the guitar;
- backgrounds (`negatives` of the clips): noise, hum, fans, rooms, clicks or speech alone, around
  the music (seconds without an instrument) or under it (negatives.py);
- playing techniques (`playing` of the guitar and piano parts, from a stream of their own,
  PLAYING_STREAM): power chords through an amp, palm mutes, slides, bends, harmonics, electric
  and ambient piano, the sustain pedal (playing.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmgat.model.labels import CLASSES
from mmgat.model.train import augment, compose, conditions, negatives, playing
from mmgat.model.train.fluidsynth import Patch
from mmgat.model.train.instruments import INSTRUMENTS, KIT_SOUNDFONTS
from mmgat.model.train.singing import ESPEAK_VOICES, SYLLABLES

PARTS_PER_CLIP = (1, 2, 3, 4, 5)
PARTS_PER_CLIP_WEIGHTS = (0.1, 0.25, 0.3, 0.2, 0.15)
KIT_PARTNERS = {"drums": "cymbals", "cymbals": "drums"}
KIT_PARTNER_CHANCE = 0.5  # a kit half brings the other half along this often ...
KIT_WEIGHT = 0.75  # ... so each half is drawn a little less often by itself (balance)
EXTRAS_STREAM = 28  # the random stream of the additions below (issue 28)
KIT_CHANCE = 0.3  # a drums or cymbals part of an ordinary clip plays a Hydrogen kit this often
BREAK_CHANCE = 0.6  # a Hydrogen kit plays the song's breakbeat rather than its groove
BUS_CHANCE = 0.6  # a Hydrogen kit part goes through a drum bus (augment.drum_bus)
BAND_LEADS = {"guitar": 0.5, "piano": 0.25, "organ": 0.1, "synthesizer": 0.05, "voice": 0.1}
BAND_KIT_DB = (-3.0, 0.0)  # the kit's mix gain in a band clip ...
BAND_UNDER_DB = (-12.0, 0.0)  # ... and the others' (down to 12 dB under it)
PLAYING_STREAM = 29  # the random stream of the playing techniques (playing.py)


@dataclass(frozen=True)
class SoundFont:
    path: Path
    presets: frozenset[Patch] = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recorded_kit(self) -> bool:
        """A recorded drum kit (instruments.KIT_SOUNDFONTS): drums and cymbals only."""
        return self.name in KIT_SOUNDFONTS


@dataclass(frozen=True)
class PartPlan:
    instrument: str
    idiom: str
    register: tuple[int, int] | None  # None: the espeak-ng voice's own (found when rendering)
    start_s: int
    end_s: int
    gain_db: float
    augment: dict  # augment.draw_params plus the synth detune
    seed: int  # the part's composition and singing
    soundfont: SoundFont | None = None
    patch: Patch | None = None
    channels_detune_cents: dict[int, float] = field(default_factory=dict)
    voice: dict | None = None  # espeak-ng settings when sung by espeak-ng
    kit: str | None = None  # a Hydrogen kit (hydrogen.py) playing this drums or cymbals part
    playing: dict = field(default_factory=dict)  # playing.play: a guitar or piano technique


@dataclass(frozen=True)
class ClipPlan:
    seed: int
    duration: int
    song: compose.Song
    parts: tuple[PartPlan, ...]
    mix_augment: dict
    mix_rms_dbfs: float
    conditions: dict = field(default_factory=dict)  # conditions.draw_conditions: room, device, ...
    background: dict = field(default_factory=dict)  # negatives.draw_background: noise without music

    def music_seconds(self) -> range:
        """The seconds that must hold an audible instrument."""
        if self.background.get("mode") == "alone":
            return range(0)
        return range(*self.background.get("music_s", (0, self.duration)))


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip `index` of a run: a clip does not depend on how many clips are made."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def plan_clip(seed: int, soundfonts: list[SoundFont], min_s: int, max_s: int,
              classes=CLASSES, attempt: int = 0, espeak: bool = False,
              conditions_chance: float = 0.0, kits: tuple[str, ...] = (), bands: float = 0.0,
              negatives_share: float = 0.0, playing_share: float = 0.0) -> ClipPlan:
    """The clip of this seed, a pure function of its arguments: `espeak` says whether the
    voice may be sung by espeak-ng (whether it is installed, which the run records);
    `conditions_chance` scales the chances of the recording conditions (0: none); `kits` are
    the Hydrogen kits' names, `bands` the share of band clips, `negatives_share` that of clips
    with a background, `playing_share` that of guitar and piano parts played with a technique
    (the module docstring)."""
    rng = np.random.default_rng([seed, attempt])
    duration = int(rng.integers(min_s, max_s + 1))
    song = compose.random_song(rng)
    instruments = choose_instruments(rng, classes)
    spans = schedule(rng, len(instruments), duration)
    parts = tuple(plan_part(rng, name, start, end, soundfonts, espeak)
                  for name, (start, end) in zip(instruments, spans))
    mix = augment.draw_params(rng, 0.6, pitch=False)
    level = augment.uniform(rng, -26, -14, 2)
    recorded = conditions.draw_conditions(rng, conditions_chance) if conditions_chance else {}
    plan = ClipPlan(seed, duration, song, parts, mix, level, recorded)
    if kits or negatives_share:
        plan = _with_extras(plan, np.random.default_rng([seed, attempt, EXTRAS_STREAM]), soundfonts,
                            classes, espeak, kits, bands, negatives_share)
    if playing_share:
        rng = np.random.default_rng([seed, attempt, PLAYING_STREAM])
        plan = replace(plan, parts=tuple(playing.play(rng, p, playing_share) for p in plan.parts))
    return plan


def _with_extras(plan: ClipPlan, rng, soundfonts, classes, espeak, kits, bands, negatives_share) -> ClipPlan:
    """The plan with Hydrogen kits, as a band clip, and with a background (module docstring)."""
    parts, band = plan.parts, False
    if kits and "drums" in classes and rng.random() < bands:
        lineup = band_instruments(rng, classes)
        spans = schedule(rng, len(lineup), plan.duration)
        parts = tuple(plan_part(rng, name, start, end, soundfonts, espeak)
                      for name, (start, end) in zip(lineup, spans))
        band = True
    if kits:
        breakbeat, kit = bool(rng.random() < BREAK_CHANCE), str(rng.choice(kits))
        parts = tuple(_on_kit(rng, p, kit, breakbeat, band) if p.instrument in KIT_PARTNERS
                      and (band or rng.random() < KIT_CHANCE) else p for p in parts)
        if band:
            parts = tuple(p if p.kit else replace(p, gain_db=augment.uniform(rng, *BAND_UNDER_DB, 2))
                          for p in parts)
    plan = replace(plan, parts=parts)
    if rng.random() < negatives_share:
        background = negatives.draw_background(rng, plan.duration, espeak)
        plan = replace(plan, background=background)
        if background["mode"] == "alone":
            plan = replace(plan, parts=(), mix_rms_dbfs=background["level_dbfs"])
        elif background["mode"] == "around":
            start, end = background["music_s"]
            spans = schedule(rng, len(plan.parts), end - start)
            plan = replace(plan, parts=tuple(replace(p, start_s=start + a, end_s=start + b)
                                             for p, (a, b) in zip(plan.parts, spans)))
    return plan


def band_instruments(rng, classes) -> list[str]:
    """A band: drums (cymbals mostly along), a lead of guitar or keys, maybe bass and a second."""
    lineup = ["drums"] + (["cymbals"] if rng.random() < 0.8 else [])
    leads = list(BAND_LEADS)
    lineup.append(str(rng.choice(leads, p=list(BAND_LEADS.values()))))
    if rng.random() < 0.5:
        lineup.append("bass")
    if rng.random() < 0.3:
        lineup.append(str(rng.choice(["guitar", "piano", "organ"])))
    return [c for c in dict.fromkeys(lineup) if c in classes]


def _on_kit(rng, part: PartPlan, kit: str, breakbeat: bool, band: bool) -> PartPlan:
    """The drums or cymbals part played by a Hydrogen kit, maybe a breakbeat through a drum bus."""
    params = {k: v for k, v in part.augment.items() if k not in ("detune_cents", "drive")}
    if rng.random() < BUS_CHANCE:
        params["bus"] = augment.draw_bus(rng)
    idiom = f"break_{part.instrument}" if breakbeat else part.instrument
    gain = augment.uniform(rng, *BAND_KIT_DB, 2) if band else part.gain_db
    return replace(part, idiom=idiom, soundfont=None, patch=None, channels_detune_cents={},
                   kit=kit, augment=params, gain_db=gain)


def choose_instruments(rng, classes) -> list[str]:
    """1-5 distinct classes, about equally often each; a kit half brings the other along."""
    classes = list(classes)
    count = min(int(rng.choice(PARTS_PER_CLIP, p=PARTS_PER_CLIP_WEIGHTS)), len(classes))
    weights = np.array([KIT_WEIGHT if c in KIT_PARTNERS else 1.0 for c in classes])
    chosen = [str(c) for c in rng.choice(classes, size=count, replace=False, p=weights / weights.sum())]
    for name in list(chosen):
        partner = KIT_PARTNERS.get(name)
        if partner in classes and partner not in chosen and count > 1 and rng.random() < KIT_PARTNER_CHANCE:
            # the partner replaces another instrument: the number of parts stays as drawn
            chosen[max(i for i, other in enumerate(chosen) if other != name)] = partner
    return chosen


def schedule(rng, n_parts: int, duration: int) -> list[tuple[int, int]]:
    """[start, end) seconds per part, at least 2 s each; gaps are closed by stretching the
    nearest part so every second has an instrument."""
    spans = []
    for _ in range(n_parts):
        if rng.random() < 0.35:
            spans.append((0, duration))
            continue
        length = int(rng.integers(min(2, duration), duration + 1))
        start = int(rng.integers(0, duration - length + 1))
        spans.append((start, start + length))
    for second in range(duration):
        if not any(start <= second < end for start, end in spans):
            gaps = [max(start - second, second + 1 - end) for start, end in spans]
            i = int(np.argmin(gaps))
            spans[i] = (min(spans[i][0], second), max(spans[i][1], second + 1))
    return spans


def plan_part(rng, instrument: str, start_s: int, end_s: int, soundfonts: list[SoundFont],
              espeak: bool = False) -> PartPlan:
    """Pick a SoundFont at random, then a family of the instrument it can play, a patch,
    an idiom, a mix gain and the augmentation."""
    soundfont, family, patch = _choose_patch(rng, instrument, soundfonts, espeak)
    idiom = str(rng.choice(family.idioms))
    # Small pitch shifts come from the synth's pitch bend (no resampling artefacts); doubled
    # courses get a second channel a few cents away.
    detune = augment.uniform(rng, -25, 25, 1)
    course = round(float(rng.choice((-1, 1)) * rng.uniform(3, 8)), 1) if family.courses else None
    params = augment.draw_params(rng, pitch=False, noise=False, gain=False,
                                 drive=bool(rng.random() < family.drive), small_body=family.small_body)
    first_channel = compose.DRUM_CHANNEL if idiom in ("drums", "cymbals") else 0
    channels = {first_channel: detune} | ({1: round(detune + course, 1)} if course else {})
    voice, register = None, family.register
    if family.espeak:
        voice = {"voice": str(rng.choice(ESPEAK_VOICES)), "speed": int(rng.integers(60, 91)),
                 "pitch": int(rng.integers(40, 81)), "vibrato_cents": augment.uniform(rng, 0, 35, 1),
                 "vibrato_hz": augment.uniform(rng, 4.5, 6.5, 2),
                 "syllables": [str(s) for s in rng.choice(SYLLABLES, size=3, replace=False)]}
        register, channels = None, {}
    else:
        params["detune_cents"] = detune
        if course:
            params["course_detune_cents"] = course
    return PartPlan(instrument=instrument, idiom=idiom, register=register, start_s=start_s,
                    end_s=end_s, gain_db=augment.uniform(rng, -9, 0, 2), augment=params,
                    seed=int(rng.integers(2**31)), soundfont=None if family.espeak else soundfont,
                    patch=patch, channels_detune_cents=channels, voice=voice)


def _choose_patch(rng, instrument, soundfonts, espeak: bool):
    order = rng.permutation(len(soundfonts))
    for index in order:
        soundfont = soundfonts[index]
        if soundfont.recorded_kit:
            if instrument in KIT_PARTNERS:
                return soundfont, INSTRUMENTS[instrument][0], min(soundfont.presets)
            continue
        options = [(family, [p for p in family.patches if p in soundfont.presets])
                   for family in INSTRUMENTS[instrument]]
        options = [(f, p) for f, p in options if p or (f.espeak and espeak)]
        if options:
            family, patches = options[int(rng.integers(len(options)))]
            patch = patches[int(rng.integers(len(patches)))] if patches else None
            return soundfont, family, patch
    raise ValueError(f"none of the SoundFonts given has a patch for {instrument}")

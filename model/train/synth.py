"""`mmgat-train synth`: render the synthetic training set (FluidSynth + General MIDI SoundFonts).

Each clip is 10-19 s (integer seconds) of 16 kHz mono with 1-5 instruments of one `Song`
(compose.py) that enter and leave at second boundaries; every second has at least one
instrument. A part is rendered alone (libfluidsynth through ctypes, at RENDER_RATE, then
resampled), normalised to a common RMS over the seconds it plays, augmented (augment.py),
gated to its seconds and mixed at a random relative gain; the mix is augmented again.
Per-second labels are the scheduled seconds in which the part is actually audible.
Every part picks its SoundFont at random among those given. The same seed gives the same
bytes: a clip depends only on its own seed (from (seed, index)) and the SoundFonts, so a rerun
of the same run (DIR/synth.json records it) keeps the clips already written and renders the
rest: after Ctrl-C, or to grow a set with a larger --clips.

How the classes are made (README-ready):

- drums = kick, snare, side stick and toms on the GM percussion channel; cymbals = hi-hats
  (closed, pedal, open), ride, ride bell, crash, splash and china. Hi-hats count as cymbals
  (they are cymbals, and AudioSet files "Hi-hat" under "Cymbal"). Both come from one
  groove per song, so they lock together when they play at the same time and can also be
  heard apart. Clap, cowbell, tambourine and other auxiliary percussion are never used.
- mandolin: General MIDI has none. Where the SoundFont has the GS "Mandolin" variation
  (bank 16, program 25: FluidR3_GM and sf_GMbank), that patch; otherwise a proxy: steel-
  or nylon-string guitar in the mandolin's register (G3-D6), played as fast tremolo (10-14
  strokes/s, alternating pick accents) on doubled courses (two detuned strings a few ms
  apart), with a small-body EQ (high-pass 180-350 Hz, 2.2-4.2 kHz presence lift).
- ukulele: the GS "Ukulele" variation (bank 8, program 24) where present, otherwise nylon
  guitar with the small-body EQ; both strum chords on the re-entrant G4-C4-E4-A4 tuning
  (the high G sounds first on a down-stroke), 10-25 ms between strings.
- voice: GM choir aahs, voice oohs and synth voice (52-54) singing melodies or chords, and
  espeak-ng "singing": sustained syllables (laa, doo, ooh, ...) spoken monotone by a random
  espeak-ng voice, each resampled to the melody note's pitch with vibrato, so the pitch
  contour follows the melody (formants move with the pitch shift; the register is centred on
  the voice's own pitch to keep the shift small).
- accordion = GM 21/23 (not harmonica 22, which is no class); organ = GM 16-20; mallet
  percussion = celesta, glockenspiel, music box, vibraphone, marimba, xylophone, tubular bells;
  synthesizer = leads 80-87 (melodies, arpeggios) and pads 88-95 (chords); bass = acoustic,
  electric, fretless and slap bass 32-37 (synth bass is left out: it would blur bass and
  synthesizer); guitar = nylon, steel, jazz, clean, muted, overdriven and distortion 24-30,
  the clean electrics sometimes through amp drive and a cabinet; piano includes electric
  pianos. GS variations and sf_GMbank's MT-32 bank (127) add patches where present.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from mmgat.model.audio import SAMPLE_RATE, to_mono_16k
from mmgat.model.labels import CLASSES, GROUPS, group_max, multi_hot
from mmgat.model.train import augment, compose
from mmgat.model.train.progress import progress_bar

RENDER_RATE = 48_000  # FluidSynth aliases badly when it renders at 16 kHz; resampled afterwards
SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
DEFAULT_SOUNDFONTS = (  # the training SoundFonts; every other SoundFont is kept for evaluation
    SOUNDFONT_DIR / "FluidR3_GM.sf2",  # Debian fluid-soundfont-gm
    SOUNDFONT_DIR / "sf_GMbank.sf2",  # Debian csound-soundfont
    SOUNDFONT_DIR / "OPL-3_FM_128M.sf2",  # Debian opl3-soundfont
)
ESPEAK = "espeak-ng"
PART_RMS = 0.1  # every part is brought to this RMS over its seconds before its mix gain
AUDIBLE_DB = -30.0  # a scheduled second quieter than this (re the part's RMS) is not labelled
FADE_IN_S, FADE_OUT_S = 0.005, 0.02
MAX_PLAN_ATTEMPTS = 10
PARTIAL_SUFFIX = ".partial.wav"  # a clip being written; renamed when complete
SETTINGS_FILE = "synth.json"  # what a run was asked for, so that a rerun resumes only the same run
PARTS_PER_CLIP = (1, 2, 3, 4, 5)
PARTS_PER_CLIP_WEIGHTS = (0.1, 0.25, 0.3, 0.2, 0.15)
KIT_PARTNERS = {"drums": "cymbals", "cymbals": "drums"}
KIT_PARTNER_CHANCE = 0.5  # a kit half brings the other half along this often ...
KIT_WEIGHT = 0.75  # ... so each half is drawn a little less often by itself (balance)

Patch = tuple[int, int]  # (bank, program), as the SoundFont numbers them


# ---- instruments -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """Patches that play alike: their idioms (compose.IDIOMS), register and timbre extras."""
    patches: tuple[Patch, ...]
    idioms: tuple[str, ...]
    register: tuple[int, int] = (0, 127)
    drive: float = 0.0  # chance of amp drive and cabinet
    small_body: bool = False  # proxy for a small plucked instrument (augment.draw_params)
    courses: bool = False  # doubled strings: a second, detuned channel
    espeak: bool = False  # sung by espeak-ng instead of a SoundFont patch


def _bank(bank: int, programs) -> tuple[Patch, ...]:
    return tuple((bank, p) for p in programs)


DRUM_KITS = _bank(128, range(48))  # GM/GS kits; 48+ are orchestra and effect sets
MELODY = ("melody", "sustained_melody")

INSTRUMENTS: dict[str, tuple[Family, ...]] = {
    "accordion": (Family(_bank(0, (21, 23)) + ((8, 21), (127, 15)), ("chords", "melody"), (53, 84)),),
    "banjo": (Family(((0, 105),), ("banjo_roll",), (50, 79)),),
    "bass": (Family(_bank(0, range(32, 38)) + _bank(127, range(64, 72)), ("bass",), (28, 52)),),
    "cello": (Family(((0, 42), (127, 54), (127, 55)), MELODY + ("bass",), (36, 69)),),
    "clarinet": (Family(((0, 71), (127, 82), (127, 83)), MELODY, (50, 84)),),
    "cymbals": (Family(DRUM_KITS, ("cymbals",)),),
    "drums": (Family(DRUM_KITS, ("drums",)),),
    "flute": (Family(((0, 73), (127, 72), (127, 73)), MELODY, (60, 93)),
              Family(((0, 72), (127, 74), (127, 75)), ("melody",), (74, 98))),  # piccolo
    "guitar": (Family(((0, 24), (0, 25), (8, 25), (127, 59), (127, 60)),  # acoustic
                      ("strum", "arpeggio", "melody"), (45, 79)),
               Family(_bank(0, (26, 27, 28)) + ((8, 27), (8, 28), (127, 61), (127, 62)),  # clean electric
                      ("strum", "arpeggio", "melody"), (45, 81), drive=0.35),
               Family(_bank(0, (29, 30)), ("strum", "melody"), (40, 76))),  # overdriven, distortion
    "mallet_percussion": (
        Family(_bank(0, (8, 9, 10)) + ((127, 22), (127, 23), (127, 101)),  # celesta, glockenspiel, music box
               ("melody", "arpeggio"), (67, 96)),
        Family(_bank(0, (11, 12, 13)) + _bank(127, (97, 98, 103, 104)),  # vibraphone, marimba, xylophone
               ("melody", "arpeggio", "chords"), (53, 89)),
        Family(((0, 14), (127, 102)), ("melody",), (60, 77))),  # tubular bells
    "mandolin": (Family(((16, 25),), ("tremolo",), (55, 86), courses=True),
                 Family(((0, 25), (0, 24)), ("tremolo",), (55, 86), courses=True, small_body=True)),
    "organ": (Family(_bank(0, range(16, 21)) + _bank(8, (16, 17, 19)) + _bank(127, range(8, 15)),
                     ("chords", "melody"), (48, 84)),),
    "piano": (Family(_bank(0, (0, 1, 2, 3)) + _bank(127, (0, 1, 2, 7)),
                     ("piano", "chords", "arpeggio", "melody"), (36, 96)),
              Family(_bank(0, (4, 5)) + _bank(8, (4, 5)) + _bank(127, (3, 4, 5, 6)),  # electric pianos
                     ("piano", "chords"), (40, 88))),
    "saxophone": (Family(((0, 64),), ("melody",), (56, 86)),  # soprano, alto, tenor, baritone
                  Family(((0, 65), (127, 78), (127, 79)), ("melody",), (49, 79)),
                  Family(((0, 66), (127, 80), (127, 81)), ("melody",), (44, 74)),
                  Family(((0, 67),), ("melody",), (36, 67))),
    "synthesizer": (Family(_bank(0, range(80, 88)), ("melody", "arpeggio"), (48, 84)),  # leads
                    Family(_bank(0, range(88, 96)), ("chords",), (48, 79))),  # pads
    "trombone": (Family(((0, 57), (127, 90), (127, 91)), MELODY, (40, 70)),),
    "trumpet": (Family(((0, 56), (0, 59), (127, 88), (127, 89)), ("melody",), (55, 82)),),
    "ukulele": (Family(((8, 24),), ("ukulele_strum",)),
                Family(((0, 24),), ("ukulele_strum",), small_body=True)),
    "violin": (Family(((0, 40), (8, 40), (127, 52), (127, 53), (0, 110)), MELODY, (55, 91)),),  # 110: fiddle
    "voice": (Family(_bank(0, (52, 53, 54)), ("sustained_melody", "chords"), (48, 76)),
              Family((), MELODY, espeak=True)),
}
assert tuple(sorted(INSTRUMENTS)) == tuple(sorted(CLASSES))

# Natural-sounding espeak-ng voice variants (no whisper, robot or effect voices).
ESPEAK_VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
                 "klatt2", "klatt3", "Andrea", "Annie", "Alicia", "belinda", "linda", "steph",
                 "david", "john", "paul", "max", "benjamin", "Michael", "edward", "iven")
SUNG_SECONDS = 6.0  # syllables are held this long: enough for the longest note an octave up
SYLLABLES = ("laa", "loo", "daa", "doo", "naa", "noo", "maa", "ooh", "aah", "yeah", "hey", "lee")


# ---- FluidSynth through ctypes -----------------------------------------------------------------

_P, _I = ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "new_fluid_settings": (_P, []),
    "delete_fluid_settings": (None, [_P]),
    "fluid_settings_setnum": (_I, [_P, ctypes.c_char_p, ctypes.c_double]),
    "fluid_settings_setint": (_I, [_P, ctypes.c_char_p, _I]),
    "new_fluid_synth": (_P, [_P]),
    "delete_fluid_synth": (None, [_P]),
    "fluid_synth_sfload": (_I, [_P, ctypes.c_char_p, _I]),
    "fluid_synth_get_sfont_by_id": (_P, [_P, _I]),
    "fluid_sfont_iteration_start": (None, [_P]),
    "fluid_sfont_iteration_next": (_P, [_P]),
    "fluid_preset_get_banknum": (_I, [_P]),
    "fluid_preset_get_num": (_I, [_P]),
    "fluid_synth_program_select": (_I, [_P, _I, _I, _I, _I]),
    "fluid_synth_noteon": (_I, [_P, _I, _I, _I]),
    "fluid_synth_noteoff": (_I, [_P, _I, _I]),
    "fluid_synth_pitch_bend": (_I, [_P, _I, _I]),
    "fluid_synth_add_sfont": (_I, [_P, _P]),
    "fluid_synth_remove_sfont": (_I, [_P, _P]),
    "fluid_synth_write_float": (_I, [_P, _I, _P, _I, _I, _P, _I, _I]),
    "fluid_set_log_function": (_P, [_I, _P, _P]),
}


@functools.cache
def libfluidsynth() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("fluidsynth") or "libfluidsynth.so.3")
    except OSError:
        raise OSError("libfluidsynth is not installed (apt-get install fluidsynth)") from None
    for function, (restype, argtypes) in _SIGNATURES.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    for level in range(5):  # FluidSynth's own messages would garble the progress bar
        lib.fluid_set_log_function(level, None, None)
    return lib


class FluidSynth:
    """A SoundFont loaded once into libfluidsynth, rendering mido files offline at RENDER_RATE.

    Each render runs on a synthesizer of its own that shares the loaded SoundFont (about a
    millisecond to make): a reused synthesizer carries voice state from render to render and
    would make the output depend on what it rendered before."""

    def __init__(self, path: Path):
        self.lib = libfluidsynth()
        self.path = Path(path)
        self.settings = self.lib.new_fluid_settings()
        for name, value in ((b"synth.reverb.active", 0), (b"synth.chorus.active", 0),
                            (b"synth.lock-memory", 0)):
            self.lib.fluid_settings_setint(self.settings, name, value)
        self.lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(RENDER_RATE))
        self.loader = self.lib.new_fluid_synth(self.settings)  # owns the SoundFont
        sfont_id = self.lib.fluid_synth_sfload(self.loader, str(self.path).encode(), 1)
        if sfont_id < 0:
            self.close()
            raise ValueError(f"{path} is not a SoundFont FluidSynth can load")
        self.sfont = self.lib.fluid_synth_get_sfont_by_id(self.loader, sfont_id)
        self.presets = self._presets()

    def _presets(self) -> frozenset[Patch]:
        self.lib.fluid_sfont_iteration_start(self.sfont)
        found = set()
        while preset := self.lib.fluid_sfont_iteration_next(self.sfont):
            found.add((self.lib.fluid_preset_get_banknum(preset), self.lib.fluid_preset_get_num(preset)))
        return frozenset(found)

    def render(self, midi, programs: dict[int, Patch], n_samples: int) -> np.ndarray:
        """Mono float32 (n_samples,) at RENDER_RATE of the mido file, channel -> (bank, program)."""
        synth = self.lib.new_fluid_synth(self.settings)
        try:
            sfont_id = self.lib.fluid_synth_add_sfont(synth, self.sfont)
            for channel, (bank, program) in programs.items():
                if self.lib.fluid_synth_program_select(synth, channel, sfont_id, bank, program):
                    raise ValueError(f"{self.path.name} has no preset {bank}:{program}")
            return self._play(synth, midi, n_samples)
        finally:
            self.lib.fluid_synth_remove_sfont(synth, self.sfont)
            self.lib.delete_fluid_synth(synth)

    def _play(self, synth, midi, n_samples: int) -> np.ndarray:
        left, right = np.zeros(n_samples, np.float32), np.zeros(n_samples, np.float32)
        position, seconds = 0, 0.0
        for message in midi:  # mido gives delta times in seconds
            seconds += message.time
            target = min(int(round(seconds * RENDER_RATE)), n_samples)
            self._write(synth, left, right, position, target)
            position = target
            self._send(synth, message)
        self._write(synth, left, right, position, n_samples)
        return (left + right) * 0.5

    def _write(self, synth, left, right, start, stop):
        if stop > start:
            self.lib.fluid_synth_write_float(synth, stop - start, left.ctypes.data, start, 1,
                                             right.ctypes.data, start, 1)

    def _send(self, synth, message):
        if message.type == "note_on" and message.velocity > 0:
            self.lib.fluid_synth_noteon(synth, message.channel, message.note, message.velocity)
        elif message.type in ("note_on", "note_off"):
            self.lib.fluid_synth_noteoff(synth, message.channel, message.note)
        elif message.type == "pitchwheel":
            self.lib.fluid_synth_pitch_bend(synth, message.channel, message.pitch + 8192)

    def close(self):
        self.lib.delete_fluid_synth(self.loader)
        self.lib.delete_fluid_settings(self.settings)


# ---- espeak-ng singing -------------------------------------------------------------------------

@functools.cache
def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


@functools.lru_cache(maxsize=32)  # a part sings 3 syllables; a held syllable is 6 s of audio
def espeak_syllable(syllable: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, float]:
    """A monotone sustained syllable at SAMPLE_RATE (silence trimmed) and its pitch in Hz."""
    text = f'<prosody range="0%">{syllable}</prosody>'  # range 0: no intonation contour
    command = [ESPEAK, "-m", "-v", f"en+{voice}", "-s", str(speed), "-p", str(pitch), "--stdout", text]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise OSError(f"{ESPEAK} -v en+{voice} failed: {result.stderr.decode(errors='replace').strip()}")
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    samples = to_mono_16k(samples, rate)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    samples = samples[loud[0]: loud[-1] + 1]
    hz = _pitch_hz(samples)
    return _sustained(samples, hz, SUNG_SECONDS), hz


def _sustained(samples: np.ndarray, hz: float, seconds: float) -> np.ndarray:
    """The syllable held for `seconds`, as a sampler does: its steady middle (a whole number
    of pitch periods, so the waveform lines up) repeats with cross-fades before the release."""
    loop = int(round(max(1, round(0.12 * hz)) * SAMPLE_RATE / hz))  # about 120 ms of periods
    fade = min(int(0.01 * SAMPLE_RATE), loop // 2)
    loop_start = max(int(0.35 * len(samples)), fade)
    loop_end = loop_start + loop
    if loop_end > len(samples):
        return samples
    repeats = int(np.ceil(max(0.0, seconds * SAMPLE_RATE - len(samples)) / loop))
    out = samples[:loop_end]
    # Each piece starts `fade` samples early: those overlap, in phase, the end of `out`.
    for piece in [samples[loop_start - fade: loop_end]] * repeats + [samples[loop_start - fade:]]:
        ramp = np.linspace(0.0, 1.0, fade)
        joint = out[len(out) - fade:] * (1 - ramp) + piece[:fade] * ramp
        out = np.concatenate([out[: len(out) - fade], joint, piece[fade:]])
    return out.astype(np.float32)


def _pitch_hz(samples: np.ndarray) -> float:
    """Median autocorrelation pitch over the loud 40 ms frames; the shortest lag within 10 %
    of the best one wins, which avoids octave-low errors."""
    frame = int(0.04 * SAMPLE_RATE)
    shortest, longest = SAMPLE_RATE // 500, SAMPLE_RATE // 60
    level = np.sqrt(np.mean(samples**2))
    estimates = []
    for start in range(0, len(samples) - frame, frame // 2):
        x = samples[start: start + frame]
        if np.sqrt(np.mean(x**2)) < level:
            continue
        correlation = np.correlate(x, x, mode="full")[frame - 1 + shortest: frame - 1 + longest]
        lag = shortest + int(np.flatnonzero(correlation >= 0.9 * correlation.max())[0])
        estimates.append(SAMPLE_RATE / lag)
    return float(np.median(estimates)) if estimates else 120.0


def _espeak_register(voice: dict) -> tuple[int, int]:
    """A melody register centred just above the voice's own pitch, so pitch shifts stay small."""
    _, hz = espeak_syllable(voice["syllables"][0], voice["voice"], voice["speed"], voice["pitch"])
    centre = int(np.clip(round(69 + 12 * np.log2(hz / 440.0)), 45, 72))  # within human singing
    return centre - 5, centre + 9


def sing(notes: list[compose.Note], song: compose.Song, voice: dict, n_samples: int,
         rng: np.random.Generator) -> np.ndarray:
    """The notes sung by espeak-ng: each a syllable resampled to the note's pitch, with vibrato."""
    out = np.zeros(n_samples)
    for note in notes:
        syllable = voice["syllables"][int(rng.integers(len(voice["syllables"])))]
        samples, hz = espeak_syllable(syllable, voice["voice"], voice["speed"], voice["pitch"])
        start = int(round(song.seconds(note.start) * SAMPLE_RATE))
        length = min(int(round(song.seconds(note.length) * SAMPLE_RATE)), n_samples - start)
        sung = _sung_note(samples, midi_hz(note.pitch) / hz, length, voice)
        out[start: start + len(sung)] += sung * note.velocity / 127
    return out


def _sung_note(samples, ratio, length, voice) -> np.ndarray:
    t = np.arange(max(length, 1)) / SAMPLE_RATE
    vibrato = 2.0 ** (voice["vibrato_cents"] * np.sin(2 * np.pi * voice["vibrato_hz"] * t) / 1200)
    steps = np.clip(ratio, 0.5, 2.0) * vibrato  # read speed through the syllable
    positions = (np.cumsum(steps) - steps[0])[:max(length, 0)]
    positions = positions[positions < len(samples) - 1]
    sung = np.interp(positions, np.arange(len(samples)), samples)
    return sung * _fades(len(sung), int(0.01 * SAMPLE_RATE), int(0.04 * SAMPLE_RATE))


def _fades(n: int, fade_in: int, fade_out: int) -> np.ndarray:
    envelope = np.ones(n)
    fade_in, fade_out = min(fade_in, n), min(fade_out, n)
    envelope[:fade_in] = np.linspace(0.0, 1.0, fade_in, endpoint=False)
    envelope[n - fade_out:] *= np.linspace(1.0, 0.0, fade_out)
    return envelope


# ---- planning ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoundFont:
    path: Path
    presets: frozenset[Patch] = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class PartPlan:
    instrument: str
    idiom: str
    register: tuple[int, int]
    start_s: int
    end_s: int
    gain_db: float
    augment: dict  # augment.draw_params plus the synth detune
    seed: int  # the part's composition and singing
    soundfont: SoundFont | None = None
    patch: Patch | None = None
    channels_detune_cents: dict[int, float] = field(default_factory=dict)
    voice: dict | None = None  # espeak-ng settings when sung by espeak-ng


@dataclass(frozen=True)
class ClipPlan:
    seed: int
    duration: int
    song: compose.Song
    parts: tuple[PartPlan, ...]
    mix_augment: dict
    mix_rms_dbfs: float


def clip_seed(seed: int, index: int) -> int:
    """The seed of clip `index` of a run: a clip does not depend on how many clips are made."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def plan_clip(seed: int, soundfonts: list[SoundFont], min_s: int, max_s: int,
              classes=CLASSES, attempt: int = 0) -> ClipPlan:
    rng = np.random.default_rng([seed, attempt])
    duration = int(rng.integers(min_s, max_s + 1))
    song = compose.random_song(rng)
    instruments = choose_instruments(rng, classes)
    spans = schedule(rng, len(instruments), duration)
    parts = tuple(plan_part(rng, name, start, end, soundfonts)
                  for name, (start, end) in zip(instruments, spans))
    mix = augment.draw_params(rng, 0.6, pitch=False)
    return ClipPlan(seed, duration, song, parts, mix, round(float(rng.uniform(-26, -14)), 2))


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


def plan_part(rng, instrument: str, start_s: int, end_s: int, soundfonts: list[SoundFont]) -> PartPlan:
    """Pick a SoundFont at random, then a family of the instrument it can play, a patch,
    an idiom, a mix gain and the augmentation."""
    soundfont, family, patch = _choose_patch(rng, instrument, soundfonts)
    idiom = str(rng.choice(family.idioms))
    # Small pitch shifts come from the synth's pitch bend (no resampling artefacts); doubled
    # courses get a second channel a few cents away.
    detune = round(float(rng.uniform(-25, 25)), 1)
    course = round(float(rng.choice((-1, 1)) * rng.uniform(3, 8)), 1) if family.courses else None
    params = augment.draw_params(rng, pitch=False, noise=False, gain=False,
                                 drive=bool(rng.random() < family.drive), small_body=family.small_body)
    first_channel = compose.DRUM_CHANNEL if idiom in ("drums", "cymbals") else 0
    channels = {first_channel: detune} | ({1: round(detune + course, 1)} if course else {})
    voice, register = None, family.register
    if family.espeak:
        voice = {"voice": str(rng.choice(ESPEAK_VOICES)), "speed": int(rng.integers(60, 91)),
                 "pitch": int(rng.integers(40, 81)), "vibrato_cents": round(float(rng.uniform(0, 35)), 1),
                 "vibrato_hz": round(float(rng.uniform(4.5, 6.5)), 2),
                 "syllables": [str(s) for s in rng.choice(SYLLABLES, size=3, replace=False)]}
        register, channels = _espeak_register(voice), {}
    else:
        params["detune_cents"] = detune
        if course:
            params["course_detune_cents"] = course
    return PartPlan(instrument=instrument, idiom=idiom, register=register, start_s=start_s,
                    end_s=end_s, gain_db=round(float(rng.uniform(-9, 0)), 2), augment=params,
                    seed=int(rng.integers(2**31)), soundfont=None if family.espeak else soundfont,
                    patch=patch, channels_detune_cents=channels, voice=voice)


def _choose_patch(rng, instrument, soundfonts):
    order = rng.permutation(len(soundfonts))
    for index in order:
        soundfont = soundfonts[index]
        options = [(family, [p for p in family.patches if p in soundfont.presets])
                   for family in INSTRUMENTS[instrument]]
        options = [(f, p) for f, p in options if p or (f.espeak and espeak_available())]
        if options:
            family, patches = options[int(rng.integers(len(options)))]
            patch = patches[int(rng.integers(len(patches)))] if patches else None
            return soundfont, family, patch
    raise ValueError(f"none of the SoundFonts given has a patch for {instrument}")


# ---- rendering ---------------------------------------------------------------------------------

def render_part(part: PartPlan, song: compose.Song, duration: int,
                synths: dict[Path, FluidSynth]) -> np.ndarray:
    """The part alone at SAMPLE_RATE over the whole clip: normalised, augmented, gated to its
    seconds and scaled by its mix gain. Only its own seconds are rendered."""
    rng = np.random.default_rng(part.seed)
    notes = compose.window(compose.compose(part.idiom, song, rng, duration, part.register),
                           song, part.start_s, part.end_s)
    seconds = part.end_s - part.start_s
    if part.voice is not None:
        wave = sing(notes, song, part.voice, seconds * SAMPLE_RATE, rng)
    else:
        midi = compose.to_midi(notes, song, part.channels_detune_cents)
        programs = {channel: part.patch for channel in sorted({n.channel for n in notes})}
        rendered = synths[part.soundfont.path].render(midi, programs, seconds * RENDER_RATE)
        wave = to_mono_16k(rendered, RENDER_RATE)
    wave = augment.apply(_normalised(wave), part.augment)  # reverb tails are cut by the fade-out
    wave = _normalised(wave * _fades(len(wave), int(FADE_IN_S * SAMPLE_RATE),
                                     int(FADE_OUT_S * SAMPLE_RATE)))
    whole = np.zeros(duration * SAMPLE_RATE)
    whole[part.start_s * SAMPLE_RATE: part.end_s * SAMPLE_RATE] = wave * 10 ** (part.gain_db / 20)
    return whole


def _normalised(wave: np.ndarray) -> np.ndarray:
    level = augment.rms(wave)
    return wave * (PART_RMS / level) if level > 0 else wave


def audible_seconds(wave: np.ndarray, start_s: int, end_s: int) -> np.ndarray:
    """(seconds,) bool: scheduled seconds whose RMS is within AUDIBLE_DB of the part's RMS."""
    seconds = wave[: len(wave) // SAMPLE_RATE * SAMPLE_RATE].reshape(-1, SAMPLE_RATE)
    per_second = np.sqrt(np.mean(seconds.astype(np.float64) ** 2, axis=1))
    reference = augment.rms(wave[start_s * SAMPLE_RATE: end_s * SAMPLE_RATE])
    scheduled = np.zeros(len(seconds), dtype=bool)
    scheduled[start_s:end_s] = True
    return scheduled & (per_second > reference * 10 ** (AUDIBLE_DB / 20))


@dataclass
class RenderedClip:
    plan: ClipPlan
    audio: np.ndarray  # float32 at SAMPLE_RATE
    part_seconds: list[np.ndarray]  # per part, (duration,) bool audible seconds

    @property
    def second_labels(self) -> np.ndarray:
        """(duration, NUM_CLASSES) multi-hot."""
        labels = np.zeros((self.plan.duration, len(CLASSES)), dtype=np.float32)
        for part, seconds in zip(self.plan.parts, self.part_seconds):
            labels[seconds] = np.maximum(labels[seconds], multi_hot([part.instrument]))
        return labels


def render_plan(plan: ClipPlan, synths: dict[Path, FluidSynth]) -> RenderedClip:
    parts = [render_part(p, plan.song, plan.duration, synths) for p in plan.parts]
    seconds = [audible_seconds(w, p.start_s, p.end_s) for w, p in zip(parts, plan.parts)]
    mix = augment.apply(np.sum(parts, axis=0), plan.mix_augment)
    mix = mix * (10 ** (plan.mix_rms_dbfs / 20) / max(augment.rms(mix), 1e-9))
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:
        mix = mix * (0.98 / peak)
    return RenderedClip(plan, mix.astype(np.float32), seconds)


def render_clip(seed: int, soundfonts: list[SoundFont], synths: dict[Path, FluidSynth], min_s: int,
                max_s: int, classes=CLASSES) -> RenderedClip:
    """The clip of this seed; plans again (deterministically) in the rare case that some
    second ends up without an audible instrument."""
    for attempt in range(MAX_PLAN_ATTEMPTS):
        plan = plan_clip(seed, soundfonts, min_s, max_s, classes, attempt)
        clip = render_plan(plan, synths)
        if clip.second_labels.max(axis=1).all():
            return clip
    raise RuntimeError(f"clip seed {seed}: a second stayed silent in {MAX_PLAN_ATTEMPTS} plans")


def manifest_record(clip: RenderedClip, path: str) -> dict:
    labels = clip.second_labels
    present = labels.max(axis=0)
    groups = group_max(present)
    parts = [{"class": p.instrument, "program": p.patch[1] if p.patch else None,
              "bank": p.patch[0] if p.patch else None,
              "soundfont": p.soundfont.name if p.soundfont else f"{ESPEAK}/en+{p.voice['voice']}",
              "start_s": p.start_s, "end_s": p.end_s, "gain_db": p.gain_db, "augment": p.augment}
             for p in clip.plan.parts]
    return {
        "path": path,
        "duration": clip.plan.duration,
        "second_labels": {c: [int(v) for v in labels[:, i]] for i, c in enumerate(CLASSES)},
        "clip_labels": sorted(c for i, c in enumerate(CLASSES) if present[i]),
        "groups": [g for i, g in enumerate(GROUPS) if groups[i]],
        "parts": parts,
        "seed": clip.plan.seed,
        "soundfonts": sorted({p.soundfont.name for p in clip.plan.parts if p.soundfont}),
    }


# ---- workers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunConfig:
    out: Path
    soundfonts: tuple[Path, ...]
    min_s: int
    max_s: int
    classes: tuple[str, ...]


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
                   soundfonts=[SoundFont(p, s.presets) for p, s in synths.items()])


def _render_task(task: tuple[int, int]) -> dict:
    if "error" in _worker:
        raise _worker["error"]
    index, seed = task
    config = _worker["config"]
    clip = render_clip(seed, _worker["soundfonts"], _worker["synths"], config.min_s, config.max_s,
                       config.classes)
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
                             + ", ".join(p.name for p in DEFAULT_SOUNDFONTS) + ")")
    parser.add_argument("--min-s", type=int, default=10, help="shortest clip, seconds (default 10)")
    parser.add_argument("--max-s", type=int, default=19, help="longest clip, seconds (default 19)")
    parser.add_argument("--classes", help="comma-separated subset of classes to draw from (default all)")
    parser.add_argument("--workers", type=int, default=_cores(),
                        help="processes (default: all cores)")
    parser.set_defaults(func=run)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_soundfonts(given: list[Path] | None) -> tuple[Path, ...]:
    if given:
        for path in given:
            if not path.is_file():
                raise OSError(f"no such SoundFont: {path}")
        paths = tuple(given)
    else:
        paths = tuple(p for p in DEFAULT_SOUNDFONTS if p.is_file())
        if not paths:
            raise OSError("none of the training SoundFonts is installed ("
                          + ", ".join(map(str, DEFAULT_SOUNDFONTS)) + "): apt-get install "
                          "fluid-soundfont-gm csound-soundfont opl3-soundfont, or pass --soundfont")
        for missing in sorted(set(DEFAULT_SOUNDFONTS) - set(paths)):
            print(f"mmgat-train synth: warning: {missing} is missing; rendering without it",
                  file=sys.stderr)
    for path in paths:
        _check_soundfont(path)
    return paths


def _check_soundfont(path: Path):
    """A clear error now rather than in a worker (and before libinstpatch complains on stderr)."""
    with open(path, "rb") as file:
        header = file.read(12)
    if header[:4] != b"RIFF" or header[8:12] not in (b"sfbk", b"DLS "):
        raise ValueError(f"{path} is not a SoundFont (SF2/SF3/DLS)")
    FluidSynth(path).close()


def _parse_classes(text: str | None) -> tuple[str, ...]:
    if not text:
        return CLASSES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CLASSES]
    if unknown or not names:
        raise ValueError(f"unknown classes {unknown}; choose from {', '.join(CLASSES)}")
    return names


def _check_arguments(args):
    if args.clips < 1:
        raise ValueError("--clips must be at least 1")
    if not 1 <= args.min_s <= args.max_s:
        raise ValueError("need 1 <= --min-s <= --max-s")
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")


def run(args) -> int:
    _check_arguments(args)
    classes = _parse_classes(args.classes)
    soundfonts = resolve_soundfonts(args.soundfont)
    if not espeak_available():
        print(f"mmgat-train synth: warning: {ESPEAK} not found; voice uses SoundFont voices only",
              file=sys.stderr)
    out = Path(args.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    config = RunConfig(out, soundfonts, args.min_s, args.max_s, classes)
    settings = {"seed": args.seed, "soundfonts": [p.name for p in soundfonts],
                "min_s": args.min_s, "max_s": args.max_s, "classes": list(classes)}
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
    if not recorded.is_file() or json.loads(recorded.read_text()) != settings:
        raise ValueError(f"{out} holds clips of another synth run; choose a new --out")
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

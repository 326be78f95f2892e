"""The instrument catalogue: which General MIDI patches play each of the 20 classes, and how.

How the classes are made (README-ready):

- drums = kick, snare, side stick and toms on the GM percussion channel; cymbals = hi-hats
  (closed, pedal, open), ride, ride bell, crash, splash and china. Hi-hats count as cymbals
  (they are cymbals, and AudioSet files "Hi-hat" under "Cymbal"). Both come from one
  groove per song, so they lock together when they play at the same time and can also be
  heard apart. Clap, cowbell, tambourine and other auxiliary percussion are never used.
  Besides the GM kits, two recorded acoustic kits (Debian avldrums.lv2-soundfont: Black Pearl
  and Red Zeppelin, multi-sampled real drums) play drums and cymbals only.
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

from dataclasses import dataclass

from mmgat.model.labels import CLASSES
from mmgat.model.train.fluidsynth import Patch


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
# Recorded kits (avldrums.lv2-soundfont): each SoundFont is one kit, its only preset (0, 0), on
# GM note numbers but without note 35 (acoustic bass drum): their kick is 36. They play drums
# and cymbals only, whatever their preset number says.
KIT_SOUNDFONTS = frozenset({"Black_Pearl_4_LV2.sf2", "Red_Zeppelin_4_LV2.sf2"})
KIT_NOTE_MAP = {35: 36}
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

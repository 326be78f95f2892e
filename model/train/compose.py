"""Musical material for the synthetic data set, as mido MIDI.

A `Song` fixes what the parts of one clip share: key, mode, tempo, metre, a looping chord
progression and a groove. Each idiom below writes one part's notes over the whole clip
(`compose(idiom, ...)`); `window` keeps the stretch where the part plays and `to_midi` turns
the notes into a mido file. Times are in beats until `to_midi`; registers are MIDI note ranges.

Idioms: melody (phrases on the scale, chord tones on strong beats), sustained melody, bass line
(roots, root-fifth, eighths, walking), chords (sustained, pulsed, off-beat, waltz), arpeggio,
piano (left-hand bass + right-hand chords or melody), guitar strums on a real tuning, power
chords (root, fifth and octave on the low strings), ukulele strums on the re-entrant G4-C4-E4-A4
tuning, banjo forward rolls in open G with the drone fifth string, mandolin tremolo on doubled
courses, drums and cymbals (one groove, split so that they can play apart or together), and a
dense breakbeat split the same way (sixteenth-note hats, syncopated kick, ghost notes; played on
recorded Hydrogen kits).
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

TICKS_PER_BEAT = 480
MIN_NOTE_SECONDS = 0.1  # shorter fragments of notes cut at window edges are dropped

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# Scale degrees (0 = tonic) of common progressions, one chord per bar.
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 0),
                      (0, 3, 0, 4), (0, 0, 3, 4))
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4))

# General MIDI percussion keys (channel 10). Hi-hats count as cymbals (see synth.py).
KICKS = (35, 36)
SNARES = (38, 40)
SIDE_STICK = 37
TOMS_HIGH_TO_LOW = (50, 48, 47, 45, 43, 41)
CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
CRASHES = (49, 57)
SPLASH, CHINA = 55, 52
RIDES = (51, 59)
RIDE_BELL = 53
DRUM_CHANNEL = 9

GUITAR_TUNING = (40, 45, 50, 55, 59, 64)  # E2 A2 D3 G3 B3 E4, low to high
UKULELE_TUNING = (67, 60, 64, 69)  # G4 C4 E4 A4: re-entrant, strummed from the G string
BANJO_TUNING = (50, 55, 59, 62)  # open G: D3 G3 B3 D4 (the short fifth string is the G4 drone)
BANJO_DRONE = 67


@dataclass(frozen=True)
class Note:
    start: float  # beats
    length: float  # beats
    pitch: int
    velocity: int
    channel: int = 0


@dataclass(frozen=True)
class Song:
    tonic: int  # pitch class
    minor: bool
    tempo_bpm: int
    beats_per_bar: int
    progression: tuple[tuple[int, ...], ...]  # per bar, looping: chord pitch classes, root first
    groove_seed: int  # drums and cymbals draw the same groove from it

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.tempo_bpm

    def beats(self, seconds: float) -> float:
        return seconds / self.seconds_per_beat

    def seconds(self, beats: float) -> float:
        return beats * self.seconds_per_beat

    def chord_at(self, beat: float) -> tuple[int, ...]:
        return self.progression[int(beat // self.beats_per_bar) % len(self.progression)]

    def scale_pitches(self, low: int, high: int) -> list[int]:
        scale = MINOR_SCALE if self.minor else MAJOR_SCALE
        return [p for p in range(low, high + 1) if (p - self.tonic) % 12 in scale]


def random_song(rng: np.random.Generator) -> Song:
    minor = bool(rng.random() < 0.4)
    scale, progressions = (MINOR_SCALE, MINOR_PROGRESSIONS) if minor else (MAJOR_SCALE, MAJOR_PROGRESSIONS)
    tonic = int(rng.integers(12))
    degrees = progressions[int(rng.integers(len(progressions)))]
    chord_size = 4 if rng.random() < 0.25 else 3  # sevenths now and then
    progression = tuple(
        tuple((tonic + scale[(d + 2 * k) % 7]) % 12 for k in range(chord_size)) for d in degrees)
    return Song(tonic=tonic, minor=minor, tempo_bpm=int(rng.integers(70, 151)),
                beats_per_bar=3 if rng.random() < 0.2 else 4, progression=progression,
                groove_seed=int(rng.integers(2**31)))


def _velocity(rng, base: int, spread: int = 10) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def _nearest(pitches, target: float) -> int:
    return min(pitches, key=lambda p: (abs(p - target), p))


def _chord_tones(chord, low: int, high: int) -> list[int]:
    return [p for p in range(low, high + 1) if p % 12 in chord]


def _bars(song: Song, n_beats: float):
    """Start beat and chord of each bar covering n_beats."""
    bar = 0.0
    while bar < n_beats:
        yield bar, song.chord_at(bar)
        bar += song.beats_per_bar


# ---- melodic idioms -------------------------------------------------------------------------

def melody(song, rng, n_beats, register, *, sustained=False) -> list[Note]:
    """Phrases: a one-bar rhythm motif reused with variation; pitches walk the scale in small
    steps and land on chord tones at bar starts. Notes last at most 1.5 s (2.5 s sustained)
    and the gaps between them stay under half a second, so every second of the part sounds."""
    low, high = register
    scale = song.scale_pitches(low, high)
    durations = (1.0, 2.0, 3.0) if sustained else (0.5, 0.5, 1.0, 1.0, 1.5, 2.0)
    if not sustained and song.seconds_per_beat > 0.7:
        durations += (0.25, 0.5)  # slow tempo: quicker figures keep the line moving
    longest = song.beats(2.5 if sustained else 1.5)
    shortest = song.beats(0.12)
    motif = _rhythm(rng, durations, song.beats_per_bar, shortest, longest)
    index = len(scale) // 2
    notes, beat = [], 0.0
    while beat < n_beats:
        rhythm = motif if rng.random() < 0.6 else _rhythm(
            rng, durations, song.beats_per_bar, shortest, longest)
        for offset, length in rhythm:
            start = beat + offset
            if offset == 0.0:
                index = scale.index(_nearest(_chord_tones(song.chord_at(start), low, high) or scale,
                                             scale[index]))
            else:
                index = _step(rng, index, len(scale))
            legato = 0.95 if sustained else float(rng.uniform(0.7, 0.95))
            notes.append(Note(start, length * legato, scale[index], _velocity(rng, 90)))
        beat += song.beats_per_bar
    return notes


def _rhythm(rng, durations, bar_beats, shortest, longest) -> list[tuple[float, float]]:
    """(offset, length) pairs filling one bar."""
    out, t = [], 0.0
    while t < bar_beats - 1e-9:
        length = float(min(rng.choice(durations), bar_beats - t, longest))
        out.append((t, max(length, shortest)))
        t += length
    return out


def _step(rng, index: int, size: int) -> int:
    step = int(rng.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3), p=(.05, .15, .2, .1, .05, .2, .1, .1, .05)))
    index += step
    if index < 0 or index >= size:
        index -= 2 * step
    return int(np.clip(index, 0, size - 1))


def tremolo(song, rng, n_beats, register) -> list[Note]:
    """Mandolin idiom: melody notes re-picked at 10-14 strokes per second, each stroke on two
    doubled strings (channels 0 and 1, detuned by the renderer, a few ms apart)."""
    strokes_per_second = float(rng.uniform(10, 14))
    stroke = song.beats(1.0 / strokes_per_second)
    notes = []
    for note in melody(song, rng, n_beats, register):
        n_strokes = max(1, int(note.length / stroke))
        for k in range(n_strokes):
            start = note.start + k * stroke
            velocity = _velocity(rng, 92 if k % 2 == 0 else 78, 6)  # down/up picking accent
            notes.append(Note(start, stroke * 0.9, note.pitch, velocity, 0))
            notes.append(Note(start + song.beats(rng.uniform(0.003, 0.012)), stroke * 0.9,
                              note.pitch, velocity - 4, 1))
    return notes


def bass_line(song, rng, n_beats, register) -> list[Note]:
    """One pattern per part: roots, root-fifth, driving eighths or a walking line."""
    low, high = register
    pattern = rng.choice(("roots", "root_fifth", "eighths", "walking"))
    beats_per_bar = song.beats_per_bar
    notes = []
    for bar, chord in _bars(song, n_beats):
        root = _nearest(_chord_tones(chord[:1], low, high), low + 7)
        fifth = _nearest(_chord_tones(chord[2:3], low, high), root + 7)
        if pattern == "roots":
            hits = [(0.0, beats_per_bar / 2, root), (beats_per_bar / 2, beats_per_bar / 2, root)]
        elif pattern == "root_fifth":
            hits = [(float(b), 1.0, root if b % 2 == 0 else fifth) for b in range(beats_per_bar)]
        elif pattern == "eighths":
            hits = [(b / 2, 0.5, root if b < 2 * beats_per_bar - 2 else fifth)
                    for b in range(2 * beats_per_bar)]
        else:
            next_root = _nearest(_chord_tones(song.chord_at(bar + beats_per_bar)[:1], low, high),
                                 root)
            line = _walk(song, rng, root, next_root, beats_per_bar, low, high)
            hits = [(float(b), 1.0, p) for b, p in enumerate(line)]
        for offset, length, pitch in hits:
            notes.append(Note(bar + offset, length * 0.9, pitch, _velocity(rng, 95)))
    return notes


def _walk(song, rng, root, target, n, low, high) -> list[int]:
    """Quarter notes from root towards the next bar's root, ending a semitone away from it."""
    scale = song.scale_pitches(low, high)
    line = [root]
    for k in range(1, n - 1):
        towards = np.sign(target - line[-1]) or rng.choice((-1, 1))
        candidates = [p for p in scale if 0 < (p - line[-1]) * towards <= 4]
        line.append(int(rng.choice(candidates)) if candidates else line[-1])
    if n > 1:
        approach = target - 1 if rng.random() < 0.5 else target + 1
        line.append(int(np.clip(approach, low, high)))
    return line


# ---- chordal idioms --------------------------------------------------------------------------

def _voicing(chord, low, high, previous=None) -> list[int]:
    """Close voicing of the chord in the register, near the previous voicing (voice leading)."""
    centre = np.mean(previous) if previous else (low + high) / 2
    tones = _chord_tones(chord, low, high)
    best = None
    for bottom in tones:
        voicing = [bottom]
        for pc in chord:
            if pc == bottom % 12:
                continue
            voicing.append(next((p for p in tones if p > voicing[0] and p % 12 == pc), None))
        if None in voicing or max(voicing) > high:
            continue
        score = abs(np.mean(voicing) - centre)
        if best is None or score < best[0]:
            best = (score, sorted(voicing))
    return best[1] if best else tones[: len(chord)]


def chords(song, rng, n_beats, register) -> list[Note]:
    """Block chords with one rhythm per part: sustained, pulsed, off-beat or waltz."""
    low, high = register
    beats_per_bar = song.beats_per_bar
    options = ("sustain", "pulse", "offbeat") + (("waltz",) if beats_per_bar == 3 else ())
    pattern = rng.choice(options)
    if song.seconds(beats_per_bar) > 2.5 and pattern == "sustain":
        pattern = "pulse"  # a whole bar would leave a long tail-only stretch
    hits = {"sustain": [(0.0, beats_per_bar)],
            "pulse": [(float(b), 1.0) for b in range(beats_per_bar)],
            "offbeat": [(b + 0.5, 0.5) for b in range(beats_per_bar)] + [(0.0, 0.5)],
            "waltz": [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0)]}[pattern]
    notes, previous = [], None
    for bar, chord in _bars(song, n_beats):
        previous = _voicing(chord, low, high, previous)
        for offset, length in hits:
            velocity = _velocity(rng, 80)
            notes.extend(Note(bar + offset, length * 0.92, p, velocity) for p in previous)
    return notes


def arpeggio(song, rng, n_beats, register) -> list[Note]:
    """Broken chords in eighth notes, up, down or up-down."""
    low, high = register
    shape = rng.choice(("up", "down", "updown"))
    step = 0.5
    notes, previous = [], None
    for bar, chord in _bars(song, n_beats):
        previous = _voicing(chord, low, high, previous)
        tones = previous + [previous[0] + 12] if previous[0] + 12 <= high else list(previous)
        order = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[shape]
        for k in range(int(song.beats_per_bar / step)):
            notes.append(Note(bar + k * step, step * 1.6, order[k % len(order)], _velocity(rng, 82)))
    return notes


def piano(song, rng, n_beats, register) -> list[Note]:
    """Two hands: bass notes in the left, chords or a melody in the right."""
    low, high = register
    split = (low + high) // 2
    left = [Note(n.start, n.length, n.pitch, n.velocity - 10)
            for n in bass_line(song, rng, n_beats, (max(low, 33), split - 5))
            if n.start % 1 == 0]  # on the beat only: a left hand, not a bass player's eighths
    right_idiom = chords if rng.random() < 0.5 else melody
    return left + right_idiom(song, rng, n_beats, (split, high))


def _fretted(chord, tuning, position) -> list[int | None]:
    """Per string, the lowest fret from `position` to 4 frets higher that sounds a chord tone,
    or the open string when it is one; None where neither is."""
    out = []
    for open_string in tuning:
        frets = [f for f in range(position, position + 5) if (open_string + f) % 12 in chord]
        if position > 0 and (open_string % 12) in chord:
            frets.append(0)
        out.append(open_string + min(frets) if frets else None)
    return out


def _guitar_shape(chord, position) -> list[int]:
    """Strings from the lowest one sounding the chord root, as on a guitar."""
    pitches = _fretted(chord, GUITAR_TUNING, position)
    first = next((i for i, p in enumerate(pitches) if p is not None and p % 12 == chord[0]), 0)
    return [p for p in pitches[first:] if p is not None]


def _strums(song, rng, n_beats, shape_of, spread_s, accents) -> list[Note]:
    """Strummed shapes: down strokes low-to-high, up strokes high-to-low, strings a few ms apart."""
    if song.beats_per_bar == 4 and rng.random() < 0.7:
        pattern = [(0.0, "D"), (1.0, "D"), (1.5, "U"), (2.5, "U"), (3.0, "D"), (3.5, "U")]
    else:  # down on every beat, up on the off-beats after the first
        pattern = ([(float(b), "D") for b in range(song.beats_per_bar)]
                   + [(b + 0.5, "U") for b in range(1, song.beats_per_bar)])
    notes = []
    for bar, chord in _bars(song, n_beats):
        shape = shape_of(chord)
        for offset, direction in sorted(pattern):
            strings = shape if direction == "D" else shape[::-1]
            velocity = _velocity(rng, accents[direction])
            for k, pitch in enumerate(strings):
                start = bar + offset + song.beats(k * spread_s)
                notes.append(Note(start, 0.95, pitch, velocity))
    return notes


def strum(song, rng, n_beats, register) -> list[Note]:
    """Guitar strums on standard tuning; an open or barre position per part."""
    position = int(rng.choice((0, 0, 2, 3, 5, 7)))
    return _strums(song, rng, n_beats, lambda chord: _guitar_shape(chord, position),
                   float(rng.uniform(0.008, 0.02)), {"D": 90, "U": 72})


def power_chords(song, rng, n_beats, register) -> list[Note]:
    """Power chords, root, fifth and octave from the low E or A string, chugged in eighths or
    struck on the beat (playing.py puts them through an amp)."""
    hits = ([(k / 2, 0.45) for k in range(2 * song.beats_per_bar)] if rng.random() < 0.6
            else [(float(b), 0.9) for b in range(song.beats_per_bar)])
    notes = []
    for bar, chord in _bars(song, n_beats):
        root = _nearest(_chord_tones(chord[:1], GUITAR_TUNING[0], GUITAR_TUNING[1] + 7), GUITAR_TUNING[1])
        for offset, length in hits:
            velocity = _velocity(rng, 100 if offset % 1 == 0 else 84)
            notes.extend(Note(bar + offset, length, pitch, velocity) for pitch in (root, root + 7, root + 12))
    return notes


def ukulele_strum(song, rng, n_beats, register) -> list[Note]:
    """Ukulele strums: all four strings of the re-entrant G4-C4-E4-A4 tuning, so the
    characteristic high G sounds first on a down stroke."""
    position = int(rng.choice((0, 0, 0, 2, 3)))

    def shape(chord):
        return [p for p in _fretted(chord, UKULELE_TUNING, position) if p is not None]
    return _strums(song, rng, n_beats, shape, float(rng.uniform(0.01, 0.025)), {"D": 88, "U": 75})


def banjo_roll(song, rng, n_beats, register) -> list[Note]:
    """Scruggs-style rolls in sixteenth notes (5-10 picks per second at 70-150 bpm): fretted
    open-G chord tones and the G4 drone string."""
    step = 0.25
    roll = rng.choice(("forward", "alternating"))
    order = {"forward": (2, 1, 4, 2, 1, 4, 2, 1), "alternating": (2, 1, 3, 4, 1, 3, 4, 1)}[roll]
    notes = []
    for bar, chord in _bars(song, n_beats):
        strings = [p if p is not None else o
                   for p, o in zip(_fretted(chord, BANJO_TUNING, 0), BANJO_TUNING)]
        strings.append(BANJO_DRONE)  # index 4: the fifth (drone) string
        for k in range(int(song.beats_per_bar / step)):
            pitch = strings[order[k % len(order)] % len(strings)]
            notes.append(Note(bar + k * step, step * 2.5, pitch, _velocity(rng, 88 if k % 4 == 0 else 76)))
    return notes


# ---- percussion ------------------------------------------------------------------------------

def _groove(song: Song, n_beats: float) -> tuple[list[Note], list[Note]]:
    """(drums, cymbals) of one groove drawn from the song's groove seed, so that both parts
    lock together when they play at the same time. Every beat holds at least one hit in each."""
    rng = np.random.default_rng(song.groove_seed)
    beats_per_bar = song.beats_per_bar
    style = "waltz" if beats_per_bar == 3 else rng.choice(("rock", "four_on_floor", "half_time", "swing"))
    kick, snare = int(rng.choice(KICKS)), int(rng.choice(SNARES))
    timekeeper = int(rng.choice(RIDES)) if style == "swing" or rng.random() < 0.25 else CLOSED_HAT
    crash = int(rng.choice(CRASHES))
    drums, cymbals = [], []

    def hit(notes, beat, pitch, velocity, length=0.25):
        notes.append(Note(beat, length, pitch, _velocity(rng, velocity, 8), DRUM_CHANNEL))

    for bar, _ in _bars(song, n_beats):
        fill = (bar // beats_per_bar) % 4 == 3 and rng.random() < 0.6
        for b in range(beats_per_bar):
            beat = bar + b
            in_fill = fill and b >= beats_per_bar - 2
            if in_fill:
                for k, tom in enumerate(sorted(rng.choice(TOMS_HIGH_TO_LOW, size=4, replace=False),
                                                  reverse=True)):
                    hit(drums, beat + k * 0.25, int(tom), 100)
            else:
                _kit_beat(style, b, beat, kick, snare, lambda t, p, v: hit(drums, t, p, v), rng)
            _cymbal_beat(style, b, beat, timekeeper, lambda t, p, v, n=0.25: hit(cymbals, t, p, v, n))
        if (bar // beats_per_bar) % 4 == 0:  # a crash opens every four-bar phrase
            hit(cymbals, bar, crash, 110, length=2.0)
        elif rng.random() < 0.1:
            hit(cymbals, bar, int(rng.choice((SPLASH, CHINA))), 100, length=1.0)
    return drums, cymbals


def _kit_beat(style, b, beat, kick, snare, hit, rng):
    if style == "four_on_floor":
        hit(beat, kick, 110)
        if b % 2 == 1:
            hit(beat, snare, 105)
    elif style == "half_time":
        hit(beat, snare if b == 2 else kick, 105 if b in (0, 2) else 70)
        if b == 1 and rng.random() < 0.5:
            hit(beat + 0.5, kick, 90)
    elif style == "swing":
        hit(beat, kick, 60)  # feathered bass drum
        if b % 2 == 1:
            hit(beat, SIDE_STICK if rng.random() < 0.3 else snare, 85)
        if rng.random() < 0.3:
            hit(beat + 2 / 3, snare, 55)  # comping
    elif style == "waltz":
        hit(beat, kick if b == 0 else snare, 105 if b == 0 else 75)
    else:  # rock
        hit(beat, snare if b % 2 == 1 else kick, 105)
        if b == 2 and rng.random() < 0.5:
            hit(beat + 0.5, kick, 90)


def _cymbal_beat(style, b, beat, timekeeper, hit):
    if style == "swing":
        hit(beat, timekeeper, 90, 1.0)
        if b % 2 == 1:
            hit(beat + 2 / 3, timekeeper, 75, 0.5)
            hit(beat, PEDAL_HAT, 70)
    elif style == "four_on_floor":
        hit(beat, PEDAL_HAT if timekeeper == CLOSED_HAT else timekeeper, 70)
        hit(beat + 0.5, OPEN_HAT if timekeeper == CLOSED_HAT else RIDE_BELL, 90, 0.5)
    else:
        hit(beat, timekeeper, 95)
        hit(beat + 0.5, timekeeper, 70)


def _breakbeat(song: Song, n_beats: float) -> tuple[list[Note], list[Note]]:
    """(drums, cymbals) of a dense breakbeat drawn from the song's groove seed: sixteenth-note
    closed hats with accents (now and then an open hat on an off-beat), a syncopated kick, the
    backbeat snare with ghost notes between; a new kick figure every two bars."""
    rng = np.random.default_rng([song.groove_seed, 1])
    kick, snare = int(rng.choice(KICKS)), int(rng.choice(SNARES))
    ghost_chance = float(rng.uniform(0.15, 0.45))
    drums, cymbals = [], []

    def hit(notes, beat, pitch, velocity, length=0.25):
        notes.append(Note(beat, length, pitch, _velocity(rng, velocity, 8), DRUM_CHANNEL))

    figure = ()
    for bar, _ in _bars(song, n_beats):
        if (bar // song.beats_per_bar) % 2 == 0:  # sixteenths (of the bar) that hold a kick
            figure = (0,) + tuple(int(k) for k in rng.choice(np.arange(2, 4 * song.beats_per_bar),
                                                             size=int(rng.integers(1, 4)), replace=False))
        if (bar // song.beats_per_bar) % 4 == 0:
            hit(cymbals, bar, int(rng.choice(CRASHES)), 110, length=2.0)
        for k in range(4 * song.beats_per_bar):
            beat = bar + k / 4
            backbeat = k % 8 == 4
            if k in figure and not backbeat:
                hit(drums, beat, kick, 110)
            if backbeat:
                hit(drums, beat, snare, 112)
            elif k % 2 == 1 and rng.random() < ghost_chance:
                hit(drums, beat, snare, 38)  # ghost note
            open_hat = k % 4 == 2 and rng.random() < 0.12
            hit(cymbals, beat, OPEN_HAT if open_hat else CLOSED_HAT, 95 if k % 2 == 0 else 62)
    return drums, cymbals


def break_drums(song, rng, n_beats, register) -> list[Note]:
    """Kick and snare (with ghost notes) of the song's breakbeat."""
    return _breakbeat(song, n_beats)[0]


def break_cymbals(song, rng, n_beats, register) -> list[Note]:
    """Sixteenth-note hi-hats and crashes of the song's breakbeat."""
    return _breakbeat(song, n_beats)[1]


def drums(song, rng, n_beats, register) -> list[Note]:
    """Kick, snare, side stick and toms of the song's groove (no cymbals, no hi-hats)."""
    return _groove(song, n_beats)[0]


def cymbals(song, rng, n_beats, register) -> list[Note]:
    """Hi-hats, ride, crashes, splash and china of the song's groove."""
    return _groove(song, n_beats)[1]


IDIOMS = {
    "melody": melody,
    "sustained_melody": lambda song, rng, n, reg: melody(song, rng, n, reg, sustained=True),
    "tremolo": tremolo,
    "bass": bass_line,
    "chords": chords,
    "arpeggio": arpeggio,
    "piano": piano,
    "strum": strum,
    "power_chords": power_chords,
    "ukulele_strum": ukulele_strum,
    "banjo_roll": banjo_roll,
    "drums": drums,
    "cymbals": cymbals,
    "break_drums": break_drums,
    "break_cymbals": break_cymbals,
}


def compose(idiom: str, song: Song, rng: np.random.Generator, seconds: float,
            register: tuple[int, int]) -> list[Note]:
    """Notes of one part in the given idiom over `seconds` of the song."""
    return IDIOMS[idiom](song, rng, song.beats(seconds), register)


def window(notes: list[Note], song: Song, start_s: float, end_s: float) -> list[Note]:
    """The notes sounding in [start_s, end_s), cut to it, with times counted from start_s;
    a note already sounding at start_s is re-struck there, so the part is heard at once."""
    start, end = song.beats(start_s), song.beats(end_s)
    shortest = song.beats(MIN_NOTE_SECONDS)
    out = []
    for note in notes:
        begin, finish = max(note.start, start), min(note.start + note.length, end)
        whole = begin == note.start and finish == note.start + note.length
        if finish > begin and (whole or finish - begin >= shortest):
            out.append(Note(begin - start, finish - begin, note.pitch, note.velocity, note.channel))
    return out


def bend(cents: float) -> int:
    """The pitch-wheel value of a bend by `cents` (default bend range: 2 semitones, clipped)."""
    return int(np.clip(round(cents / 200.0 * 8192), -8192, 8191))


def to_midi(notes: list[Note], song: Song, detune_cents: dict[int, float] | None = None,
            controls=()) -> mido.MidiFile:
    """A type-0 mido file: tempo, a pitch bend per detuned channel, then the notes, and the
    (beat, message) `controls` (bends, pedals: playing.py) after the detune and before the
    note-ons of their tick. Repeated notes of one key on one channel are cut where the next
    one starts."""
    events = []  # (tick, order, message): note-offs sort before note-ons on the same tick
    for channel, cents in sorted((detune_cents or {}).items()):
        events.append((0, 0, mido.Message("pitchwheel", channel=channel, pitch=bend(cents))))
    events += [(int(round(beat * TICKS_PER_BEAT)), 1, message) for beat, message in controls]
    for note in _without_overlaps(notes):
        on = int(round(note.start * TICKS_PER_BEAT))
        off = max(on + 1, int(round((note.start + note.length) * TICKS_PER_BEAT)))
        events.append((on, 2, mido.Message("note_on", channel=note.channel, note=note.pitch,
                                           velocity=note.velocity)))
        events.append((off, 1, mido.Message("note_off", channel=note.channel, note=note.pitch)))
    events.sort(key=lambda e: (e[0], e[1], e[2].channel, e[2].bytes()))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.tempo_bpm))])
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def _without_overlaps(notes: list[Note]) -> list[Note]:
    by_key: dict[tuple[int, int], list[Note]] = {}
    for note in sorted(notes, key=lambda n: (n.start, n.channel, n.pitch)):
        by_key.setdefault((note.channel, note.pitch), []).append(note)
    out = []
    for same_key in by_key.values():
        for note, following in zip(same_key, same_key[1:] + [None]):
            if following is not None and note.start + note.length > following.start:
                note = Note(note.start, following.start - note.start, note.pitch, note.velocity,
                            note.channel)
            if note.length > 0:
                out.append(note)
    return out

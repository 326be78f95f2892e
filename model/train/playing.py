"""Guitars and keys as they are played and recorded (issue 28): a guitar or piano part may be
played with a technique, drawn per part (`play`) as a plain, rounded dict that the manifest
records, and applied when rendering: to the notes (`notes`), as MIDI controls (`controls`:
pitch bend, sustain pedal, expression) and to the rendered part (`effects`: amp and cabinet,
tremolo, chorus, a long reverb). The part's class stays what it is.

Guitar: power chords on an electric guitar through a distorting amp and a cabinet
(compose.power_chords), palm mutes (short re-struck notes, muffled), slides into notes and bends
(pitch bend within FluidSynth's default range of 2 semitones), natural harmonics (an octave or
two up, soft, thin).
Keys: electric piano (GM 4/5 where the SoundFont has them) with tremolo or chorus, ambient
piano (sustain pedal, volume swells, a long wet reverb, muffled), and the sustain pedal with
phrase dynamics.
"""

from __future__ import annotations

from dataclasses import replace

import mido
import numpy as np

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.train import augment, compose

TECHNIQUES = {"guitar": ("power_chords", "palm_mute", "slide", "bend", "harmonics"),
              "piano": ("electric_piano", "ambient", "pedal")}
ELECTRIC_PIANOS = ((0, 4), (0, 5))  # GM Rhodes and DX-style electric pianos
ELECTRIC_GUITARS = ((0, 27), (0, 28), (0, 29), (0, 30))  # clean, muted, overdriven, distortion
HARMONIC_INTERVALS = (12, 19, 24)  # natural harmonics at the 12th, 7th and 5th frets
HIGHEST_PITCH = 108
PALM_MUTE_STEP = 0.5  # beats: a muted note is re-struck in eighths while it lasts
BEND_STEP_S = 0.01  # pitch-bend ramps move in steps this long
SWELL_STEP_S = 0.02  # expression (CC11) swells move in steps this long
SWELL_FROM = 64  # an ambient swell starts at this expression (about 12 dB down)
PEDAL_LIFT = 0.1  # beats after a bar line the sustain pedal goes down again (legato pedalling)
SUSTAIN, EXPRESSION = 64, 11  # MIDI controllers



def play(rng: np.random.Generator, part, share: float):
    """The part (planning.PartPlan), played with a technique this often when it is a guitar or
    piano; its idiom, patch or augmentation change where the technique needs."""
    techniques = TECHNIQUES.get(part.instrument)
    if not techniques or rng.random() >= share:
        return part
    technique = str(rng.choice(techniques))
    params: dict = {"technique": technique}
    if technique == "power_chords":  # an electric guitar; the amp replaces the augmentation's drive
        params |= {"drive_db": augment.uniform(rng, 15, 35, 1), "highpass_hz": augment.uniform(rng, 80, 100, 1),
                   "lowpass_hz": augment.uniform(rng, 4000, 5000, 1), "compress": bool(rng.random() < 0.5)}
        return replace(part, idiom="power_chords", playing=params, patch=_one_of(rng, ELECTRIC_GUITARS, part),
                       augment={k: v for k, v in part.augment.items() if k != "drive"})
    if technique == "palm_mute":
        params |= {"length_s": augment.uniform(rng, 0.08, 0.18), "lowpass_hz": augment.uniform(rng, 1200, 2500, 1)}
    elif technique in ("slide", "bend"):
        params |= {"chance": augment.uniform(rng, 0.3, 0.8), "cents": augment.uniform(rng, 100, 200, 1),
                   "glide_s": augment.uniform(rng, 0.05, 0.25), "seed": int(rng.integers(2**31))}
    elif technique == "harmonics":
        params |= {"interval": int(rng.choice(HARMONIC_INTERVALS)), "velocity": int(rng.integers(35, 66)),
                   "highpass_hz": augment.uniform(rng, 400, 800, 1)}
    elif technique == "electric_piano":
        if rng.random() < 0.5:
            params |= {"tremolo_hz": augment.uniform(rng, 3, 7), "tremolo_depth": augment.uniform(rng, 0.2, 0.5)}
        else:
            params |= {"chorus_hz": augment.uniform(rng, 0.5, 2), "chorus_depth": augment.uniform(rng, 0.2, 0.5)}
        return replace(part, patch=_one_of(rng, ELECTRIC_PIANOS, part), playing=params)
    elif technique == "ambient":
        params |= {"room_size": augment.uniform(rng, 0.8, 0.98), "wet": augment.uniform(rng, 0.3, 0.6),
                   "lowpass_hz": augment.uniform(rng, 1500, 4000, 1), "swell_s": augment.uniform(rng, 0.3, 1.0)}
    else:  # pedal
        params |= {"dynamics_bars": int(rng.integers(2, 5)), "dynamics_depth": int(rng.integers(15, 36))}
    return replace(part, playing=params)


def _one_of(rng, patches, part):
    """One of the patches the part's SoundFont has, else the part's own."""
    present = [p for p in patches if p in part.soundfont.presets]
    return present[int(rng.integers(len(present)))] if present else part.patch


def notes(params: dict, score: list[compose.Note], song: compose.Song) -> list[compose.Note]:
    """The part's notes as the technique plays them (unchanged by the others)."""
    technique = params.get("technique")
    if technique == "palm_mute":
        short = song.beats(params["length_s"])
        return [replace(n, start=n.start + k * PALM_MUTE_STEP, length=min(short, n.length))
                for n in score for k in range(max(1, int(np.ceil(n.length / PALM_MUTE_STEP))))]
    if technique == "harmonics":
        return [replace(n, pitch=_harmonic(n.pitch + params["interval"]),
                        velocity=min(n.velocity, params["velocity"])) for n in score]
    if technique == "pedal":  # phrase dynamics: a swell and a fall every few bars
        period = params["dynamics_bars"] * song.beats_per_bar
        return [replace(n, velocity=int(np.clip(
            n.velocity + params["dynamics_depth"] * np.sin(2 * np.pi * n.start / period), 1, 127)))
            for n in score]
    return score


def _harmonic(pitch: int) -> int:
    while pitch > HIGHEST_PITCH:
        pitch -= 12
    return pitch


def controls(params: dict, score: list[compose.Note], song: compose.Song, start_s: int,
             detune_cents: dict[int, float]) -> list[tuple[float, mido.Message]]:
    """(beat, message) MIDI controls of the technique over the part's notes (times from its
    start, which is `start_s` into the song): pitch bends, sustain pedal, expression."""
    technique = params.get("technique")
    if technique in ("slide", "bend"):
        return _bends(params, score, song, detune_cents)
    if technique in ("ambient", "pedal"):
        bars = _bar_lines(score, song, start_s)
        out = [(beat, _cc(channel, SUSTAIN, value)) for channel in _channels(score) for bar in bars
               for beat, value in ((bar, 0), (bar + PEDAL_LIFT, 127))]
        if technique == "ambient":
            steps = max(1, int(params["swell_s"] / SWELL_STEP_S))
            out += [(bar + song.beats(params["swell_s"]) * k / steps, _cc(channel, EXPRESSION,
                     int(round(SWELL_FROM + (127 - SWELL_FROM) * k / steps))))
                    for channel in _channels(score) for bar in bars for k in range(steps + 1)]
        return out
    return []


def _channels(score) -> list[int]:
    return sorted({n.channel for n in score})


def _cc(channel: int, control: int, value: int) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def _bar_lines(score, song, start_s: int) -> list[float]:
    """The song's bar lines within the part, in beats from its start (0 included)."""
    end = max((n.start + n.length for n in score), default=0.0)
    first = -(song.beats(start_s) % song.beats_per_bar)
    return [0.0] + [float(b) for b in np.arange(first + song.beats_per_bar, end, song.beats_per_bar)]


def _bends(params, score, song, detune_cents) -> list[tuple[float, mido.Message]]:
    """Slides into notes from up to 2 semitones below (now and then above), or bends up after
    the attack that fall back at the next note; on a share of the onsets (a strum is one)."""
    rng = np.random.default_rng(params["seed"])
    onsets = sorted({n.start for n in score})
    strokes = [t for i, t in enumerate(onsets) if i == 0 or t - onsets[i - 1] > song.beats(0.05)]
    glide = song.beats(params["glide_s"])
    steps = max(1, int(params["glide_s"] / BEND_STEP_S))
    out = []
    for start, following in zip(strokes, strokes[1:] + [None]):
        if rng.random() >= params["chance"]:
            continue
        if params["technique"] == "slide":
            sign = -1.0 if rng.random() < 0.8 else 1.0
            curve = [(start + glide * k / steps, sign * params["cents"] * (1 - k / steps)) for k in range(steps + 1)]
        else:
            end = following if following is not None else start + 2 * glide
            begin = start + min(glide, (end - start) / 3)
            rise = min(glide, (end - begin) / 2)
            curve = [(begin + rise * k / steps, params["cents"] * k / steps) for k in range(steps + 1)]
            curve.append((end, 0.0))
        out += [(beat, mido.Message("pitchwheel", channel=channel,
                                    pitch=compose.bend(detune_cents.get(channel, 0.0) + cents)))
                for channel in _channels(score) for beat, cents in curve]
    return out


def effects(params: dict, wave: np.ndarray) -> np.ndarray:
    """The rendered part (mono at SAMPLE_RATE) through the technique's amp, cabinet, filters,
    modulation or reverb; the same length."""
    import pedalboard

    board = pedalboard.Pedalboard()
    if "drive_db" in params:
        board.append(pedalboard.Distortion(params["drive_db"]))
    if "highpass_hz" in params:
        board.append(pedalboard.HighpassFilter(params["highpass_hz"]))
    if "chorus_hz" in params:
        board.append(pedalboard.Chorus(params["chorus_hz"], params["chorus_depth"]))
    if "room_size" in params:
        board.append(pedalboard.Reverb(params["room_size"], wet_level=params["wet"], dry_level=1 - params["wet"]))
    if "lowpass_hz" in params:
        board.append(pedalboard.LowpassFilter(params["lowpass_hz"]))
    if params.get("compress"):
        board.append(pedalboard.Compressor(-20.0, 4.0, 5.0, 100.0))
    out = board(np.asarray(wave, np.float32)[None], SAMPLE_RATE)[0] if len(board) else np.asarray(wave)
    if "tremolo_hz" in params:
        phase = 2 * np.pi * params["tremolo_hz"] * np.arange(len(out)) / SAMPLE_RATE
        out = out * (1 - params["tremolo_depth"] * 0.5 * (1 - np.cos(phase)))
    return out

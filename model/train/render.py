"""Rendering a clip plan (planning.py) into audio and its per-second labels.

A part is rendered alone (FluidSynth at RENDER_RATE, then resampled, sung by espeak-ng, or
played on a Hydrogen kit; a guitar or piano with its technique's notes, MIDI controls and
effects: playing.py), normalised to a common RMS over the seconds it plays, augmented
(augment.py), gated to its seconds and mixed at its gain; a clip's background (negatives.py)
joins the sum, at its signal-to-noise ratio over the music's seconds (or alone), before the mix
is augmented again and goes through the recording conditions. Per-second labels are the
scheduled seconds in which the part is actually audible, plus `voice` where a background's
speech is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmgat.model.audio import SAMPLE_RATE, to_mono_16k
from mmgat.model.labels import CLASSES, GROUPS, group_max, multi_hot
from mmgat.model.train import augment, compose, hydrogen, negatives, playing
from mmgat.model.train.conditions import apply_conditions
from mmgat.model.train.fluidsynth import RENDER_RATE, FluidSynth
from mmgat.model.train.instruments import KIT_NOTE_MAP
from mmgat.model.train.planning import ClipPlan, PartPlan, SoundFont, plan_clip
from mmgat.model.train.singing import ESPEAK, espeak_register, sing

PART_RMS = 0.1  # every part is brought to this RMS over its seconds before its mix gain
AUDIBLE_DB = -30.0  # a scheduled second quieter than this (re the part's RMS) is not labelled
FADE_IN_S, FADE_OUT_S = 0.005, 0.02
MAX_PLAN_ATTEMPTS = 10


def render_part(part: PartPlan, song: compose.Song, duration: int,
                synths: dict[Path, FluidSynth], kits: dict[str, hydrogen.Kit] | None = None) -> np.ndarray:
    """The part alone at SAMPLE_RATE over the whole clip: normalised, augmented, gated to its
    seconds and scaled by its mix gain. Only its own seconds are rendered."""
    rng = np.random.default_rng(part.seed)
    register = part.register or espeak_register(part.voice)
    notes = playing.notes(part.playing, compose.window(
        compose.compose(part.idiom, song, rng, duration, register), song, part.start_s, part.end_s), song)
    seconds = part.end_s - part.start_s
    if part.voice is not None:
        wave = sing(notes, song, part.voice, seconds * SAMPLE_RATE, rng)
    elif part.kit is not None:
        wave = hydrogen.render(kits[part.kit], notes, song, seconds * SAMPLE_RATE, rng)
    else:
        if part.soundfont.recorded_kit:  # the notes the kit lacks, on the ones it has
            notes = [replace(n, pitch=KIT_NOTE_MAP.get(n.pitch, n.pitch)) for n in notes]
        controls = playing.controls(part.playing, notes, song, part.start_s, part.channels_detune_cents)
        midi = compose.to_midi(notes, song, part.channels_detune_cents, controls)
        programs = {channel: part.patch for channel in sorted({n.channel for n in notes})}
        rendered = synths[part.soundfont.path].render(midi, programs, seconds * RENDER_RATE)
        wave = to_mono_16k(rendered, RENDER_RATE)
        if part.playing:  # before the normalisation: the part keeps its level in the mix
            wave = playing.effects(part.playing, wave)
    wave = augment.apply(_normalised(wave), part.augment)  # reverb tails are cut by the fade-out
    wave = _normalised(wave * augment.fades(len(wave), int(FADE_IN_S * SAMPLE_RATE),
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
    voice_seconds: np.ndarray | None = None  # (duration,) bool: a background's speech is heard

    @property
    def second_labels(self) -> np.ndarray:
        """(duration, NUM_CLASSES) multi-hot."""
        labels = np.zeros((self.plan.duration, len(CLASSES)), dtype=np.float32)
        for part, seconds in zip(self.plan.parts, self.part_seconds):
            labels[seconds] = np.maximum(labels[seconds], multi_hot([part.instrument]))
        if self.voice_seconds is not None:
            labels[self.voice_seconds] = np.maximum(labels[self.voice_seconds], multi_hot(["voice"]))
        return labels


def render_plan(plan: ClipPlan, synths: dict[Path, FluidSynth],
                kits: dict[str, hydrogen.Kit] | None = None) -> RenderedClip:
    parts = [render_part(p, plan.song, plan.duration, synths, kits) for p in plan.parts]
    seconds = [audible_seconds(w, p.start_s, p.end_s) for w, p in zip(parts, plan.parts)]
    music = np.sum(parts, axis=0) if parts else np.zeros(plan.duration * SAMPLE_RATE)
    voice_seconds = None
    if plan.background:
        bed = negatives.render_background(plan.background, len(music))
        if plan.background["mode"] == "alone":
            music = bed
        else:
            span = plan.music_seconds()
            level = augment.rms(music[span.start * SAMPLE_RATE: span.stop * SAMPLE_RATE])
            music = music + bed * level * 10 ** (-plan.background["snr_db"] / 20)
        if negatives.vocal(plan.background):
            voice_seconds = audible_seconds(bed, 0, plan.duration)
    mix = augment.apply(music, plan.mix_augment)
    if plan.conditions:
        mix = apply_conditions(mix, plan.conditions)
    mix = mix * (10 ** (plan.mix_rms_dbfs / 20) / max(augment.rms(mix), 1e-9))
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:
        mix = mix * (0.98 / peak)
    return RenderedClip(plan, mix.astype(np.float32), seconds, voice_seconds)


def render_clip(seed: int, soundfonts: list[SoundFont], synths: dict[Path, FluidSynth], min_s: int,
                max_s: int, classes=CLASSES, espeak: bool = False,
                conditions_chance: float = 0.0, kits: dict[str, hydrogen.Kit] | None = None,
                bands: float = 0.0, negatives_share: float = 0.0, playing_share: float = 0.0) -> RenderedClip:
    """The clip of this seed; plans again (deterministically) in the rare case that some
    second of its music ends up without an audible instrument."""
    for attempt in range(MAX_PLAN_ATTEMPTS):
        plan = plan_clip(seed, soundfonts, min_s, max_s, classes, attempt, espeak, conditions_chance,
                         tuple(kits or ()), bands, negatives_share, playing_share)
        clip = render_plan(plan, synths, kits)
        if clip.second_labels[list(plan.music_seconds())].max(axis=1, initial=0).all():
            return clip
    raise RuntimeError(f"clip seed {seed}: a second stayed silent in {MAX_PLAN_ATTEMPTS} plans")


def manifest_record(clip: RenderedClip, path: str) -> dict:
    labels = clip.second_labels
    present = labels.max(axis=0)
    groups = group_max(present)
    parts = [{"class": p.instrument, "program": p.patch[1] if p.patch else None,
              "bank": p.patch[0] if p.patch else None,
              "soundfont": _source(p),
              "start_s": p.start_s, "end_s": p.end_s, "gain_db": p.gain_db, "augment": p.augment,
              **({"playing": p.playing} if p.playing else {})}
             for p in clip.plan.parts]
    return {
        "path": path,
        "duration": clip.plan.duration,
        "second_labels": {c: [int(v) for v in labels[:, i]] for i, c in enumerate(CLASSES)},
        "clip_labels": sorted(c for i, c in enumerate(CLASSES) if present[i]),
        "groups": [g for i, g in enumerate(GROUPS) if groups[i]],
        "parts": parts,
        "seed": clip.plan.seed,
        "conditions": clip.plan.conditions,
        "soundfonts": sorted({_source(p) for p in clip.plan.parts if p.soundfont or p.kit}),
        **({"background": clip.plan.background} if clip.plan.background else {}),
    }


def _source(part: PartPlan) -> str:
    """What plays the part: a SoundFont's file name, hydrogen/KIT or espeak-ng/en+VOICE."""
    if part.soundfont:
        return part.soundfont.name
    return f"{hydrogen.KIT_PREFIX}{part.kit}" if part.kit else f"{ESPEAK}/en+{part.voice['voice']}"


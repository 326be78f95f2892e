"""espeak-ng "singing": sustained syllables (laa, doo, ooh, ...) spoken monotone by an espeak-ng
voice, each resampled to a melody note's pitch with vibrato, so the pitch contour follows the
melody (formants move with the pitch shift; the register is centred on the voice's own pitch
to keep the shift small). Which espeak-ng renders the syllables changes the audio, so a
synth run records `espeak_version()`.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
import soundfile

from mmgat.model.audio import SAMPLE_RATE, to_mono_16k
from mmgat.model.train import compose
from mmgat.model.train.augment import fades

ESPEAK = "espeak-ng"
# Natural-sounding espeak-ng voice variants (no whisper, robot or effect voices).
ESPEAK_VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
                 "klatt2", "klatt3", "Andrea", "Annie", "Alicia", "belinda", "linda", "steph",
                 "david", "john", "paul", "max", "benjamin", "Michael", "edward", "iven")
SUNG_SECONDS = 6.0  # syllables are held this long: enough for the longest note an octave up
SYLLABLES = ("laa", "loo", "daa", "doo", "naa", "noo", "maa", "ooh", "aah", "yeah", "hey", "lee")


@functools.cache
def espeak_version() -> str | None:
    """espeak-ng's version ("eSpeak NG text-to-speech: 1.51"), or None when it is not installed."""
    if shutil.which(ESPEAK) is None:
        return None
    result = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True)
    lines = result.stdout.strip().splitlines() if result.returncode == 0 else []
    return lines[0].split("Data at:")[0].strip() if lines else ESPEAK  # not the install path


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def read_wav(data: bytes) -> np.ndarray:
    """espeak-ng's --stdout WAV, mono at SAMPLE_RATE."""
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return to_mono_16k(samples, rate)


@functools.lru_cache(maxsize=32)  # a part sings 3 syllables; a held syllable is 6 s of audio
def espeak_syllable(syllable: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, float]:
    """A monotone sustained syllable at SAMPLE_RATE (silence trimmed) and its pitch in Hz."""
    text = f'<prosody range="0%">{syllable}</prosody>'  # range 0: no intonation contour
    command = [ESPEAK, "-m", "-v", f"en+{voice}", "-s", str(speed), "-p", str(pitch), "--stdout", text]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise OSError(f"{ESPEAK} -v en+{voice} failed: {result.stderr.decode(errors='replace').strip()}")
    samples = read_wav(result.stdout)
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


def espeak_register(voice: dict) -> tuple[int, int]:
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
    return sung * fades(len(sung), int(0.01 * SAMPLE_RATE), int(0.04 * SAMPLE_RATE))


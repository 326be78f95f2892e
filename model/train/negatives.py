"""Sounds with no instrument in them: the noises of a room a live recognizer hears.

Kinds: white, pink and brown noise; mains hum (50 or 60 Hz with its harmonics, sometimes a
buzz); a fan (filtered noise with its blade tone, slowly pulsing); room tone (a low rumble with
a faint hiss); clicks and pops (a cable, a crackling connector) over a quiet floor; speech
(espeak-ng reading random words) and crowd babble (several espeak-ng talkers at once).

Speech is a human voice: it is labelled `voice` (a recognizer that shows "voice" when people
talk is right, and espeak-ng also sings our `voice` class, so calling its speech "no voice"
would ask the model to tell espeak singing from espeak talking by pitch contour alone). Every
other class is 0 on it. The non-vocal kinds carry all-zero targets.

`draw_bed(rng)` draws one noise as a plain, rounded dict (a manifest records it) and
`render_bed(bed, n)` is a pure function of it: (n,) float at SAMPLE_RATE with unit RMS.
`draw_background(rng, duration)` decides how a clip holds them (planning.py): alone (a clip
without music), around the music (seconds without an instrument before and after it) or under
it (labels unchanged) - see BACKGROUND_MODES.
"""

from __future__ import annotations

import subprocess

import numpy as np

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.train import augment
from mmgat.model.train.singing import ESPEAK, ESPEAK_VOICES, read_wav

NOISE_KINDS = ("white", "pink", "brown", "hum", "fan", "room", "clicks")
VOCAL_KINDS = ("speech", "babble")
KINDS = NOISE_KINDS + VOCAL_KINDS
# How a clip with a background holds it: alone (no music at all), around the music (silent
# seconds before and after it) or under the music (every second still has an instrument).
BACKGROUND_MODES = {"alone": 0.4, "around": 0.3, "under": 0.3}
ALONE_DBFS = (-60.0, -15.0)  # the level of a clip without music (RMS)
UNDER_SNR_DB = (0.0, 35.0)  # music over the noise, over the music's seconds
WORDS = ("the", "a", "and", "we", "you", "they", "it", "is", "was", "will", "can", "not", "so",
         "time", "people", "way", "day", "thing", "man", "world", "life", "hand", "part", "place",
         "week", "case", "point", "number", "group", "problem", "fact", "good", "new", "first",
         "last", "long", "great", "little", "own", "other", "old", "right", "big", "high", "small",
         "large", "next", "early", "young", "important", "few", "public", "bad", "same", "able",
         "know", "take", "see", "come", "think", "look", "want", "give", "use", "find", "tell",
         "ask", "work", "seem", "feel", "try", "leave", "call", "meeting", "tomorrow", "coffee",
         "really", "maybe", "yes", "no", "okay", "well", "about", "over", "after", "before",
         "could", "would", "should", "there", "here", "today", "morning", "evening", "question")



def draw_bed(rng: np.random.Generator, kinds=KINDS) -> dict:
    """One noise of a random kind, with the parameters that make it."""
    kind = str(rng.choice(kinds))
    bed: dict = {"kind": kind, "seed": int(rng.integers(2**31))}
    if kind == "hum":
        bed |= {"hz": float(rng.choice((50.0, 60.0))) * augment.uniform(rng, 0.995, 1.005, 4),
                "harmonics": int(rng.integers(2, 40)), "rolloff": augment.uniform(rng, 0.4, 2.0),
                "buzz": bool(rng.random() < 0.3)}
    elif kind == "fan":
        bed |= {"color": str(rng.choice(("pink", "brown"))), "lowpass_hz": round(float(np.exp(
                    rng.uniform(np.log(300.0), np.log(4000.0)))), 1),
                "blade_hz": augment.uniform(rng, 30.0, 250.0, 1), "blade_db": augment.uniform(rng, -30.0, -8.0, 1),
                "pulse_hz": augment.uniform(rng, 0.3, 3.0), "pulse_depth": augment.uniform(rng, 0.0, 0.3)}
    elif kind == "room":
        bed |= {"lowpass_hz": augment.uniform(rng, 120.0, 600.0, 1), "hiss_db": augment.uniform(rng, -40.0, -15.0, 1)}
    elif kind == "clicks":
        bed |= {"per_second": augment.uniform(rng, 0.3, 6.0), "pop_share": augment.uniform(rng, 0.0, 0.6),
                "floor_db": augment.uniform(rng, -60.0, -25.0, 1)}
    elif kind in VOCAL_KINDS:
        talkers = 1 if kind == "speech" else int(rng.integers(3, 8))
        bed["talkers"] = [{"voice": str(rng.choice(ESPEAK_VOICES)), "speed": int(rng.integers(130, 200)),
                           "pitch": int(rng.integers(25, 75)),
                           "words": [str(w) for w in rng.choice(WORDS, size=60)]}
                          for _ in range(talkers)]
    return bed


def draw_background(rng: np.random.Generator, duration: int, espeak: bool = True) -> dict:
    """How a clip holds its noise: a mode, one or two beds, and their level. The music of an
    `around` clip plays over `music_s` = [start, end), at least 1 s and not the whole clip.
    Speech needs espeak-ng (`espeak`: it is installed)."""
    mode = str(rng.choice(list(BACKGROUND_MODES), p=list(BACKGROUND_MODES.values())))
    if mode == "around" and duration < 2:
        mode = "under"  # no room for seconds around the music
    kinds = KINDS if mode == "alone" and espeak else NOISE_KINDS  # speech alone: labels stay simple
    beds = [draw_bed(rng, kinds) for _ in range(1 if rng.random() < 0.7 else 2)]
    for bed in beds[1:]:
        bed["gain_db"] = augment.uniform(rng, -12.0, 0.0, 2)
    background = {"mode": mode, "beds": beds}
    if mode == "alone":
        background["level_dbfs"] = augment.uniform(rng, *ALONE_DBFS, 2)
    else:
        background["snr_db"] = augment.uniform(rng, *UNDER_SNR_DB, 2)
    if mode == "around":
        length = int(rng.integers(1, duration))
        start = int(rng.integers(0, duration - length + 1))
        background["music_s"] = [start, start + length]
    return background


def vocal(background: dict) -> bool:
    return any(bed["kind"] in VOCAL_KINDS for bed in background.get("beds", ()))


def render_background(background: dict, n: int) -> np.ndarray:
    """The clip's beds mixed, (n,) with unit RMS."""
    total = np.zeros(n)
    for bed in background["beds"]:
        total += render_bed(bed, n) * 10 ** (bed.get("gain_db", 0.0) / 20)
    return total / max(augment.rms(total), 1e-12)


def render_bed(bed: dict, n: int) -> np.ndarray:
    """The noise `bed` describes, (n,) float64 at SAMPLE_RATE with unit RMS."""
    rng = np.random.default_rng(bed["seed"])
    kind = bed["kind"]
    if kind in augment.NOISE_EXPONENTS:
        wave = augment.coloured_noise(n, kind, bed["seed"])
    elif kind == "hum":
        wave = _hum(bed, n, rng)
    elif kind == "fan":
        wave = _fan(bed, n, rng)
    elif kind == "room":
        rumble = augment.equalise(augment.coloured_noise(n, "brown", bed["seed"]),
                                  {"lowpass_hz": bed["lowpass_hz"]})
        hiss = augment.coloured_noise(n, "white", bed["seed"] + 1)
        wave = rumble / max(augment.rms(rumble), 1e-12) + hiss * 10 ** (bed["hiss_db"] / 20)
    elif kind == "clicks":
        wave = _clicks(bed, n, rng)
    else:
        wave = np.sum([_talker(talker, n, rng) for talker in bed["talkers"]], axis=0)
    return wave / max(augment.rms(wave), 1e-12)


def _hum(bed: dict, n: int, rng) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    wave = np.zeros(n)
    for h in range(1, bed["harmonics"] + 1):
        if h * bed["hz"] >= SAMPLE_RATE / 2:
            break
        amplitude = h ** -bed["rolloff"] * (1.5 if bed["buzz"] and h % 2 == 1 else 1.0)
        wave += amplitude * np.sin(2 * np.pi * h * bed["hz"] * t + rng.uniform(0, 2 * np.pi))
    drift = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
    return wave * drift


def _fan(bed: dict, n: int, rng) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    air = augment.equalise(augment.coloured_noise(n, bed["color"], bed["seed"]),
                           {"lowpass_hz": bed["lowpass_hz"], "highpass_hz": 40.0})
    air /= max(augment.rms(air), 1e-12)
    blade = sum(np.sin(2 * np.pi * h * bed["blade_hz"] * t + rng.uniform(0, 2 * np.pi)) / h
                for h in (1, 2, 3))
    pulse = 1 + bed["pulse_depth"] * np.sin(2 * np.pi * bed["pulse_hz"] * t)
    return (air + blade * 10 ** (bed["blade_db"] / 20)) * pulse


def _clicks(bed: dict, n: int, rng) -> np.ndarray:
    wave = augment.coloured_noise(n, "white", bed["seed"]) * 10 ** (bed["floor_db"] / 20)
    count = rng.poisson(bed["per_second"] * n / SAMPLE_RATE)
    for start in sorted(rng.integers(0, n, size=count)):
        if rng.random() < bed["pop_share"]:  # a pop: a low thump
            length = int(rng.uniform(0.03, 0.1) * SAMPLE_RATE)
            t = np.arange(length) / SAMPLE_RATE
            event = np.sin(2 * np.pi * rng.uniform(20, 90) * t) * np.exp(-t / rng.uniform(0.01, 0.04))
        else:  # a click: a few milliseconds of decaying noise
            length = int(rng.uniform(0.0005, 0.005) * SAMPLE_RATE) + 1
            event = rng.standard_normal(length) * np.exp(-np.arange(length) / max(length / 4, 1))
        event = event[: n - start] * rng.uniform(0.2, 1.0) * rng.choice((-1, 1))
        wave[start: start + len(event)] += event
    return wave


def _talker(talker: dict, n: int, rng) -> np.ndarray:
    """One espeak-ng voice reading its words, in phrases with pauses, over n samples."""
    text = " ".join(w + ("." if k % 7 == 6 else "") for k, w in enumerate(talker["words"]))
    command = [ESPEAK, "-v", f"en+{talker['voice']}", "-s", str(talker["speed"]),
               "-p", str(talker["pitch"]), "-g", "8", "--stdout", text]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise OSError(f"{ESPEAK} -v en+{talker['voice']} failed: "
                      f"{result.stderr.decode(errors='replace').strip()}")
    speech = read_wav(result.stdout)
    start = int(rng.integers(0, max(1, len(speech) - n)))  # a talker may be mid-sentence
    speech = np.resize(speech[start:], n) if len(speech) > start else np.zeros(n)
    return speech / max(augment.rms(speech), 1e-12)

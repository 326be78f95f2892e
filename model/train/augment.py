"""Timbre augmentation of mono float waveforms at SAMPLE_RATE.

`draw_params(rng, strength, ...)` draws one set of parameters as a plain, rounded dict (so a
manifest records exactly what was applied), `apply(wave, params)` is a pure function of the
wave and that dict, and `augment(wave, rng, strength)` does both, for on-the-fly use.

Chain: pitch shift -> amp drive (tanh) -> bus compression and saturation (a drum bus) -> EQ
(spectral tilt, peaking bands, high/low-pass band limits, speaker cabinet after drive) ->
reverb (synthetic room, brighter frequencies decaying faster) -> noise (white, pink or brown at
a signal-to-noise ratio) -> gain. `strength` scales the EQ, pitch and gain ranges and the
chances of the optional stages; 0 leaves the wave unchanged. Output has the input's length and
dtype float32.
"""

from __future__ import annotations

import numpy as np

from mmgat.model.audio import SAMPLE_RATE

FFT_PAD = 4096  # zero padding that keeps the (zero-phase) EQ from wrapping around
EQ_GRID_POINTS = 4097  # 2 Hz spacing: fine enough for the smoothest (30 Hz high-pass) curve
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def uniform(rng, low, high, digits=3) -> float:
    """A uniform draw, rounded: the plain numbers a manifest records (every random setting of
    the synthetic data is drawn this way)."""
    return round(float(rng.uniform(low, high)), digits)


def _loguniform(rng, low, high) -> float:
    return round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 1)


def draw_params(rng: np.random.Generator, strength: float = 1.0, *, pitch: bool = True,
                drive: bool = False, small_body: bool = False, reverb: bool = True,
                noise: bool = True, gain: bool = True) -> dict:
    """Random augmentation parameters. `drive`: amp distortion and cabinet (electric guitar);
    `small_body`: thin out the lows and lift the presence region (small plucked instruments)."""
    s = float(strength)
    params: dict = {
        "tilt_db_per_octave": uniform(rng, -2.5 * s, 2.5 * s),
        "eq": [[_loguniform(rng, 120, 6000), uniform(rng, -7 * s, 7 * s, 2), uniform(rng, 0.5, 2)]
               for _ in range(int(rng.integers(0, 4)))],
        "highpass_hz": _loguniform(rng, 30, 250) if rng.random() < 0.5 * s else None,
        "lowpass_hz": _loguniform(rng, 3000, 7500) if rng.random() < 0.35 * s else None,
    }
    if pitch:
        params["pitch_semitones"] = uniform(rng, -0.5 * s, 0.5 * s)
    if drive:
        params["drive"] = {"gain_db": uniform(rng, 6, 30, 1), "asymmetry": uniform(rng, 0, 0.3),
                           "cabinet_hz": _loguniform(rng, 2500, 6000)}
    if small_body:
        params["highpass_hz"] = _loguniform(rng, 180, 350)
        params["eq"].append([_loguniform(rng, 2200, 4200), uniform(rng, 3, 6, 2), 1.0])
    if reverb and rng.random() < 0.6 * s:
        params["reverb"] = {"rt60_s": uniform(rng, 0.2, 1.8), "wet": uniform(rng, 0.05, 0.45),
                            "predelay_ms": uniform(rng, 2, 40, 1), "seed": int(rng.integers(2**31))}
    if noise and rng.random() < 0.5 * s:
        params["noise"] = {"snr_db": uniform(rng, 25, 50, 1),
                           "color": str(rng.choice(list(NOISE_EXPONENTS))), "seed": int(rng.integers(2**31))}
    if gain:
        params["gain_db"] = uniform(rng, -6 * s, 6 * s, 2)
    return params


def apply(wave: np.ndarray, params: dict) -> np.ndarray:
    """The chain described in the module docstring, with the given parameters."""
    out = np.asarray(wave, dtype=np.float64)
    if len(out) == 0:
        return out.astype(np.float32)
    if params.get("pitch_semitones"):
        out = pitch_shift(out, params["pitch_semitones"])
    if params.get("drive"):
        out = overdrive(out, params["drive"]["gain_db"], params["drive"]["asymmetry"])
    if params.get("bus"):
        out = drum_bus(out, **params["bus"])
    out = equalise(out, params)
    if params.get("reverb"):
        out = add_reverb(out, **params["reverb"])
    if params.get("noise"):
        out = add_noise(out, **params["noise"])
    if params.get("gain_db"):
        out = out * 10 ** (params["gain_db"] / 20)
    return out.astype(np.float32)


def augment(wave: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Draw parameters and apply them: the on-the-fly entry point."""
    return apply(wave, draw_params(rng, strength))


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0


def fades(n: int, fade_in: int, fade_out: int) -> np.ndarray:
    """(n,) envelope: linear fade-in over `fade_in` samples, fade-out over the last `fade_out`."""
    envelope = np.ones(n)
    fade_in, fade_out = min(fade_in, n), min(fade_out, n)
    envelope[:fade_in] = np.linspace(0.0, 1.0, fade_in, endpoint=False)
    envelope[n - fade_out:] *= np.linspace(1.0, 0.0, fade_out)
    return envelope


def pitch_shift(wave: np.ndarray, semitones: float) -> np.ndarray:
    """Resampling shift (formants move too; fine for the small shifts used here), same length:
    the input is mirrored at its end so that an upward shift does not run out of samples."""
    ratio = 2.0 ** (semitones / 12.0)
    n = len(wave)
    needed = int(np.ceil(n * ratio)) + 2
    padded = np.pad(wave, (0, max(0, needed - n)), mode="symmetric") if needed > n else wave
    return np.interp(np.arange(n) * ratio, np.arange(len(padded)), padded)


def overdrive(wave: np.ndarray, gain_db: float, asymmetry: float) -> np.ndarray:
    """Asymmetric tanh clipping after a pre-gain, back at the input's RMS."""
    level = rms(wave)
    if level == 0.0:
        return wave
    driven = np.tanh(wave / level * 0.1 * 10 ** (gain_db / 20) + asymmetry) - np.tanh(asymmetry)
    return driven * (level / max(rms(driven), 1e-12))


def draw_bus(rng: np.random.Generator) -> dict:
    """A drum bus as records have one: hard compression, then tape-like saturation."""
    return {"threshold_db": uniform(rng, -30, -10, 2), "ratio": uniform(rng, 3, 12, 2),
            "attack_ms": uniform(rng, 0.5, 15, 2), "release_ms": uniform(rng, 40, 300, 1),
            "saturation_db": uniform(rng, 0, 18, 1)}


def drum_bus(wave: np.ndarray, threshold_db: float, ratio: float, attack_ms: float,
             release_ms: float, saturation_db: float) -> np.ndarray:
    """pedalboard's compressor at the wave's own level, then tanh saturation; back at the input's RMS."""
    import pedalboard

    level = rms(wave)
    if level == 0.0:
        return wave
    scaled = (wave / level * 0.1).astype(np.float32)  # the threshold is relative to -20 dBFS RMS
    squashed = pedalboard.Compressor(threshold_db, ratio, attack_ms, release_ms)(scaled[None], SAMPLE_RATE)[0]
    driven = np.tanh(squashed.astype(np.float64) * 10 ** (saturation_db / 20))
    return driven * (level / max(rms(driven), 1e-12))


def spectral_gain_db(freqs: np.ndarray, params: dict) -> np.ndarray:
    """The EQ stage's magnitude response (dB) at the given frequencies."""
    f = np.maximum(freqs, 1.0)  # the 0 Hz bin is treated as 1 Hz
    octaves = np.log2(f / 1000.0)
    gain = params.get("tilt_db_per_octave", 0.0) * octaves
    for centre, band_gain, width in params.get("eq", ()):
        gain = gain + band_gain * np.exp(-0.5 * (np.log2(f / centre) / (width / 2)) ** 2)
    if params.get("highpass_hz"):
        gain = gain - 10 * np.log10(1 + (params["highpass_hz"] / f) ** 4)  # 2nd-order Butterworth
    for cutoff in (params.get("lowpass_hz"), (params.get("drive") or {}).get("cabinet_hz")):
        if cutoff:
            gain = gain - 10 * np.log10(1 + (f / cutoff) ** 8)  # 4th-order Butterworth
    return gain


def fast_fft_length(n: int) -> int:
    """The smallest 5-smooth number >= n: pocketfft is slow on lengths with large prime factors."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35 << max(0, (-(-n // power35) - 1).bit_length())
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def equalise(wave: np.ndarray, params: dict) -> np.ndarray:
    """Zero-phase FFT filtering with `spectral_gain_db`."""
    size = fast_fft_length(len(wave) + FFT_PAD)
    spectrum = np.fft.rfft(wave, size)
    # The response is smooth: evaluate it on a coarse grid and interpolate to the FFT bins.
    grid = np.linspace(0.0, SAMPLE_RATE / 2, EQ_GRID_POINTS)
    gain = np.interp(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE), grid,
                     10 ** (spectral_gain_db(grid, params) / 20))
    return np.fft.irfft(spectrum * gain, size)[: len(wave)]


def room_impulse(rt60_s: float, predelay_ms: float, seed: int) -> np.ndarray:
    """Unit-energy exponentially decaying noise; the band above ~1 kHz decays twice as fast."""
    rng = np.random.default_rng(seed)
    length = int(min(1.2 * rt60_s, 2.5) * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    noise = rng.standard_normal(length)
    dark = np.convolve(noise, np.ones(8) / 8, mode="same")
    decay = 3 * np.log(10) / rt60_s  # amplitude -60 dB at rt60
    tail = dark * np.exp(-decay * t) + (noise - dark) * np.exp(-2 * decay * t)
    impulse = np.concatenate([np.zeros(int(predelay_ms / 1000 * SAMPLE_RATE)), tail])
    return impulse / np.sqrt(np.sum(impulse**2))


def add_reverb(wave: np.ndarray, rt60_s: float, wet: float, predelay_ms: float, seed: int) -> np.ndarray:
    impulse = room_impulse(rt60_s, predelay_ms, seed)
    size = fast_fft_length(len(wave) + len(impulse))
    reverberant = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(impulse, size), size)[: len(wave)]
    return (1.0 - wet) * wave + wet * reverberant


def coloured_noise(n: int, color: str, seed: int) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum."""
    rng = np.random.default_rng(seed)
    size = fast_fft_length(n)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size)
    freqs[0] = freqs[1] if size > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (NOISE_EXPONENTS[color] / 2), size)[:n]
    return noise / max(rms(noise), 1e-12)


def add_noise(wave: np.ndarray, snr_db: float, color: str, seed: int) -> np.ndarray:
    return wave + coloured_noise(len(wave), color, seed) * rms(wave) * 10 ** (-snr_db / 20)

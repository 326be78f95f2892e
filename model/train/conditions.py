"""Recording conditions of a whole clip: the room it was played in, the device that picked it up
or played it back, the compression and the codec it went through.

`draw_conditions(rng, chance)` draws them as a plain, rounded dict (a manifest records exactly
what was applied) and `apply_conditions(wave, conditions)` is a pure function of the wave and
that dict. pyroomacoustics simulates the room: a shoebox of the drawn size whose wall
absorption gives the drawn reverberation time (Sabine), source and microphone somewhere inside,
image sources up to MAX_IMAGE_ORDER (its ray tracing is not reproducible from a seed, so it is
not used; the late tail of a large hall is therefore shorter than drawn, and the per-part and mix
reverbs of augment.py add synthetic tails). pedalboard does the rest: the device's band limits
and resonances (filters), a compressor, and MP3 or GSM (phone) coding.
"""

from __future__ import annotations

import numpy as np

from mmgat.model.audio import SAMPLE_RATE

ROOM_CHANCE, DEVICE_CHANCE, COMPRESSOR_CHANCE, CODEC_CHANCE = 0.6, 0.6, 0.4, 0.35
MAX_IMAGE_ORDER = 10  # image sources: bounds the cost (~0.03 s a clip) and keeps it exact
WALL_MARGIN_M = 0.4  # source and microphone stay this far from every wall
SABINE_S_PER_M = 0.161  # RT60 = 0.161 s/m x volume / (surface x absorption)
# Devices: (high-pass Hz, low-pass Hz) ranges, how many resonant peaks they add, how often.
# Low-pass corners stay under the 8 kHz Nyquist frequency of 16 kHz audio (a hi-fi one needs none).
DEVICES = {
    "phone": ((250.0, 450.0), (3000.0, 3800.0), 2, 0.15),  # a phone call (GSM-coded when coded)
    "laptop": ((150.0, 350.0), (5000.0, 7500.0), 3, 0.3),  # a laptop's or webcam's microphone
    "small_speaker": ((120.0, 300.0), (4500.0, 7500.0), 3, 0.25),  # re-recorded off a small speaker
    "hifi": ((20.0, 60.0), None, 1, 0.3),  # a good microphone, a slight colour
}


def _round(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


def draw_conditions(rng: np.random.Generator, chance: float = 1.0) -> dict:
    """Each condition is present with its chance times `chance` (0: none, the wave unchanged)."""
    conditions: dict = {}
    if rng.random() < ROOM_CHANCE * chance:
        dims = [_round(rng.uniform(low, high), 2) for low, high in ((2.5, 20.0), (2.5, 15.0), (2.2, 8.0))]
        inside = [[_round(rng.uniform(WALL_MARGIN_M, d - WALL_MARGIN_M), 2) for d in dims] for _ in range(2)]
        # Sabine: walls absorb at most everything, so a large room rings at least this long.
        volume, surface = np.prod(dims), 2 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
        shortest = max(0.15, 1.1 * SABINE_S_PER_M * volume / surface)
        conditions["room"] = {"dims_m": dims, "rt60_s": _round(rng.uniform(shortest, max(1.2, shortest + 0.1)), 2),
                              "source_m": inside[0], "mic_m": inside[1]}
    if rng.random() < DEVICE_CHANCE * chance:
        name = str(rng.choice(list(DEVICES), p=[device[3] for device in DEVICES.values()]))
        (hp_low, hp_high), lowpass, peaks, _ = DEVICES[name]
        conditions["device"] = {
            "name": name, "highpass_hz": _round(rng.uniform(hp_low, hp_high), 1),
            "lowpass_hz": None if lowpass is None else _round(rng.uniform(*lowpass), 1),
            "peaks": [{"hz": _round(np.exp(rng.uniform(np.log(300.0), np.log(6000.0))), 1),
                       "gain_db": _round(rng.uniform(-6.0, 8.0), 2), "q": _round(rng.uniform(0.7, 4.0), 2)}
                      for _ in range(int(rng.integers(0, peaks + 1)))]}
    if rng.random() < COMPRESSOR_CHANCE * chance:
        conditions["compressor"] = {"threshold_db": _round(rng.uniform(-32.0, -12.0), 2),
                                    "ratio": _round(rng.uniform(2.0, 8.0), 2),
                                    "attack_ms": _round(rng.uniform(1.0, 30.0), 2),
                                    "release_ms": _round(rng.uniform(50.0, 400.0), 1)}
    if rng.random() < CODEC_CHANCE * chance:
        phone = conditions.get("device", {}).get("name") == "phone"
        conditions["codec"] = {"gsm": True} if phone else {"mp3_vbr_quality": _round(rng.uniform(2.0, 9.5), 1)}
    return conditions


def apply_conditions(wave: np.ndarray, conditions: dict) -> np.ndarray:
    """The wave (float32 mono at SAMPLE_RATE) as recorded under `conditions`, same length."""
    out = np.asarray(wave, np.float32)
    if "room" in conditions:
        out = in_room(out, conditions["room"])
    board = effects(conditions)
    if len(board):
        out = board(out[None], SAMPLE_RATE)[0]
    out = np.nan_to_num(out[: len(wave)], nan=0.0, posinf=0.0, neginf=0.0)
    return np.pad(out, (0, len(wave) - len(out))).astype(np.float32)


def room_impulse(room: dict) -> np.ndarray:
    """The room's impulse response from source to microphone, its peak at 1."""
    import pyroomacoustics as pra

    absorption, order = pra.inverse_sabine(room["rt60_s"], room["dims_m"])
    shoebox = pra.ShoeBox(room["dims_m"], fs=SAMPLE_RATE, materials=pra.Material(absorption),
                          max_order=min(order, MAX_IMAGE_ORDER))
    shoebox.add_source(room["source_m"])
    shoebox.add_microphone(room["mic_m"])
    shoebox.compute_rir()
    impulse = np.asarray(shoebox.rir[0][0], np.float64)
    return impulse / max(float(np.max(np.abs(impulse))), 1e-12)


def in_room(wave: np.ndarray, room: dict) -> np.ndarray:
    """The wave played in the room, heard at the microphone; the direct sound keeps its time and
    the whole keeps the input's RMS."""
    from scipy.signal import fftconvolve

    impulse = room_impulse(room)
    direct = int(np.argmax(np.abs(impulse)))
    heard = fftconvolve(wave.astype(np.float64), impulse)[direct:direct + len(wave)]
    level_in, level_out = np.sqrt(np.mean(np.square(wave, dtype=np.float64))), np.sqrt(np.mean(heard ** 2))
    return (heard * (level_in / level_out if level_out > 0 else 0.0)).astype(np.float32)


def effects(conditions: dict):
    """The pedalboard chain of the device, compressor and codec (empty when none is drawn)."""
    import pedalboard

    board = pedalboard.Pedalboard()
    if "device" in conditions:
        device = conditions["device"]
        board.append(pedalboard.HighpassFilter(device["highpass_hz"]))
        if device["lowpass_hz"] is not None:
            board.append(pedalboard.LowpassFilter(device["lowpass_hz"]))
        for peak in device["peaks"]:
            board.append(pedalboard.PeakFilter(peak["hz"], peak["gain_db"], peak["q"]))
    if "compressor" in conditions:
        c = conditions["compressor"]
        board.append(pedalboard.Compressor(c["threshold_db"], c["ratio"], c["attack_ms"], c["release_ms"]))
    if "codec" in conditions:
        codec = conditions["codec"]
        board.append(pedalboard.GSMFullRateCompressor() if codec.get("gsm")
                     else pedalboard.MP3Compressor(codec["mp3_vbr_quality"]))
    return board

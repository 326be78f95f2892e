"""Recording conditions: drawn as plain data, applied as a pure function that keeps the length."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.train import conditions

pytest.importorskip("pedalboard")
pytest.importorskip("pyroomacoustics")


def noise(seconds: float = 2.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def band_energy(wave: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_draws_are_plain_data_and_chance_zero_draws_nothing():
    rng = np.random.default_rng(1)
    drawn = [conditions.draw_conditions(rng) for _ in range(200)]
    assert json.loads(json.dumps(drawn)) == drawn
    for name in ("room", "device", "compressor", "codec"):
        assert any(name in d for d in drawn) and not all(name in d for d in drawn)
    assert all(d["codec"] == {"gsm": True} for d in drawn if "codec" in d and d.get("device", {}).get("name") == "phone")
    assert all(conditions.draw_conditions(rng, 0.0) == {} for _ in range(20))


def test_every_condition_keeps_the_length_and_is_reproducible():
    """Over many draws (a low-pass corner past 8 kHz, the Nyquist frequency, crashed pedalboard)."""
    wave, rng = noise(0.5), np.random.default_rng(2)
    for _ in range(150):
        drawn = conditions.draw_conditions(rng)
        out = conditions.apply_conditions(wave, drawn)
        assert out.shape == wave.shape and out.dtype == np.float32 and np.isfinite(out).all()
        np.testing.assert_array_equal(out, conditions.apply_conditions(wave, drawn))
    assert conditions.apply_conditions(wave, {}) is not wave
    np.testing.assert_array_equal(conditions.apply_conditions(wave, {}), wave)


def test_a_phone_keeps_the_voice_band_and_drops_the_rest():
    wave = noise()
    phone = {"device": {"name": "phone", "highpass_hz": 300.0, "lowpass_hz": 3400.0, "peaks": []},
             "codec": {"gsm": True}}
    out = conditions.apply_conditions(wave, phone)
    before = band_energy(wave, 5000, 8000) / band_energy(wave, 500, 3000)
    after = band_energy(out, 5000, 8000) / band_energy(out, 500, 3000)
    assert after < before / 100  # at least 20 dB less above the phone band


def test_a_room_rings_after_the_sound_stops():
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[100:200] = 0.5
    hall = {"room": {"dims_m": [15.0, 10.0, 6.0], "rt60_s": 1.0, "source_m": [3.0, 3.0, 1.5],
                     "mic_m": [9.0, 6.0, 1.5]}}
    out = conditions.apply_conditions(click, hall)
    tail = slice(int(0.1 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE))
    assert np.abs(click[tail]).max() == 0 and np.sqrt(np.mean(out[tail] ** 2)) > 1e-4
    assert np.argmax(np.abs(out)) < 400  # the direct sound stays where it was

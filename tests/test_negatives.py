"""Clips without instruments (negatives.py) and recorded Hydrogen kits (hydrogen.py) in the
synthetic data: labels match what plays, plans without them stay as they were."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.labels import CLASSES
from mmgat.model.train import cli, compose, hydrogen, negatives, planning, render, singing, synth

from test_synth import FLUID_R3, _second_rms_db, fluid_r3, needs_fluidsynth  # noqa: F401 (a fixture)

ESPEAK = singing.espeak_version() is not None
KITS = hydrogen.find_kits(hydrogen.TRAINING_KITS + hydrogen.HELD_OUT_KITS)
needs_kits = pytest.mark.skipif(len(KITS) < 2, reason="needs hydrogen-drumkits (apt)")


# A SoundFont with every patch of the catalogue, for plans only (never rendered).
GM = planning.SoundFont(FLUID_R3 or "FluidR3_GM.sf2", frozenset(
    patch for families in planning.INSTRUMENTS.values() for family in families for patch in family.patches))


@pytest.mark.parametrize("kind", [k for k in negatives.KINDS if ESPEAK or k not in negatives.VOCAL_KINDS])
def test_every_noise_is_unit_rms_and_a_function_of_its_parameters(kind):
    bed = negatives.draw_bed(np.random.default_rng(3), (kind,))
    assert json.loads(json.dumps(bed)) == bed  # a manifest records it exactly
    wave = negatives.render_bed(bed, 2 * SAMPLE_RATE)
    assert wave.shape == (2 * SAMPLE_RATE,) and np.isfinite(wave).all()
    assert abs(np.sqrt(np.mean(wave**2)) - 1) < 1e-6
    assert np.array_equal(wave, negatives.render_bed(bed, 2 * SAMPLE_RATE))


def test_hum_sits_on_the_mains_frequency_and_its_harmonics():
    bed = {"kind": "hum", "seed": 0, "hz": 50.0, "harmonics": 5, "rolloff": 1.0, "buzz": False}
    spectrum = np.abs(np.fft.rfft(negatives.render_bed(bed, SAMPLE_RATE)))  # 1 Hz bins
    peaks = sorted(np.argsort(spectrum)[-5:])
    assert peaks == [50, 100, 150, 200, 250]


def test_backgrounds_draw_every_mode_and_keep_speech_alone():
    rng = np.random.default_rng(0)
    drawn = [negatives.draw_background(rng, 12) for _ in range(300)]
    assert {b["mode"] for b in drawn} == set(negatives.BACKGROUND_MODES)
    assert all(not negatives.vocal(b) for b in drawn if b["mode"] != "alone")
    assert any(negatives.vocal(b) for b in drawn)
    for b in drawn:
        if b["mode"] == "around":
            start, end = b["music_s"]
            assert 0 <= start < end <= 12 and end - start < 12
    assert not any(negatives.vocal(negatives.draw_background(rng, 12, espeak=False)) for _ in range(100))


@needs_fluidsynth
@pytest.mark.parametrize("mode", ["alone", "around", "under"])
def test_seconds_without_instruments_have_all_zero_targets(fluid_r3, mode):
    synths, soundfonts = fluid_r3
    plan = planning.plan_clip(4, soundfonts, 8, 8, classes=("piano",))
    bed = {"kind": "pink", "seed": 1}
    background = {"mode": mode, "beds": [bed], **({"level_dbfs": -30.0} if mode == "alone" else {"snr_db": 10.0})}
    piano = dataclasses.replace(plan.parts[0], start_s=0, end_s=8)
    if mode == "alone":
        plan = dataclasses.replace(plan, parts=(), mix_rms_dbfs=-30.0)
    elif mode == "around":
        background["music_s"] = [2, 5]
        piano = dataclasses.replace(piano, start_s=2, end_s=5)
    plan = dataclasses.replace(plan, parts=() if mode == "alone" else (piano,), background=background,
                               mix_augment={}, conditions={})
    clip = render.render_plan(plan, synths)
    labels = clip.second_labels
    expected = {"alone": [], "around": [2, 3, 4], "under": list(range(8))}[mode]
    assert np.flatnonzero(labels.max(axis=1)).tolist() == expected
    assert set(np.flatnonzero(labels.max(axis=0))) <= {CLASSES.index("piano")}
    level = _second_rms_db(clip.audio)
    assert (level > -80).all()  # the noise plays everywhere
    if mode == "alone":
        assert abs(20 * np.log10(np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2))) + 30) < 0.1
    if mode == "around":
        assert level[2:5].min() > level[[0, 1, 5, 6, 7]].max() + 5  # the music is 10 dB over the noise


@pytest.mark.skipif(not ESPEAK, reason="needs espeak-ng (apt espeak-ng)")
def test_speech_alone_is_voice_and_nothing_else():
    plan = planning.ClipPlan(seed=0, duration=4, song=compose.random_song(np.random.default_rng(0)),
                             parts=(), mix_augment={}, mix_rms_dbfs=-25.0,
                             background={"mode": "alone", "level_dbfs": -25.0,
                                         "beds": [negatives.draw_bed(np.random.default_rng(1), ("speech",))]})
    clip = render.render_plan(plan, {})
    labels = clip.second_labels
    assert labels[:, CLASSES.index("voice")].sum() >= 3
    assert labels[:, [c != "voice" for c in CLASSES]].sum() == 0


def test_names_give_roles():
    assert [hydrogen.role_of(n) for n in (
        "Kick (Tama Superstar 22\")", "c3 - bass drum 1", "Snare Rimshot", "Pearl Side Stick",
        "Tom Low", "Hi-Hat Closed", "VariBreaks Hat 1 Op", "Sabian Hat Pedal", "Paiste Ride",
        "ride-cup", "crash16inch", "China (Paiste Alpha 18\")", "Hand Clap", "Cowbell",
        "VariBreaks Drum 1", "Sample: beats_01-39.flac", "17")] == [
        "kick", "kick", "snare", "side_stick", "tom", "closed_hat", "open_hat", "pedal_hat", "ride",
        "ride_bell", "crash", "crash", None, None, None, None, None]
    assert not set(hydrogen.TRAINING_KITS) & set(hydrogen.HELD_OUT_KITS)


@needs_kits
def test_a_kit_plays_every_second_of_a_breakbeat_and_a_groove():
    song = compose.Song(tonic=0, minor=False, tempo_bpm=100, beats_per_bar=4,
                        progression=((0, 4, 7),), groove_seed=5)
    rng = np.random.default_rng(0)
    for kit in KITS[:3]:
        for idiom in ("break_drums", "break_cymbals", "drums", "cymbals"):
            notes = compose.compose(idiom, song, rng, 4, (0, 127))
            wave = hydrogen.render(kit, notes, song, 4 * SAMPLE_RATE, np.random.default_rng(1))
            assert render.audible_seconds(wave, 0, 4).all(), (kit.name, idiom)  # every second labelled


def test_a_breakbeat_is_dense():
    song = compose.Song(tonic=0, minor=False, tempo_bpm=120, beats_per_bar=4, progression=((0, 4, 7),),
                        groove_seed=3)
    hats = compose.compose("break_cymbals", song, np.random.default_rng(0), 4, (0, 127))
    drums = compose.compose("break_drums", song, np.random.default_rng(0), 4, (0, 127))
    assert sum(n.pitch in (compose.CLOSED_HAT, compose.OPEN_HAT) for n in hats) == 32  # 16ths, 2 bars
    assert sum(n.pitch in compose.SNARES for n in drums) >= 4  # backbeats, ghost notes between
    assert {n.pitch for n in drums} <= set(compose.KICKS + compose.SNARES)


def test_kits_and_backgrounds_leave_the_rest_of_a_plan_as_it_was():
    """They draw from a stream of their own: the other parts, the song and the conditions are
    those of the plan without them, so older runs render the same clips."""
    changed = 0
    for seed in range(40):
        plain = planning.plan_clip(seed, [GM], 10, 12, conditions_chance=1.0)
        extra = planning.plan_clip(seed, [GM], 10, 12, conditions_chance=1.0, kits=("A", "B"))
        assert (plain.song, plain.conditions, plain.duration) == (extra.song, extra.conditions, extra.duration)
        for a, b in zip(plain.parts, extra.parts, strict=True):
            if b.kit:
                assert b.instrument in ("drums", "cymbals") and b.soundfont is None and b.kit in ("A", "B")
                changed += 1
            else:
                assert a == b
    assert changed


def test_band_clips_put_a_kit_over_guitars_and_keys_down_to_minus_12_db():
    plans = [planning.plan_clip(seed, [GM], 10, 12, kits=("A",), bands=1.0) for seed in range(30)]
    for plan in plans:
        kits = [p for p in plan.parts if p.kit]
        assert kits and all(planning.BAND_KIT_DB[0] <= p.gain_db <= planning.BAND_KIT_DB[1] for p in kits)
        assert all(planning.BAND_UNDER_DB[0] <= p.gain_db <= planning.BAND_UNDER_DB[1]
                   for p in plan.parts if not p.kit)
    leads = {p.instrument for plan in plans for p in plan.parts if not p.kit}
    assert "guitar" in leads and leads <= {"guitar", "piano", "organ", "synthesizer", "voice", "bass"}


@needs_fluidsynth
@needs_kits
def test_a_run_records_its_kits_and_shares_and_refuses_unknown_kits(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["synth", "--out", str(out), "--clips", "2", "--seed", "3", "--soundfont", str(FLUID_R3),
            "--min-s", "4", "--max-s", "5", "--workers", "1", "--conditions", "0"]
    assert cli.main([*args, "--kits", KITS[0].name, "--negatives", "0.5", "--bands", "0.5"]) == 0
    settings = json.loads((out / synth.SETTINGS_FILE).read_text())
    assert (settings["kits"], settings["negatives"], settings["bands"]) == ([KITS[0].name], 0.5, 0.5)
    assert settings["kit_sha256"] == [KITS[0].sha256]
    capsys.readouterr()
    assert cli.main([*args, "--kits", "NoSuchKit"]) == 1
    assert capsys.readouterr().err.strip() == f"mmgat-train: error: no Hydrogen kit NoSuchKit in {hydrogen.KIT_DIR}"
    assert cli.main([*args, "--negatives", "1.5"]) == 1
    assert capsys.readouterr().err.strip() == "mmgat-train: error: --negatives must be in 0..1"

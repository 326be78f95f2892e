"""Guitars and keys as they are played and recorded (playing.py): techniques change the guitar
and piano parts and only them, keep their labels and levels, are drawn deterministically from a
stream of their own (`--playing 0` plans and renders what was rendered before) and are recorded."""

from __future__ import annotations

import dataclasses
import json

import mido
import numpy as np

from mmgat.model.train import augment, cli, compose, planning, playing, render, synth
from mmgat.model.train.fluidsynth import RENDER_RATE

from test_negatives import GM
from test_synth import FLUID_R3, fluid_r3, needs_fluidsynth  # noqa: F401 (a fixture)

TECHNIQUES = {t for techniques in playing.TECHNIQUES.values() for t in techniques}
KEYS = ("guitar", "piano")


def _played_plans(soundfonts, classes=None, seeds=range(200)):
    """(plain plan, played plan) for the first seed that shows each technique."""
    found = {}
    for seed in seeds:
        played = planning.plan_clip(seed, soundfonts, 4, 5, classes=classes or planning.CLASSES,
                                    playing_share=1.0)
        for part in played.parts:
            if part.playing and part.playing["technique"] not in found:
                plain = planning.plan_clip(seed, soundfonts, 4, 5, classes=classes or planning.CLASSES)
                found[part.playing["technique"]] = (plain, played)
        if len(found) == len(TECHNIQUES):
            return found
    raise AssertionError(f"techniques never drawn: {TECHNIQUES - set(found)}")


def test_techniques_touch_guitars_and_pianos_only_and_zero_plans_as_before():
    for plain, played in _played_plans([GM]).values():
        seed = plain.seed
        assert planning.plan_clip(seed, [GM], 4, 5, playing_share=0.0) == plain
        assert planning.plan_clip(seed, [GM], 4, 5, playing_share=1.0) == played  # a function of the seed
        assert (plain.song, plain.duration, plain.conditions, plain.mix_augment) == \
            (played.song, played.duration, played.conditions, played.mix_augment)
        for a, b in zip(plain.parts, played.parts, strict=True):
            if a.instrument not in KEYS:
                assert a == b
                continue
            assert b.playing["technique"] in playing.TECHNIQUES[a.instrument]
            assert json.loads(json.dumps(b.playing)) == b.playing  # the manifest records it exactly
            same = ("instrument", "start_s", "end_s", "gain_db", "seed", "soundfont", "register")
            assert all(getattr(a, f) == getattr(b, f) for f in same)
    shares = [sum(bool(p.playing) for p in planning.plan_clip(s, [GM], 4, 5, classes=KEYS,
                                                             playing_share=0.3).parts) for s in range(60)]
    parts = sum(len(planning.plan_clip(s, [GM], 4, 5, classes=KEYS).parts) for s in range(60))
    assert 0.15 < sum(shares) / parts < 0.45


@needs_fluidsynth
def test_each_technique_changes_its_part_keeps_the_labels_and_renders_the_same_twice(fluid_r3):
    synths, soundfonts = fluid_r3
    for technique, (plain, played) in _played_plans(soundfonts, ("guitar", "piano", "bass")).items():
        for a, b in zip(plain.parts, played.parts, strict=True):
            before, after = (render.render_part(p, plain.song, plain.duration, synths) for p in (a, b))
            assert np.isfinite(after).all() and after.shape == before.shape
            assert np.array_equal(before, after) == (not b.playing), technique
            assert np.isclose(augment.rms(after), augment.rms(before), rtol=1e-4)  # its level in the mix
        clip, again = render.render_plan(played, synths), render.render_plan(played, synths)
        assert np.array_equal(clip.audio, again.audio)
        assert np.array_equal(clip.second_labels, render.render_plan(plain, synths).second_labels), technique
        record = render.manifest_record(clip, "clips/000000.wav")
        assert [p.get("playing", {}) for p in record["parts"]] == [p.playing for p in played.parts]


def test_palm_mutes_harmonics_and_dynamics_rewrite_the_notes():
    song = compose.random_song(np.random.default_rng(0))
    notes = [compose.Note(0.0, 2.0, 50, 90), compose.Note(2.0, 0.4, 100, 50)]
    muted = playing.notes({"technique": "palm_mute", "length_s": 0.1}, notes, song)
    assert [n.start for n in muted] == [0.0, 0.5, 1.0, 1.5, 2.0]  # re-struck in eighths
    assert all(n.length <= song.beats(0.1) + 1e-9 for n in muted)
    high = playing.notes({"technique": "harmonics", "interval": 19, "velocity": 40}, notes, song)
    assert [(n.pitch, n.velocity) for n in high] == [(69, 40), (107, 40)]  # 119 folds an octave down
    assert playing.notes({"technique": "slide"}, notes, song) is notes


def test_slides_end_on_the_detuned_pitch_and_pedals_follow_the_bar_lines():
    song = dataclasses.replace(compose.random_song(np.random.default_rng(1)), beats_per_bar=4)
    notes = [compose.Note(float(b), 1.0, 60, 80) for b in range(8)]
    slide = {"technique": "slide", "chance": 1.0, "cents": 150.0, "glide_s": 0.1, "seed": 0}
    bends = playing.controls(slide, notes, song, 0, {0: 10.0})
    assert len({beat for beat, _ in bends if beat == int(beat)}) == 8  # one slide per note
    assert bends[-1][1].pitch == compose.bend(10.0)
    assert min(m.pitch for _, m in bends) <= compose.bend(10.0 - 150.0) or max(m.pitch for _, m in bends) >= \
        compose.bend(10.0 + 150.0)
    ambient = {"technique": "ambient", "swell_s": 0.5}
    messages = playing.controls(ambient, notes, song, 2 * song.seconds_per_beat, {0: 0.0})  # from beat 2
    pedal = [(beat, m.value) for beat, m in messages if m.control == playing.SUSTAIN]
    assert pedal == [(0.0, 0), (playing.PEDAL_LIFT, 127), (2.0, 0), (2.0 + playing.PEDAL_LIFT, 127),
                     (6.0, 0), (6.0 + playing.PEDAL_LIFT, 127)]
    swell = [m.value for _, m in messages if m.control == playing.EXPRESSION]
    assert swell[0] == playing.SWELL_FROM and max(swell) == 127


@needs_fluidsynth
def test_fluidsynth_plays_the_bends_and_the_sustain_pedal(fluid_r3):
    synths, _ = fluid_r3
    song = compose.Song(0, False, 120, 4, ((0, 4, 7),), 0)  # 0.5 s a beat
    note = [compose.Note(0.0, 1.0, 57, 100)]  # A3 on a piano

    def render(controls):
        midi = compose.to_midi(note, song, {0: 0.0}, controls)
        return synths[FLUID_R3].render(midi, {0: (0, 0)}, RENDER_RATE * 2).astype(np.float64)

    def peak_hz(wave):
        spectrum = np.abs(np.fft.rfft(wave[: RENDER_RATE // 2] * np.hanning(RENDER_RATE // 2)))
        return np.argmax(spectrum) * 2.0  # 2 Hz bins

    plain = render([])
    bent = render([(0.0, mido.Message("pitchwheel", channel=0, pitch=compose.bend(200.0)))])
    assert abs(peak_hz(bent) / peak_hz(plain) - 2 ** (2 / 12)) < 0.01  # a whole tone up
    pedalled = render([(0.0, playing._cc(0, playing.SUSTAIN, 127))])
    after_release = slice(int(0.7 * RENDER_RATE), int(1.2 * RENDER_RATE))  # the note ends at 0.5 s
    assert np.sqrt(np.mean(pedalled[after_release] ** 2)) > 3 * np.sqrt(np.mean(plain[after_release] ** 2))


@needs_fluidsynth
def test_a_run_records_its_share_and_refuses_one_outside_0_1(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["synth", "--out", str(out), "--clips", "1", "--seed", "3", "--soundfont", str(FLUID_R3),
            "--min-s", "3", "--max-s", "3", "--workers", "1", "--conditions", "0", "--negatives", "0",
            "--kits", "none", "--classes", "guitar"]
    assert cli.main([*args, "--playing", "1"]) == 0
    assert json.loads((out / synth.SETTINGS_FILE).read_text())["playing"] == 1.0
    record = json.loads((out / "manifest.jsonl").read_text())
    assert record["parts"][0]["playing"]["technique"] in playing.TECHNIQUES["guitar"]
    assert cli.main([*args, "--playing", "0.5"]) == 1  # another run: refused
    capsys.readouterr()
    assert cli.main([*args, "--playing", "1.5"]) == 1
    assert capsys.readouterr().err.strip() == "mmgat-train: error: --playing must be in 0..1"

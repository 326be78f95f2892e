"""`mmgat-train synth`: labels match the audio, runs are reproducible, the manifest is sound."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.labels import CLASSES, ONSET_GROUPS
from mmgat.model.train import augment, cli, compose, fluidsynth, planning, render, singing, synth

FLUID_R3 = synth.find_soundfont("FluidR3_GM.sf2")
ESPEAK = singing.espeak_version() is not None


def _fluidsynth_ready() -> bool:
    try:
        fluidsynth.libfluidsynth()
    except OSError:
        return False
    return FLUID_R3 is not None


needs_fluidsynth = pytest.mark.skipif(
    not _fluidsynth_ready(),
    reason="needs libfluidsynth (apt fluidsynth) and FluidR3_GM.sf2 (apt fluid-soundfont-gm)")
MANIFEST_KEYS = {"path", "duration", "second_labels", "clip_labels", "groups", "parts", "seed", "soundfonts",
                 "conditions"}
PART_KEYS = {"class", "program", "bank", "soundfont", "start_s", "end_s", "gain_db", "augment"}


@pytest.fixture(scope="module")
def fluid_r3():
    synths = {FLUID_R3: fluidsynth.FluidSynth(FLUID_R3)}
    yield synths, [planning.SoundFont(FLUID_R3, synths[FLUID_R3].presets)]
    synths[FLUID_R3].close()


def _synth(out, seed, clips, workers=1, *extra):
    """A small run; without backgrounds, Hydrogen kits and playing techniques unless `extra`
    asks for them."""
    return cli.main(["synth", "--out", str(out), "--clips", str(clips), "--seed", str(seed),
                     "--soundfont", str(FLUID_R3), "--min-s", "10", "--max-s", "12",
                     "--workers", str(workers), "--negatives", "0", "--kits", "none", "--playing", "0", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small runs: seed 7 on one process and on two, and seed 8."""
    out = {name: tmp_path_factory.mktemp(name) for name in ("serial", "parallel", "other")}
    codes = {"serial": _synth(out["serial"], 7, 3), "parallel": _synth(out["parallel"], 7, 3, 2),
             "other": _synth(out["other"], 8, 3)}
    return out, codes


def _records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _second_rms_db(audio):
    seconds = audio[: len(audio) // SAMPLE_RATE * SAMPLE_RATE].reshape(-1, SAMPLE_RATE)
    return 20 * np.log10(np.sqrt(np.mean(seconds.astype(np.float64) ** 2, axis=1)) + 1e-12)


# ---- labels match the audio ---------------------------------------------------------------------

@needs_fluidsynth
@pytest.mark.parametrize("instrument", ["piano", "drums", "cymbals", "mandolin", "voice", "bass"])
def test_energy_only_where_the_labels_say(fluid_r3, instrument):
    synths, soundfonts = fluid_r3
    plan = planning.plan_clip(11, soundfonts, 10, 10, classes=(instrument,), espeak=ESPEAK)
    part = dataclasses.replace(plan.parts[0], start_s=3, end_s=6)
    clip = render.render_plan(dataclasses.replace(plan, parts=(part,)), synths)

    labels = clip.second_labels[:, CLASSES.index(instrument)]
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    level = _second_rms_db(clip.audio)
    outside = np.r_[level[:3], level[7:]]  # second 6 may hold the room's reverb tail
    assert level[3:6].min() - outside.max() > 20.0, level.round(1)


def test_hi_hats_are_cymbals_and_not_drums():
    song = compose.random_song(np.random.default_rng(3))
    drum_keys = {n.pitch for n in compose.drums(song, None, 64, None)}
    cymbal_keys = {n.pitch for n in compose.cymbals(song, None, 64, None)}
    hats = {compose.CLOSED_HAT, compose.PEDAL_HAT, compose.OPEN_HAT}
    every_cymbal = hats | set(compose.CRASHES) | set(compose.RIDES) | {
        compose.RIDE_BELL, compose.SPLASH, compose.CHINA}
    assert drum_keys and not drum_keys & every_cymbal
    assert cymbal_keys and cymbal_keys <= every_cymbal


def test_ukulele_strums_the_re_entrant_tuning():
    song = compose.Song(tonic=0, minor=False, tempo_bpm=100, beats_per_bar=4,
                        progression=((0, 4, 7),), groove_seed=0)  # C major throughout
    notes = compose.ukulele_strum(song, np.random.default_rng(0), 4, None)
    first_down_stroke = [n.pitch for n in sorted(notes, key=lambda n: n.start)[:4]]
    assert first_down_stroke == [67, 60, 64, 72]  # G4 C4 E4 C5: the open-position C chord


def test_schedule_leaves_no_second_empty():
    rng = np.random.default_rng(0)
    for _ in range(200):
        duration = int(rng.integers(1, 20))
        spans = planning.schedule(rng, int(rng.integers(1, 6)), duration)
        assert all(0 <= start < end <= duration for start, end in spans)
        covered = np.zeros(duration, bool)
        for start, end in spans:
            covered[start:end] = True
        assert covered.all()


def test_augment_keeps_length_and_strength_zero_is_identity():
    wave = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    assert np.allclose(augment.augment(wave, np.random.default_rng(1), strength=0.0), wave, atol=1e-6)
    params = augment.draw_params(np.random.default_rng(2), drive=True, small_body=True)
    changed = augment.apply(wave, params)
    assert changed.shape == wave.shape and changed.dtype == np.float32
    assert not np.allclose(changed, wave)
    assert np.array_equal(changed, augment.apply(wave, json.loads(json.dumps(params))))


# ---- the command --------------------------------------------------------------------------------

@needs_fluidsynth
def test_same_seed_same_bytes_other_seed_other_clips(runs):
    out, codes = runs
    assert codes == {"serial": 0, "parallel": 0, "other": 0}
    serial, parallel, other = (out[k] for k in ("serial", "parallel", "other"))
    assert (serial / "manifest.jsonl").read_bytes() == (parallel / "manifest.jsonl").read_bytes()
    for record in _records(serial):
        assert (serial / record["path"]).read_bytes() == (parallel / record["path"]).read_bytes()
    assert (serial / "manifest.jsonl").read_bytes() != (other / "manifest.jsonl").read_bytes()
    first = _records(serial)[0]["path"]
    assert (serial / first).read_bytes() != (other / first).read_bytes()


@needs_fluidsynth
def test_cli_end_to_end_and_manifest_schema(runs):
    out, codes = runs
    assert codes["serial"] == 0
    records = _records(out["serial"])
    assert len(records) == 3 and len(list((out["serial"] / "clips").glob("*.wav"))) == 3
    assert json.loads((out["serial"] / "synth.json").read_text())["conditions"] == 1.0  # the default
    assert any(record["conditions"] for record in records)  # rooms, devices, ... recorded per clip
    for record in records:
        assert set(record) == MANIFEST_KEYS
        duration = record["duration"]
        assert isinstance(duration, int) and 10 <= duration <= 12
        info = soundfile.info(str(out["serial"] / record["path"]))
        assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, duration * SAMPLE_RATE)
        labels = np.array([record["second_labels"][c] for c in CLASSES])  # every class present
        assert set(record["second_labels"]) == set(CLASSES)
        assert labels.shape == (len(CLASSES), duration) and set(np.unique(labels)) <= {0, 1}
        assert labels.max(axis=0).min() == 1, "a second without any instrument"
        assert record["clip_labels"] == sorted(c for c, row in zip(CLASSES, labels) if row.any())
        assert record["groups"] == [g for g, members in ONSET_GROUPS.items()
                                    if set(members) & set(record["clip_labels"])]
        assert 1 <= len(record["parts"]) <= 5
        for part in record["parts"]:
            assert set(part) == PART_KEYS
            assert 0 <= part["start_s"] < part["end_s"] <= duration
            assert part["class"] in record["clip_labels"]
        assert record["soundfonts"] == [FLUID_R3.name] or not record["soundfonts"]
        assert isinstance(record["seed"], int)
    distribution = json.loads((out["serial"] / "label_distribution.json").read_text())
    assert distribution["clips"] == 3
    assert distribution["classes"]["drums"]["clips"] == sum("drums" in r["clip_labels"] for r in records)


@needs_fluidsynth
def test_a_rerun_resumes_the_same_run_and_refuses_another(runs, tmp_path, capsys):
    serial = runs[0]["serial"]
    assert _synth(tmp_path, 7, 2) == 0
    first = (tmp_path / "clips" / "000000.wav").stat().st_mtime_ns
    with open(tmp_path / "manifest.jsonl", "a") as manifest:
        manifest.write('{"path": "clips/0000')  # a line cut short by a crash
    killed_mid_clip = tmp_path / "clips" / ".000002.partial.wav"  # a worker killed while writing
    killed_mid_clip.write_bytes(b"RIFF\x00\x00")
    assert _synth(tmp_path, 7, 3) == 0  # renders clip 2 only
    assert not killed_mid_clip.exists()
    assert (tmp_path / "clips" / "000000.wav").stat().st_mtime_ns == first
    assert (tmp_path / "manifest.jsonl").read_bytes() == (serial / "manifest.jsonl").read_bytes()
    assert (tmp_path / "clips/000002.wav").read_bytes() == (serial / "clips/000002.wav").read_bytes()
    assert json.loads((tmp_path / "label_distribution.json").read_text())["clips"] == 3
    capsys.readouterr()
    assert _synth(tmp_path, 8, 3) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "another synth run (seed differ)" in error
    settings = json.loads((tmp_path / "synth.json").read_text())
    (tmp_path / "synth.json").write_text(json.dumps({**settings, "espeak": "another version"}))
    assert _synth(tmp_path, 7, 3) == 1  # what the audio depends on changed: no resume
    assert "another synth run (espeak differ)" in capsys.readouterr().err


def test_planning_is_a_pure_function_of_the_seed_and_the_settings():
    presets = frozenset(patch for family in planning.INSTRUMENTS["voice"] for patch in family.patches)
    soundfonts = [planning.SoundFont(Path("a.sf2"), presets)]
    plans = [planning.plan_clip(5, soundfonts, 10, 12, classes=("voice",), espeak=True)
             for _ in range(2)]
    assert plans[0] == plans[1]
    sung = [p for seed in range(40) for p in planning.plan_clip(
        seed, soundfonts, 10, 12, classes=("voice",), espeak=True).parts if p.voice]
    assert sung and all(p.register is None for p in sung)  # the voice's own: found when rendering
    unsung = [p for seed in range(40) for p in planning.plan_clip(
        seed, soundfonts, 10, 12, classes=("voice",), espeak=False).parts]
    assert not any(p.voice for p in unsung)


@needs_fluidsynth
def test_without_conditions_a_run_records_none_and_sounds_drier(tmp_path, runs):
    """--conditions 0: no key in synth.json (as runs from before them), no conditions per clip,
    the same plans otherwise: the parts and labels of seed 7 are those of the default run."""
    assert _synth(tmp_path, 7, 3, 1, "--conditions", "0") == 0
    assert "conditions" not in json.loads((tmp_path / "synth.json").read_text())
    plain, conditioned = _records(tmp_path), _records(runs[0]["serial"])
    assert all(record["conditions"] == {} for record in plain)
    for a, b in zip(plain, conditioned):
        assert a["parts"] == b["parts"] and a["second_labels"] == b["second_labels"]


@needs_fluidsynth
def test_join_lists_every_clip_of_both_sets_through_links(runs, tmp_path, capsys):
    from mmgat.model.train.data import load_data, synth_split

    sets = [runs[0]["serial"], runs[0]["other"]]  # run seeds 7 and 8
    joined = tmp_path / "joined"
    assert cli.main(["join", "--out", str(joined), *map(str, sets)]) == 0
    entries = _records(joined)
    assert [e["seed"] for e in entries] == [e["seed"] for s in sets for e in _records(s)]
    assert all((joined / e["path"]).resolve() == (sets[int(e["path"][0])] / e["path"][2:]).resolve()
               for e in entries)
    assert len(load_data(joined, "mel")) == 6  # readable as one set
    assert cli.main(["join", "--out", str(tmp_path / "twice"), str(sets[0]), str(sets[0])]) == 1
    assert "both hold clip seed" in capsys.readouterr().err
    train = tmp_path / "train"  # one split's clips only
    assert cli.main(["join", "--out", str(train), "--split", "train", *map(str, sets)]) == 0
    kept = [e["seed"] for e in entries if synth_split(e["seed"]) == "train"]
    assert 0 < len(kept) < len(entries) and [e["seed"] for e in _records(train)] == kept


def test_join_leaves_out_every_clip_that_uses_a_soundfont(tmp_path, capsys):
    """The training set of a leave-one-SoundFont-out run: no clip of it touches OPL3."""
    uses = {1: ["FluidR3_GM.sf2"], 2: ["FluidR3_GM.sf2", "OPL-3_FM_128M.sf2"], 3: ["OPL-3_FM_128M.sf2"],
            4: ["sf_GMbank.sf2", "Black_Pearl_4_LV2.sf2"]}
    sets = [tmp_path / "a", tmp_path / "b"]
    for folder, seeds in zip(sets, ([1, 2], [3, 4])):
        folder.mkdir()
        (folder / "manifest.jsonl").write_text("".join(
            json.dumps({"path": f"clips/{seed}.wav", "seed": seed, "soundfonts": uses[seed]}) + "\n"
            for seed in seeds))
    loso = tmp_path / "loso"
    assert cli.main(["join", "--out", str(loso), "--without-soundfont", "OPL-3_FM_128M.sf2", *map(str, sets)]) == 0
    assert [(e["seed"], e["path"]) for e in _records(loso)] == [(1, "0/clips/1.wav"), (4, "1/clips/4.wav")]
    none_left = tmp_path / "none"
    assert cli.main(["join", "--out", str(none_left), "--without-soundfont", "FluidR3_GM.sf2",
                     "--without-soundfont", "OPL-3_FM_128M.sf2", "--without-soundfont", "sf_GMbank.sf2",
                     *map(str, sets)]) == 1
    assert "no clip is left to join" in capsys.readouterr().err and not none_left.exists()


def test_recorded_kits_play_drums_and_cymbals_only():
    """A recorded kit's one preset is (0, 0), GM's piano slot: pianos never come from it."""
    kit = planning.SoundFont(Path("Black_Pearl_4_LV2.sf2"), frozenset({(0, 0)}))
    gm = planning.SoundFont(Path("a.sf2"), frozenset(
        patch for name in ("piano", "drums", "cymbals") for family in planning.INSTRUMENTS[name]
        for patch in family.patches))
    parts = [p for seed in range(60) for p in planning.plan_clip(
        seed, [kit, gm], 10, 12, classes=("piano", "drums", "cymbals")).parts]
    on_kit = {p.instrument for p in parts if p.soundfont == kit}
    assert on_kit == {"drums", "cymbals"} and all(p.patch == (0, 0) for p in parts if p.soundfont == kit)
    assert {p.instrument for p in parts if p.soundfont == gm} == {"piano", "drums", "cymbals"}


KIT = Path("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2")


@pytest.mark.skipif(not KIT.is_file(), reason="needs avldrums.lv2-soundfont")
def test_a_recorded_kit_sounds_every_drum_note_the_grooves_use():
    """Its kick is 36: the grooves' 35 is played on it, so no drum second is silent."""
    synths = {KIT: fluidsynth.FluidSynth(KIT)}
    try:
        kit = planning.SoundFont(KIT, synths[KIT].presets)
        for seed in range(6):
            plan = planning.plan_clip(seed, [kit], 10, 10, classes=("drums",))
            clip = render.render_plan(plan, synths)
            part = plan.parts[0]
            assert part.soundfont == kit
            assert clip.part_seconds[0][part.start_s:part.end_s].all()  # every scheduled second heard
    finally:
        synths[KIT].close()


def test_soundfonts_are_found_on_the_search_path(tmp_path, monkeypatch):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "FluidR3_GM.sf2").write_bytes(b"x")
    monkeypatch.setenv(synth.SOUNDFONT_PATH_VARIABLE, f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert synth.soundfont_dirs() == (tmp_path / "a", tmp_path / "b")
    assert synth.find_soundfont("FluidR3_GM.sf2") == tmp_path / "b" / "FluidR3_GM.sf2"
    assert synth.find_soundfont("sf_GMbank.sf2") is None


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_a_missing_training_soundfont_is_a_warning_line(quiet, tmp_path, monkeypatch, capsys):
    """Warnings come as `mmgat-train: warning: ...` lines, also with -q (which hides info only)."""
    (tmp_path / "FluidR3_GM.sf2").write_text("not a SoundFont")  # found, then refused
    monkeypatch.setenv(synth.SOUNDFONT_PATH_VARIABLE, str(tmp_path))
    assert cli.main(["synth", "--out", str(tmp_path / "out"), "--clips", "1", "--seed", "0",
                     *quiet]) == 1
    assert capsys.readouterr().err.splitlines() == [
        *(f"mmgat-train: warning: {name} is missing; rendering without it"
          for name in synth.DEFAULT_SOUNDFONTS if name != "FluidR3_GM.sf2"),
        f"mmgat-train: error: {tmp_path / 'FluidR3_GM.sf2'} is not a SoundFont (SF2/SF3/DLS)"]


@needs_fluidsynth
def test_bad_soundfont_is_one_line_error(tmp_path, capsys):
    missing = tmp_path / "missing.sf2"
    not_a_soundfont = tmp_path / "text.sf2"
    not_a_soundfont.write_text("hello")
    for path in (missing, not_a_soundfont):
        code = cli.main(["synth", "--out", str(tmp_path / "out"), "--clips", "1", "--seed", "0",
                         "--soundfont", str(path)])
        error = capsys.readouterr().err.strip()
        assert code == 1
        assert error.count("\n") == 0 and error.startswith("mmgat-train: error:") and str(path) in error
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


@pytest.mark.skipif(not ESPEAK, reason="needs espeak-ng (apt espeak-ng)")
def test_espeak_singing_follows_the_melody():
    song = compose.Song(tonic=0, minor=False, tempo_bpm=120, beats_per_bar=4,
                        progression=((0, 4, 7),), groove_seed=0)
    voice = {"voice": "f3", "speed": 80, "pitch": 50, "vibrato_cents": 0.0, "vibrato_hz": 5.0,
             "syllables": ["laa"]}
    low, high = singing.espeak_register(voice)
    for pitch in (low, high):
        sung = singing.sing([compose.Note(0, 2, pitch, 100)], song, voice, SAMPLE_RATE,
                          np.random.default_rng(0))
        measured = singing._pitch_hz(sung[2000:14000].astype(np.float32))
        assert abs(12 * np.log2(measured / singing.midi_hz(pitch))) < 0.3  # semitones

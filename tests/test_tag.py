"""mmgat-tag: one row per input on the live pipeline, error rows for bad files, directories,
outputs, optional dependencies, Ctrl-C and one-line user errors."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import soundfile

from mmgat.model.audio import SAMPLE_RATE
from mmgat.model.labels import CLASSES
from mmgat.stream import tag, tag_engine


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440.0 * (c + 1) * t) for c in range(channels)], 1).astype(np.float32)


def noise(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    return (0.3 * np.random.default_rng(0).standard_normal((int(seconds * rate), channels))).astype(np.float32)


def write(path, samples, rate=SAMPLE_RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate)
    return str(path)


def thresholds(model) -> np.ndarray:
    from mmgat.export.runtime import MMGATSession

    return MMGATSession(model, cpu=True).thresholds


def run_tag(args, capsys) -> tuple[int, list[str]]:
    code = tag.main([str(a) for a in args])
    return code, capsys.readouterr().err.splitlines()


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_row(row: dict, model_thresholds) -> None:
    assert set(row) == {"path", "duration", "seconds", "probs", "labels", "error"}
    assert row["error"] is None
    assert len(row["seconds"]) == math.floor(row["duration"] + 1e-9)  # one per whole second of audio
    assert all(len(second) == len(CLASSES) and all(0.0 <= p <= 1.0 for p in second) for second in row["seconds"])
    assert list(row["probs"]) == list(CLASSES)
    assert all(0.0 <= p <= 1.0 for p in row["probs"].values())
    assert row["labels"] == [c for c, t in zip(CLASSES, model_thresholds) if row["probs"][c] >= t]


def test_one_row_per_input_with_errors_for_bad_files(tiny_model, tmp_path, capsys):
    files = [
        write(tmp_path / "tone.wav", tone(3.0)),
        write(tmp_path / "noise.flac", noise(2.0, 44100, 2), 44100),  # resampled and downmixed
        str(tmp_path / "bad.wav"),
        write(tmp_path / "short.wav", tone(0.5)),
        write(tmp_path / "empty.wav", tone(0.0)),
        write(tmp_path / "long.wav", tone(12.4)),  # longer than the window: every second still once
        str(tmp_path / "missing.wav"),
    ]
    (tmp_path / "bad.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    out = tmp_path / "tags.jsonl"
    code, err = run_tag([*files, "--out", out, "--model", tiny_model, "--cpu", "--threads", "1",
                         "--window", "4", "--batch", "3"], capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert rows[0].pop("classes") == list(CLASSES)  # the order of every `seconds` list, once
    assert [row["path"] for row in rows] == files  # one per input, in input order
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in rows}
    bad = {"bad.wav", "short.wav", "empty.wav", "missing.wav"}
    assert {name for name, row in by_name.items() if row["error"] is not None} == bad
    for name in bad:
        row = by_name[name]
        assert "\n" not in row["error"] and row["seconds"] is None and row["probs"] is None
    assert "1.00 s is needed" in by_name["short.wav"]["error"] and by_name["short.wav"]["duration"] == 0.5
    assert by_name["missing.wav"]["duration"] is None and by_name["bad.wav"]["duration"] is None
    assert by_name["missing.wav"]["error"] == f"no such file: {files[-1]}"  # not libsndfile's "System error."
    model_thresholds = thresholds(tiny_model)
    for name, seconds in (("tone.wav", 3), ("noise.flac", 2), ("long.wav", 12)):
        check_row(by_name[name], model_thresholds)
        assert len(by_name[name]["seconds"]) == seconds
    assert by_name["long.wav"]["duration"] == pytest.approx(12.4)
    assert err[-1].startswith("mmgat-tag: 7 files (4 could not be tagged)")


def test_rows_are_what_the_live_pipeline_says(tiny_model, tmp_path, capsys):
    """Clip probs = max over the live updates' window probs; second k = its node in the last
    window holding it; batching files together changes nothing."""
    from mmgat.stream.options import load_pipeline
    from mmgat.stream.scheduler import run
    from mmgat.stream.settings import StreamSettings
    from mmgat.stream.sources import open_file
    from mmgat.stream.stream import Stream

    clip = write(tmp_path / "a.wav", tone(5.0, 22050), 22050)
    other = write(tmp_path / "b.wav", noise(3.0))
    out = tmp_path / "tags.jsonl"
    code, err = run_tag([clip, other, "--out", out, "--model", tiny_model, "--cpu", "--window", "3"], capsys)
    assert code == 0, err
    row = read_rows(out)[0]

    pipeline = load_pipeline(tiny_model, cpu=True, precision=None, threads=1)
    updates = []
    run(pipeline, [Stream(open_file(clip, paced=False), StreamSettings(3, 1.0, **pipeline.session.graph))],
        updates.append)
    assert [u.t for u in updates] == [1.0, 2.0, 3.0, 4.0, 5.0]
    clip_probs = np.max([u.probs for u in updates], axis=0)
    np.testing.assert_allclose([row["probs"][c] for c in CLASSES], clip_probs, atol=1e-4)
    # Seconds 0..2 are last seen in the window ending at 3 s (the third update), seconds 3, 4 in
    # the last one (nodes 1, 2 of the window ending at 5 s).
    expected = [updates[2].node_probs[k] for k in range(3)] + [updates[4].node_probs[k] for k in (1, 2)]
    np.testing.assert_allclose(row["seconds"], expected, atol=1e-4)


def test_per_second_rows_come_from_whole_second_windows_at_any_hop(tiny_model):
    """At a hop of 0.5 s, the windows ending half-way through a second (the other hop phase's
    graph) say nothing about whole seconds; the rows are those of the whole-second windows."""
    from mmgat.stream.options import load_pipeline
    from mmgat.stream.scheduler import run
    from mmgat.stream.sources import ArraySource
    from mmgat.stream.settings import StreamSettings
    from mmgat.stream.stream import Stream

    pipeline = load_pipeline(tiny_model, cpu=True, precision=None, threads=1)
    file, updates = tag_engine.FileTags(0, "a", len(CLASSES)), []
    stream = Stream(ArraySource(noise(4.0)[:, 0]), StreamSettings(2, 0.5, **pipeline.session.graph))
    run(pipeline, [stream], lambda update: (updates.append(update), file.add(update)))
    assert [u.t for u in updates] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    whole = {u.t: u.node_probs for u in updates if u.t == int(u.t)}
    # Window 2: second k is last held by the window ending at k + 2 s (node 0), the last second by
    # the final window (node 1).
    expected = [whole[2.0][0], whole[3.0][0], whole[4.0][0], whole[4.0][1]]
    np.testing.assert_allclose(file.seconds.array(), expected)
    np.testing.assert_allclose(file.clip, np.max([u.probs for u in updates], axis=0))


def test_directories_are_walked_for_audio_files(tiny_model, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    inside = [write(corpus / "a.wav", tone(1.5)), write(corpus / "sub" / "b.flac", noise(2.2))]
    (corpus / "notes.txt").write_text("not audio")
    write(corpus / ".hidden.wav", tone(1.0))
    loose = write(tmp_path / "c.wav", tone(1.0))
    out = tmp_path / "tags.jsonl"
    code, err = run_tag([corpus, loose, "--out", out, "--model", tiny_model, "--cpu"], capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert [row["path"] for row in rows] == [*inside, loose]
    assert [len(row["seconds"]) for row in rows] == [1, 2, 1] and all(row["error"] is None for row in rows)


def test_ctrl_c_writes_the_rows_finished_so_far(tiny_model, tmp_path, capsys, monkeypatch):
    files = [write(tmp_path / f"{k}.wav", tone(1.0)) for k in range(3)]
    added = tag.Ordered.add

    def add_then_interrupt(self, index, row):
        added(self, index, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(tag.Ordered, "add", add_then_interrupt)
    out = tmp_path / "tags.jsonl"
    code, err = run_tag([*files, "--out", out, "--model", tiny_model, "--cpu", "--batch", "1"], capsys)
    assert code == tag.INTERRUPTED == 130
    assert [row["path"] for row in read_rows(out)] == files[:1]
    assert err[-1] == f"mmgat-tag: interrupted: wrote 1 of 3 rows to {out}"


def one_error_line(err: list[str]) -> str:
    assert len(err) == 1, err
    assert err[0].startswith("mmgat-tag: error: ")
    return err[0]


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_is_one_line(tmp_path, capsys):
    clip = write(tmp_path / "a.wav", tone(1.0))
    code, err = run_tag([clip, "--out", tmp_path / "tags.parquet"], capsys)
    assert code == 2
    assert "pip install pyarrow" in one_error_line(err) and ".jsonl" in err[0]
    assert not (tmp_path / "tags.parquet").exists()


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_parquet(tiny_model, tmp_path, capsys):
    import pyarrow.parquet as pq

    files = [write(tmp_path / "a.wav", tone(2.0)), str(tmp_path / "missing.wav")]
    out = tmp_path / "tags.parquet"
    code, err = run_tag([*files, "--out", out, "--model", tiny_model, "--cpu"], capsys)
    assert code == 0, err
    rows = pq.read_table(out).to_pylist()
    assert [row["path"] for row in rows] == files
    assert len(rows[0]["seconds"]) == 2 and rows[0]["error"] is None and rows[1]["error"]


def test_ray_engine_without_ray_is_one_line(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    clip = write(tmp_path / "a.wav", tone(1.0))
    code, err = run_tag([clip, "--out", tmp_path / "tags.jsonl", "--engine", "ray"], capsys)
    assert code == 2
    assert "pip install ray" in one_error_line(err)
    assert not (tmp_path / "tags.jsonl").exists()


@pytest.mark.parametrize("args, code, says", [
    (["{clip}", "--out", "{tmp}/tags.csv"], 2, ".jsonl or .parquet"),
    (["{clip}", "--out", "{tmp}/tags.jsonl", "--window", "0"], 2, "--window must be 1..64"),
    (["{clip}", "--out", "{tmp}/tags.jsonl", "--threads", "0"], 2, "--threads"),
    (["{clip}"], 2, "--out"),
    (["{tmp}/empty", "--out", "{tmp}/tags.jsonl"], 1, "no audio files"),
    (["{clip}", "--out", "{tmp}/tags.jsonl", "--model", "{tmp}/nope.onnx"], 1, "model not found"),
    (["{clip}", "--out", "{tmp}/no/such/dir/tags.jsonl", "--model", "{model}", "--cpu"], 1, "tags.jsonl"),
])
def test_user_errors_are_one_line(tiny_model, tmp_path, capsys, args, code, says):
    (tmp_path / "empty").mkdir()
    clip = write(tmp_path / "a.wav", tone(1.0))
    got, err = run_tag([a.format(clip=clip, tmp=tmp_path, model=tiny_model) for a in args], capsys)
    assert got == code
    assert says in one_error_line(err)


class FakeRef:  # an ObjectRef: hashable, holds the task's result
    def __init__(self, value):
        self.value = value


class FakeRay:
    """Enough of Ray's API (init, remote, wait, get, cancel) to run the ray engine's driver code
    in-process: tasks run when submitted; their arguments must be plain data."""

    class exceptions:
        class RayError(Exception):
            pass

    def __init__(self):
        self.initialized, self.tasks = False, []

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.initialized = True

    def cluster_resources(self):
        return {"CPU": 2.0}

    def remote(self, num_cpus=1):
        def wrap(function):
            fake = self

            class Task:
                def remote(self, *args):
                    json.dumps(args)  # what travels to a worker is plain data
                    fake.tasks.append(args[0])
                    return FakeRef(function(*args))
            return Task()
        return wrap

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value

    def cancel(self, ref, force=False):
        pass


def test_ray_engine_driver_with_a_fake_ray(tiny_model, tmp_path, capsys, monkeypatch):
    import sys

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.wav", tone(2.0))
    write(tmp_path / "d" / "b.wav", tone(3.0))
    write(tmp_path / "d" / "c.wav", tone(0.2))
    out = tmp_path / "tags.jsonl"
    code, err = run_tag(["a.wav", "d", "--out", out, "--engine", "ray", "--model", tiny_model], capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert [row["path"] for row in rows] == ["a.wav", "d/b.wav", "d/c.wav"]  # as named, in order
    assert [len(row["seconds"] or []) for row in rows] == [2, 3, 0] and rows[2]["error"]
    assert fake.initialized and sum(len(chunk) for chunk in fake.tasks) == 3
    assert all(path.startswith("/") for chunk in fake.tasks for _, path in chunk)  # absolute for workers


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray (pip install ray)")
def test_ray_engine_on_a_real_local_ray_gives_the_local_rows(tiny_model, tmp_path, capsys):
    import ray

    clips = [write(tmp_path / "a.wav", tone(2.0)), write(tmp_path / "b.wav", noise(3.0)),
             write(tmp_path / "c.wav", tone(0.2))]
    rows = {}
    try:
        for engine in ("local", "ray"):
            out = tmp_path / f"{engine}.jsonl"
            code, err = run_tag([*clips, "--out", out, "--engine", engine, "--model", tiny_model,
                                 "--cpu"], capsys)
            assert code == 0, err
            rows[engine] = read_rows(out)
    finally:
        ray.shutdown()
    assert [row["path"] for row in rows["ray"]] == clips and rows["ray"][2]["error"]
    for local, remote in zip(rows["local"], rows["ray"]):
        assert local["labels"] == remote["labels"] and local["duration"] == remote["duration"]
        if local["seconds"]:
            np.testing.assert_allclose(remote["seconds"], local["seconds"], atol=1e-4)


def test_ray_engine_checks_the_model_without_loading_the_runtime(tiny_model, tmp_path, monkeypatch):
    """The driver checks the artifact and finds its frontend file; the frontend, its warm-up and
    the graphs load only in the tasks."""
    import shutil
    import sys

    from mmgat.stream import tag_extras

    def never(*args, **kwargs):
        raise AssertionError("the driver loaded the whole runtime")

    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    monkeypatch.setattr(tag_engine, "load_pipeline", never)
    tag_extras.RayEngine(tag_engine.TagOptions(batch=1, model=str(tiny_model), window=4))
    alone = tmp_path / tiny_model.name  # the artifact without its frontend beside it
    for suffix in ("", ".sha256"):
        shutil.copy(f"{tiny_model}{suffix}", f"{alone}{suffix}")
    with pytest.raises(ValueError, match="needs its frontend"):
        tag_extras.RayEngine(tag_engine.TagOptions(batch=1, model=str(alone)))

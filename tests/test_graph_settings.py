"""Every graph setting in an artifact's metadata is honoured alike by mmgat-live, mmgat-tag and
mmgat-train eval (similarity, neighbours; the scales live inside the model), and a setting this
version does not implement is refused in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from live_fixtures import one_error_line, write_clip
from mmgat.model.audio import SAMPLE_RATE, load_audio, split_frames
from mmgat.model.checkpoint import random_checkpoint
from mmgat.model.labels import CLASSES

WINDOW = 4  # shorter than the clip, so windows slide


@pytest.fixture(scope="module")
def l1_model(tmp_path_factory):
    """A tiny random MMGAT trained (so to speak) on L1 graphs with 1 neighbour and scales 1 and 3."""
    from mmgat.export.onnx import export_checkpoint

    folder = tmp_path_factory.mktemp("l1")
    checkpoint = random_checkpoint(folder, seed=3, similarity="l1", neighbours=1, scales=(1, 3))
    return export_checkpoint(checkpoint, folder / "artifact" / "l1.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """7 s at 16 kHz mono (no resampling between the file and the frames): a different chord and
    noise level every second, so the instances differ and the graphs have structure."""
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    seconds = [sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 4000, 3)) / 6
               + rng.uniform(0.0, 0.3) * rng.standard_normal(SAMPLE_RATE) for _ in range(7)]
    return write_clip(tmp_path_factory.mktemp("clip") / "chords.wav", np.concatenate(seconds).astype(np.float32))


def eval_window_probs(model, clip, **graph_changes) -> np.ndarray:
    """Each window ending at 1, 2, ... s scored the way `mmgat-train eval` does: its load_model
    (graph settings from the artifact, unless changed here) and predict.collate (build_graph), on
    the artifact's frontend."""
    from mmgat.export.runtime import load_runtime
    from mmgat.model.train.predict import collate
    from mmgat.model.train.evaluate import load_model

    _, frontend = load_runtime(model, cpu=True)
    instances = frontend.embed(split_frames(load_audio(clip)))
    score, config, _ = load_model(model, torch.device("cpu"))
    vars(config).update(graph_changes)
    windows = [instances[max(0, end - WINDOW):end] for end in range(1, len(instances) + 1)]
    return score(collate(windows, config, torch.device("cpu")))[0]  # window probabilities


def test_the_artifact_carries_its_graph_settings(l1_model):
    from mmgat.export.runtime import MMGATSession

    assert MMGATSession(l1_model).graph == {"neighbours": 1, "similarity": "l1"}


def test_live_and_tag_score_the_graphs_eval_builds(l1_model, clip, tmp_path, capsys):
    from mmgat.stream.cli import main as live
    from mmgat.stream.tag import main as tag

    out = tmp_path / "live.jsonl"
    assert live(["--file", str(clip), "--model", str(l1_model), "--cpu", "--as-fast-as-possible",
                 "--window", str(WINDOW), "--no-display", "--jsonl", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    live_probs = np.array([[r["probs"][c] for c in CLASSES] for r in records])
    expected = eval_window_probs(l1_model, clip)
    assert [r["t"] for r in records] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    np.testing.assert_allclose(live_probs, expected, atol=1e-5)  # records keep 5 decimals
    # Each setting shows in the scores (a random model barely listens to its graph: ~1e-4).
    for changed in ({"similarity": "cosine"}, {"neighbours": 2}):
        assert np.abs(eval_window_probs(l1_model, clip, **changed) - live_probs).max() > 3e-5, changed

    rows = tmp_path / "tags.jsonl"
    assert tag([str(clip), "--out", str(rows), "--model", str(l1_model), "--cpu", "--window", str(WINDOW),
                "--no-progress"]) == 0
    row = json.loads(rows.read_text())
    np.testing.assert_allclose([row["probs"][c] for c in CLASSES], expected.max(axis=0), atol=1e-5)
    capsys.readouterr()


@pytest.fixture(scope="module")
def unknown_similarity_model(tiny_model, tmp_path_factory):
    """The tiny artifact re-labelled as trained on a similarity this version lacks (hash renewed)."""
    import onnx

    from mmgat.export.artifact import METADATA_KEY
    from mmgat.model.sidecar import write_with_sidecar

    folder = tmp_path_factory.mktemp("unknown")
    for path in tiny_model.parent.iterdir():
        shutil.copy(path, folder / path.name)
    model = folder / tiny_model.name
    proto = onnx.load(str(model))
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps({**metadata, "similarity": "cosine-squared"})})
    return write_with_sidecar(model, proto.SerializeToString())


def test_a_similarity_this_version_lacks_is_refused_in_one_line(unknown_similarity_model, clip, tmp_path,
                                                                capsys):
    from mmgat.model.train.cli import main as train
    from mmgat.stream.cli import main as live
    from mmgat.stream.tag import main as tag

    says = "its instance graph uses similarity 'cosine-squared', which this version does not implement"
    model = str(unknown_similarity_model)
    assert live(["--file", str(clip), "--model", model, "--cpu", "--no-display"]) == 1
    assert says in one_error_line(capsys.readouterr().err)
    assert tag([str(clip), "--out", str(tmp_path / "t.jsonl"), "--model", model, "--cpu", "--no-progress"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"mmgat-tag: error: {model}: {says} (cosine, l1, euclidean, emd)"]
    assert train(["eval", "--model", model, "--data", str(tmp_path), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"mmgat-train: error: {model}: {says} (cosine, l1, euclidean, emd)"]

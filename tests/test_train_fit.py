"""The trainer: overfitting, resume, checkpoint format, eval and ablate CLIs (no audio)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train_data import TEST_FINGERPRINT, one_thread, write_synthetic_set  # noqa: F401

from mmgat.model.labels import CLASSES, GROUPS, NUM_CLASSES
from mmgat.model.train.ablate import slug
from mmgat.model.train.cli import main
from mmgat.model.train.data import load_data
from mmgat.model.train.evaluate import evaluate
from mmgat.model.train.fit import fit, load_checkpoint

CHECKPOINT_KEYS = {"config", "state_dict", "thresholds", "group_thresholds", "second_thresholds",
                   "text_encoder",
                   "text_embeddings", "frontend", "training", "metrics", "window", "hop"}


def random_text(dim=384):
    return np.random.default_rng(7).standard_normal((NUM_CLASSES, dim)).astype(np.float32), "random"


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    return write_synthetic_set(tmp_path_factory.mktemp("synth") / "set", noise=0.3)


def test_overfits_32_clips(synthetic_set, tmp_path):
    summary = fit(synthetic_set, tmp_path / "ckpt", text=random_text(), epochs=40, batch_size=8,
                  patience=40, device="cpu", progress=False)
    assert summary["training"]["splits"]["train"] == 32
    report = evaluate(tmp_path / "ckpt", synthetic_set, "train", "cpu")
    assert report["f1_micro"] > 0.95, summary["history"]
    assert report["per_second"]["seconds"] == sum(len(f) for f in load_data(
        synthetic_set).subset("train").features)
    assert report["per_second"]["f1_micro"] > 0.8  # each second from the last window holding it
    assert json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["best_epoch"] >= 1


def test_checkpoint_format(synthetic_set, tmp_path):
    fit(synthetic_set, tmp_path, text=random_text(), epochs=1, device="cpu", progress=False,
        window=7, single_scale=True, similarity="l1")
    model, checkpoint = load_checkpoint(tmp_path)
    assert CHECKPOINT_KEYS <= set(checkpoint)
    assert not model.training and model.config.scales == (1,) and model.config.similarity == "l1"
    assert len(checkpoint["thresholds"]) == len(CLASSES)
    assert len(checkpoint["group_thresholds"]) == len(GROUPS)
    assert len(checkpoint["second_thresholds"]) == len(CLASSES)
    assert checkpoint["classes"] == list(CLASSES)
    assert checkpoint["text_encoder"] == "random"
    assert tuple(checkpoint["text_embeddings"].shape) == (NUM_CLASSES, 384)
    assert checkpoint["frontend"]["fingerprint"] == TEST_FINGERPRINT
    assert checkpoint["window"] == 7 and checkpoint["hop"] == 1.0
    assert checkpoint["training"]["clips"] == 52 and checkpoint["training"]["soundfonts"] == ["test.sf2"]
    assert {"f1_micro", "f1_macro", "map"} <= set(checkpoint["metrics"])
    torch.load(tmp_path / "model.pt", weights_only=True)  # plain tensors and containers only


def test_resume_continues_identically(synthetic_set, tmp_path):
    options = dict(text=random_text(), batch_size=16, device="cpu", progress=False, seed=3)
    straight = fit(synthetic_set, tmp_path / "straight", epochs=3, **options)
    fit(synthetic_set, tmp_path / "resumed", epochs=1, **options)
    resumed = fit(synthetic_set, tmp_path / "resumed", epochs=3, resume=True, **options)
    assert resumed["history"] == straight["history"]
    a = load_checkpoint(tmp_path / "straight" / "last.pt")[1]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")[1]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert b["state"]["epoch"] == 3


def test_cli_fit_eval_and_errors(synthetic_set, tmp_path, capsys):
    assert main(["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "ckpt"), "--epochs",
                 "2", "--no-label-embeddings", "--no-auxiliary", "--no-center", "--heads", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    _, checkpoint = load_checkpoint(tmp_path / "ckpt")
    assert checkpoint["text_encoder"] is None and checkpoint["text_embeddings"] is None
    assert not checkpoint["config"]["auxiliary"] and checkpoint["config"]["heads"] == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "mmgat-train: best epoch " in captured.err  # an info line
    assert main(["eval", "--model", str(tmp_path / "ckpt"), "--data", str(synthetic_set),
                 "--json", "--out", str(tmp_path / "report"), "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["clips"] == 8
    assert {"f1_micro", "f1_macro", "map"} <= set(report) and set(report["per_class"]) == set(CLASSES)
    for name in ("eval.md", "eval.json", "per_class_f1.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    eval_window = ["eval", "--model", str(tmp_path / "ckpt"), "--data", str(synthetic_set),
                   "--json", "--device", "cpu", "--window"]
    assert main([*eval_window, "1"]) == 0  # every second alone, as `mmgat-live --window 1`
    assert json.loads(capsys.readouterr().out)["window"] == 1
    assert main([*eval_window, "0"]) == 1
    assert "error: window must be 1..64, got 0" in capsys.readouterr().err
    assert main(["fit", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["fit", "--data", str(synthetic_set), "--out", str(tmp_path / "x"), "--heads", "3",
                 "--device", "cpu", "--no-progress"]) == 1
    assert "error: hidden 128 is not divisible by heads 3" in capsys.readouterr().err


def test_ablate_writes_the_tables_over_seeds_and_resumes(synthetic_set, tmp_path):
    from mmgat.model.train.ablate import ablate

    chosen = ["MMGAT_graph", "MMGAT-EMD", "baseline: pooled embeddings + MLP",
              "baseline: per-second MLP"]
    summary = ablate(synthetic_set, tmp_path, epochs=1, seeds=(0, 1), only=chosen, device="cpu",
                     progress=False)
    assert set(summary["results"]) == set(chosen)
    emd = summary["results"]["MMGAT-EMD"]
    runs = [emd["runs"][s]["f1_micro"] for s in ("0", "1")]
    assert emd["f1_micro"] == pytest.approx(np.mean(runs))
    assert emd["f1_micro_sd"] == pytest.approx(np.std(runs, ddof=1))
    per_second = summary["results"]["baseline: per-second MLP"]
    assert 0 <= per_second["per_second_f1_micro"] <= 1  # the localisation baseline
    table = (tmp_path / "ablation.md").read_text()
    assert "## Table 5: ablations" in table and "## Table 6: similarity measures" in table
    assert "| MMGAT_graph | 2 |" in table and "| 0.62 | 0.62 |" in table  # the paper's beside ours
    assert " ± " in table
    assert (tmp_path / "ablation.png").stat().st_size > 0
    assert json.loads((tmp_path / "ablation.json").read_text())["results"]["MMGAT-EMD"]["paper"] == [0.62, 0.61]
    (tmp_path / "seed-1" / "mmgat-emd" / "model.pt").unlink()  # a finished run is reused, not retrained
    again = ablate(synthetic_set, tmp_path, epochs=1, seeds=(0, 1), only=["MMGAT-EMD"], device="cpu",
                   progress=False)
    assert json.dumps(again["results"]["MMGAT-EMD"]) == json.dumps(emd)
    assert not (tmp_path / "seed-1" / "mmgat-emd" / "model.pt").exists()
    assert set(again["results"]) == set(chosen)  # the tables keep what other runs finished
    lever = ablate(synthetic_set, tmp_path, epochs=1, seeds=(1,), only=["MMGAT-heads-1"],
                   device="cpu", progress=False)  # a lever, for one seed
    assert lever["seeds"] == [0, 1] and lever["results"]["MMGAT-EMD"]["seeds_done"] == 2
    assert lever["results"]["MMGAT-heads-1"]["seeds_done"] == 1
    assert load_checkpoint(tmp_path / "seed-1" / "mmgat-heads-1")[0].config.heads == 1
    assert "## Heads and neighbours" in (tmp_path / "ablation.md").read_text()
    with pytest.raises(ValueError, match="unknown variants"):
        ablate(synthetic_set, tmp_path, only=["nope"])


def test_ablate_writes_the_tables_as_each_run_ends(synthetic_set, tmp_path, monkeypatch):
    from mmgat.model.train import ablate as module

    real_run = module.run_variant

    def stopped_at_seed_1(name, folder, settings, *args):
        if settings["seed"] == 1:
            raise KeyboardInterrupt  # the session ends while seed 1 trains
        return real_run(name, folder, settings, *args)

    monkeypatch.setattr(module, "run_variant", stopped_at_seed_1)
    with pytest.raises(KeyboardInterrupt):
        module.ablate(synthetic_set, tmp_path, epochs=1, seeds=(0, 1),
                      only=["baseline: pooled embeddings + MLP", "MMGAT-EMD"], device="cpu",
                      progress=False)
    table = (tmp_path / "ablation.md").read_text()
    assert "| baseline: pooled embeddings + MLP | 1 | 0." in table  # seed 0 only, no ± yet
    assert "| MMGAT-EMD | 1 | 0." in table
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert summary["results"]["MMGAT-EMD"]["f1_micro_sd"] is None
    (tmp_path / "ablation.md").unlink()
    with pytest.raises(KeyboardInterrupt):  # stopped again at once: what is on disk is shown
        module.ablate(synthetic_set, tmp_path, epochs=1, seeds=(1, 0),
                      only=["baseline: pooled embeddings + MLP", "MMGAT-EMD"], device="cpu",
                      progress=False)
    assert "| MMGAT-EMD | 1 | 0." in (tmp_path / "ablation.md").read_text()


def test_ablate_continues_a_fit_stopped_part_way_when_its_settings_are_the_same(synthetic_set, tmp_path):
    from mmgat.model.train.ablate import ablate

    def run():
        return ablate(synthetic_set, tmp_path, epochs=2, seeds=(0,), only=["MMGAT_graph"],
                      device="cpu", progress=False)["results"]["MMGAT_graph"]["f1_micro"]

    first = run()
    folder = tmp_path / "seed-0" / "mmgat-graph"
    (folder / "result.json").unlink()  # as if stopped after its last epoch, before scoring
    trained = (folder / "model.pt").stat().st_mtime_ns
    assert run() == first and (folder / "model.pt").stat().st_mtime_ns == trained  # not retrained
    (folder / "result.json").unlink()
    begun = json.loads((folder / "settings.json").read_text())
    (folder / "settings.json").write_text(json.dumps({**begun, "seed": 1}))  # another run's last.pt
    run()
    assert (folder / "model.pt").stat().st_mtime_ns != trained  # trained again, from the start


def test_ablate_jobs_in_processes_give_the_results_of_one_job(synthetic_set, tmp_path):
    from mmgat.model.train.ablate import ablate

    chosen = ["MMGAT_graph", "baseline: pooled embeddings + MLP"]
    results = [ablate(synthetic_set, tmp_path / str(jobs), epochs=1, seeds=(0,), only=chosen,
                      device="cpu", jobs=jobs, progress=False)["results"] for jobs in (1, 2)]
    for name in chosen:
        assert results[1][name]["f1_micro"] == pytest.approx(results[0][name]["f1_micro"], abs=1e-6)
        assert (tmp_path / "2" / "seed-0" / slug(name) / "result.json").is_file()


def test_baselines_stop_early_as_fit_does(synthetic_set):
    """A baseline whose validation F1 never improves runs `patience` epochs past its best."""
    from mmgat.model.train.baselines import train_and_report

    clips = load_data(synthetic_set, "embedding", device="cpu")
    epochs_run = []

    def batches(train, rng):  # no training steps: the validation F1 stays where it starts
        epochs_run.append(1)
        return iter(())

    def clip_probs(clip_set):
        return np.full((len(clip_set), NUM_CLASSES), 0.5, np.float32)

    train_and_report(torch.nn.Linear(clips.input_dim, NUM_CLASSES), batches, clip_probs, clips,
                     50, 1e-3, 0, "cpu", "test", patience=3)
    assert len(epochs_run) == 4  # the best (first) epoch and three more


@pytest.mark.parametrize("second_readout", [False, True])
def test_eval_of_the_exported_artifact_matches_the_checkpoint(tmp_path, second_readout):
    pytest.importorskip("onnxruntime")
    from mmgat.export.onnx import export_checkpoint
    from mmgat.model.frontend import Frontend, save_frontend, seeded_init

    frontend_file = tmp_path / "frontend.pt"  # recorded only: the cache answers for it
    save_frontend(seeded_init(Frontend(), 0), frontend_file)
    data = write_synthetic_set(tmp_path / "set", {"train": 8, "val": 4, "test": 6},
                               frontend_file=frontend_file)
    fit(data, tmp_path / "ckpt", text=random_text(), epochs=2, device="cpu", progress=False,
        second_readout=second_readout)
    artifact = export_checkpoint(tmp_path / "ckpt", tmp_path / "artifact" / "model.onnx")
    from_checkpoint = evaluate(tmp_path / "ckpt", data, "all", "cpu")
    from_artifact = evaluate(artifact, data, "all", "cpu")
    assert from_artifact["f1_micro"] == pytest.approx(from_checkpoint["f1_micro"], abs=1e-6)
    assert from_artifact["per_second"]["f1_micro"] == pytest.approx(
        from_checkpoint["per_second"]["f1_micro"], abs=1e-3)
    assert from_artifact["map"] == pytest.approx(from_checkpoint["map"], abs=1e-3)
    assert from_artifact["clips"] == 18


@pytest.mark.parametrize("bf16", [False, True])
def test_the_convnet_baseline_learns_which_band_is_loud(bf16):
    """Class 0: energy in the low mel bands, class 1: in the high ones; bf16 (the fast path where
    the CPU has it) learns it as fp32 does, and its logits come out float32."""
    from mmgat.model.train.baselines import ConvNet
    from mmgat.model.train.losses import masked_bce

    torch.manual_seed(0)
    examples = torch.randn(64, 1, 96, 64) * 0.1
    targets = torch.zeros(64, NUM_CLASSES)
    targets[:32, 0], targets[32:, 1] = 1, 1
    examples[:32, :, :, :16] += 1.0
    examples[32:, :, :, 48:] += 1.0
    model = ConvNet(channels=(8, 16), bf16=bf16).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = torch.ones_like(targets, dtype=torch.bool)
    for _ in range(40):
        loss = masked_bce(model(examples), targets, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        logits = model(examples)
    assert logits.dtype == torch.float32
    assert (logits[:, :2].argmax(1) == targets[:, :2].argmax(1)).float().mean() > 0.95


def test_the_convnet_baseline_scores_clips_and_seconds_from_the_audio(tmp_path):
    """convnet() end to end on a small set with audio: class c sounds as a tone of its own pitch
    in the seconds it plays; the report holds clip and per-second scores."""
    import soundfile

    from mmgat.model.audio import SAMPLE_RATE
    from mmgat.model.train.baselines import convnet

    directory = write_synthetic_set(tmp_path / "set", counts={"train": 16, "val": 6, "test": 6})
    clips = load_data(directory, "embedding", device="cpu")
    time = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    for key, seconds in zip(clips.keys, clips.second_targets):
        audio = [sum((0.1 * np.sin(2 * np.pi * 110 * (c + 2) * time) for c in np.flatnonzero(row)),
                     np.zeros(SAMPLE_RATE)) for row in seconds]
        soundfile.write(directory / key, np.concatenate(audio).astype(np.float32), SAMPLE_RATE)
    report = convnet(directory, clips, epochs=2, seed=0, device="cpu")
    assert report["clips"] == 6 and 0 <= report["f1_micro"] <= 1
    assert report["per_second"]["seconds"] == sum(len(f) for f in clips.subset("test").features)


def test_a_baseline_stopped_part_way_continues_as_if_never_stopped(synthetic_set, tmp_path):
    from mmgat.model.train.baselines import per_second_mlp

    clips = load_data(synthetic_set, "embedding", device="cpu")
    straight = per_second_mlp(synthetic_set, clips, 4, 0, "cpu", checkpoint=tmp_path / "a.pt")
    per_second_mlp(synthetic_set, clips, 2, 0, "cpu", checkpoint=tmp_path / "b.pt")  # stopped
    resumed = per_second_mlp(synthetic_set, clips, 4, 0, "cpu", checkpoint=tmp_path / "b.pt")
    assert json.dumps(resumed) == json.dumps(straight)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 4

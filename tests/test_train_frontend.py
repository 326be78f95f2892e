"""`mmgat-train frontend`: end-to-end training writes a loadable frontend and the embedding cache
it computes; a stopped run resumes; BatchNorm folds into the convolutions."""

from __future__ import annotations

import copy
import json

import numpy as np
import soundfile
import torch

from mmgat.model.audio import SAMPLE_RATE, load_audio, split_frames
from mmgat.model.frontend import TRUNK, Frontend, VGGishTrunk, load_frontend, seeded_init
from mmgat.model.frontend_file import serving_precision
from mmgat.model.labels import CLASSES
from mmgat.model.train import cli
from mmgat.model.train.data import cache_path, read_cache, synth_split
from mmgat.model.train.train_frontend import (Trainee, fit_probe, fold_batch_norm, keep_function,
                                               state_path, with_batch_norm)

SECONDS = 3


def write_tone_set(directory, clips_per_split=(6, 2)):
    """Clips of tones whose pitch says the class: enough train and validation clips by seed."""
    rng, records, wanted = np.random.default_rng(0), [], dict(zip(("train", "val"), clips_per_split))
    (directory / "clips").mkdir(parents=True)
    for seed in range(1000):
        split = synth_split(seed)
        if not wanted.get(split):
            continue
        wanted[split] -= 1
        c = len(records) % 4
        t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
        audio = 0.3 * np.sin(2 * np.pi * 220 * (c + 1) * t) + 0.01 * rng.standard_normal(len(t))
        path = f"clips/{len(records):06d}.wav"
        soundfile.write(directory / path, audio.astype(np.float32), SAMPLE_RATE)
        labels = {name: [int(i == c)] * SECONDS for i, name in enumerate(CLASSES)}
        records.append({"path": path, "duration": SECONDS, "second_labels": labels, "seed": seed})
        if not any(wanted.values()):
            break
    (directory / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def train(data, out, *extra):
    return cli.main(["frontend", "--data", str(data), "--out", str(out), "--epochs", "8",
                     "--seed", "0", *extra])


def test_frontend_training_writes_a_loadable_frontend_and_its_embedding_cache(tmp_path):
    data, out = tmp_path / "data", tmp_path / "fe.pt"
    records = write_tone_set(data)
    assert train(data, out) == 0
    frontend = load_frontend(out)
    assert frontend.meta["steps"] == frontend.meta["total_steps"] == 2  # 8 epochs of 18 s / 64
    paths, instances, recorded = read_cache(cache_path(data, "embedding"))
    assert paths == [r["path"] for r in records]
    assert recorded == {"name": "vggish-trunk", "file": str(out),
                        "fingerprint": frontend.recorded_fingerprint}
    served = load_frontend(out, precision=serving_precision("cpu"))  # as the runtime computes it
    for path, cached in zip(paths, instances):
        fresh = served.embed(split_frames(load_audio(data / path)))
        assert cached.shape == fresh.shape == (SECONDS, 128)
        np.testing.assert_allclose(cached, fresh, atol=2e-3 * np.abs(fresh).max())


def test_a_stopped_run_resumes_where_it_stopped(tmp_path):
    """--minutes stops after the first step (checkpointed); --resume finishes the schedule with
    the same batches, so the trained weights equal those of an uninterrupted run."""
    data = tmp_path / "data"
    write_tone_set(data)
    assert train(data, tmp_path / "whole.pt") == 0
    whole = torch.load(state_path(data), weights_only=False)
    assert train(data, tmp_path / "parts.pt", "--minutes", "1e-6") == 0
    assert not (tmp_path / "parts.pt").exists()
    assert torch.load(state_path(data), weights_only=False)["step"] == 1
    assert train(data, tmp_path / "parts.pt", "--resume") == 0
    parts = torch.load(state_path(data), weights_only=False)
    assert parts["step"] == whole["step"] == 2
    for key, value in whole["model"].items():
        torch.testing.assert_close(parts["model"][key], value, atol=1e-5, rtol=1e-4)
    assert train(data, tmp_path / "other.pt", "--resume", "--epochs", "16") == 1  # another run


def test_batch_norm_folds_into_the_convolutions():
    """Trained with BatchNorm, saved as torchvggish's plain layers: same outputs (1e-4)."""
    torch.manual_seed(0)
    net = with_batch_norm(seeded_init(Frontend(TRUNK), 3).net)
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        net.train()(torch.randn(16, 1, 96, 64) * 3 + 1)
        for layer in net.features:
            if isinstance(layer, torch.nn.Sequential):
                layer[1].weight.uniform_(0.5, 2.0)
                layer[1].bias.uniform_(-0.5, 0.5)
    examples = torch.randn(4, 1, 96, 64)
    with torch.no_grad():
        expected = net.eval()(examples)
        folded = fold_batch_norm(net)
        assert not any(isinstance(layer, torch.nn.Sequential) for layer in folded.features)
        assert set(folded.state_dict()) == set(VGGishTrunk().state_dict())
        torch.testing.assert_close(folded(examples), expected, atol=1e-4, rtol=1e-4)


def test_damaged_caches_are_rebuilt_with_a_warning_never_read_in_part(tmp_path, capsys):
    import pytest

    from mmgat.model.train.data import cached_instances
    from mmgat.model.train.train_frontend import logmel_cache, read_manifest

    data, out = tmp_path / "data", tmp_path / "fe.pt"
    records = write_tone_set(data)
    assert train(data, out) == 0
    paths = [r["path"] for r in records]
    embeddings, _ = cached_instances(data, paths)
    examples, targets, _ = logmel_cache(data, read_manifest(data))
    examples = np.array(examples)
    for cache in (cache_path(data, "embedding"), cache_path(data, "logmel").with_suffix(".npy")):
        whole = cache.read_bytes()
        cache.write_bytes(whole[: len(whole) // 2])  # a full disk or a killed write
    with pytest.raises(ValueError, match="damaged.*--frontend FILE"):  # which frontend made it?
        cached_instances(data, paths)
    capsys.readouterr()  # main() (train) left the log lines on this test's stderr, as mmgat-train has them
    rebuilt, _ = cached_instances(data, paths, frontend_file=out)
    warning = capsys.readouterr().err
    assert f"mmgat-train: warning: {cache_path(data, 'embedding')} is damaged (" in warning
    assert "; rebuilding it" in warning
    for before, after in zip(embeddings, rebuilt):
        np.testing.assert_allclose(after, before, atol=1e-6)
    rebuilt_examples, rebuilt_targets, _ = logmel_cache(data, read_manifest(data))
    damaged = cache_path(data, "logmel").with_suffix(".npy")
    assert f"mmgat-train: warning: {damaged} is damaged; rebuilding it" in capsys.readouterr().err
    np.testing.assert_array_equal(np.array(rebuilt_examples), examples)
    np.testing.assert_array_equal(rebuilt_targets, targets)


def test_continued_training_starts_from_the_function_the_trunk_had():
    """BatchNorm inserted into a trained trunk and set by keep_function: the trunk computes what
    it did, on the batch (train mode) and with running statistics (eval mode)."""
    trunk = seeded_init(Frontend(TRUNK), 4).net.eval()
    examples = torch.randn(32, 96, 64) * 2 - 1
    with torch.no_grad():
        expected = trunk(examples[:, None])
    model = Trainee(copy.deepcopy(trunk))
    with torch.no_grad():
        fresh = model.net(examples[:, None].contiguous(memory_format=torch.channels_last))
    assert (fresh - expected).abs().max() > 0.1  # what fresh BatchNorm does to it
    keep_function(model, examples)
    with torch.no_grad():
        for mode in (model.train, model.eval):
            mode()
            output = model.net(examples[:, None].contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(output, expected, atol=1e-3, rtol=1e-3)


def test_continued_training_first_fits_the_probe_to_the_trunk():
    """Targets a linear probe can read off the trunk's instances: fit_probe learns them (from
    chance to >= 90% of the labels right) and leaves the trunk as it was."""
    model = Trainee(seeded_init(Frontend(TRUNK), 5).net)
    examples = torch.randn(64, 96, 64)
    with torch.no_grad():
        model.eval()
        instances = model.net(examples[:, None])
        direction = torch.randn(instances.shape[1], model.probe.out_features)
        scores = instances @ direction
        targets = (scores > scores.median(dim=0).values).float()
    trunk = copy.deepcopy(model.net.state_dict())

    def accuracy():
        with torch.no_grad():
            model.eval()
            return float(((model(examples) > 0).float() == targets).float().mean())

    assert accuracy() < 0.7
    fit_probe(model, examples.numpy(), targets.numpy(), torch.device("cpu"), autocast=False)
    assert accuracy() >= 0.9
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, trunk[key]), key

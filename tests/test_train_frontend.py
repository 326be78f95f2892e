"""`mmgat-train frontend`: a head fitted on pooled trunk statistics, and the embedding cache it
leaves behind equals what the saved frontend computes."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from mmgat.model.audio import SAMPLE_RATE, load_audio, split_frames
from mmgat.model.frontend import load_frontend
from mmgat.model.labels import CLASSES
from mmgat.model.train import cli
from mmgat.model.train.data import cache_path, read_cache, synth_split

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


def test_frontend_training_writes_a_loadable_frontend_and_its_embedding_cache(tmp_path):
    data, out = tmp_path / "data", tmp_path / "fe.pt"
    records = write_tone_set(data)
    code = cli.main(["frontend", "--data", str(data), "--out", str(out), "--head-epochs", "3",
                     "--minutes", "0", "--seed", "0"])
    assert code == 0
    frontend = load_frontend(out)
    paths, instances, recorded = read_cache(cache_path(data, "embedding"))
    assert paths == [r["path"] for r in records]
    assert recorded == {"name": "vggish-trunk", "file": str(out),
                        "fingerprint": frontend.recorded_fingerprint}
    for path, cached in zip(paths, instances):
        fresh = frontend.embed(split_frames(load_audio(data / path)))
        assert cached.shape == fresh.shape == (SECONDS, 128)
        np.testing.assert_allclose(cached, fresh, atol=2e-3 * np.abs(fresh).max())


def test_pooled_statistics_are_cached_per_trunk(tmp_path):
    data = tmp_path / "data"
    write_tone_set(data)

    def train(seed, name):
        args = ["frontend", "--data", str(data), "--out", str(tmp_path / name), "--head-epochs", "1",
                "--minutes", "0", "--seed", str(seed)]
        assert cli.main(args) == 0
        return read_cache(cache_path(data, "pooled"))[2]["fingerprint"], \
            cache_path(data, "pooled").stat().st_mtime_ns

    first = train(0, "a.pt")
    assert train(0, "b.pt") == first  # same trunk: read, not recomputed nor rewritten
    other = train(1, "c.pt")  # another seeded trunk: its own statistics replace them
    assert other[0] != first[0] and other[1] != first[1]

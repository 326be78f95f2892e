"""What a model computes over data sets, for training, evaluation and the benchmarks: audio ->
per-second instances (the frontend in its serving precision, or the log-mel statistics of the
"mel-spectrogram input" ablation), windows of instances -> batches of graphs, and a model's
outputs over whole clips as users are served them.

The data sets and their caches (data.py) embed their clips and build their training batches
with the functions here; this module imports nothing from data.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmgat.model.audio import STFT_HOP_SAMPLES, load_audio, split_frames
from mmgat.model.frontend import DEFAULT_FRONTEND, LogMel, load_frontend
from mmgat.model.frontend_file import serving_precision, weights_fingerprint
from mmgat.model.graph import build_graph
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS
from mmgat.model.scorer import Scorer
from mmgat.model.serving import LatestPerSecond, served_windows
from mmgat.model.train.progress import track

EMBED_BATCH_FRAMES = 128  # frames per extractor call while building a cache


# ---------------------------------------------------------------------------------------------
# Audio -> instances.


class LogMelStats(torch.nn.Module):
    """The "mel-spectrogram input" ablation: 1 s frames -> mean and std of each log-mel band."""

    name = "logmel-stats"
    recorded_fingerprint = None

    def __init__(self):
        super().__init__()
        self.log_mel = LogMel()

    @property
    def device(self) -> torch.device:
        return self.log_mel.mel.device

    @torch.inference_mode()
    def embed(self, frames) -> np.ndarray:
        mel = self.log_mel(torch.as_tensor(frames, dtype=torch.float32).to(self.device))
        return torch.cat([mel.mean(dim=1), mel.std(dim=1)], dim=1).float().cpu().numpy()

    def fingerprint(self) -> str:
        """No weights: the log-mel's mel matrix, window and hop define these statistics."""
        return weights_fingerprint(self.name, {
            "mel": self.log_mel.mel, "window": self.log_mel.spectrogram.window,
            "hop": torch.tensor(STFT_HOP_SAMPLES)})


def make_extractor(input_kind: str, frontend_file, device) -> tuple[torch.nn.Module, dict]:
    """-> (extractor, its {"name", "fingerprint", "file"}); default: the shipped frontend, in
    the serving precision of `device`: MMGAT learns from, and is scored on, the instances that
    mmgat-live and mmgat-tag compute there (int8 on the CPU, also the fastest)."""
    if input_kind == "mel":
        extractor, file = LogMelStats().to(device), None
    else:
        file = str(frontend_file or DEFAULT_FRONTEND)
        extractor = load_frontend(file, device=device, precision=serving_precision(device),
                                  threads=torch.get_num_threads())
    return extractor, {"name": extractor.name, "file": file,
                       "fingerprint": extractor.recorded_fingerprint or extractor.fingerprint()}


def extract_instances(directory, paths: list[str], extractor) -> list[np.ndarray]:
    """Audio files -> per clip (n_seconds, D) float32, many clips' frames per extractor call
    (a GPU wants big batches)."""
    instances, pending = [], []

    def flush():
        if pending:
            embedded = extractor.embed(np.concatenate(pending))
            bounds = np.cumsum([0] + [len(frames) for frames in pending])
            instances.extend(embedded[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
            pending.clear()

    for path in track(paths, description=f"embedding with {extractor.name}"):
        pending.append(split_frames(load_audio(Path(directory) / path)))
        if sum(len(frames) for frames in pending) >= EMBED_BATCH_FRAMES:
            flush()
    flush()
    return instances


# ---------------------------------------------------------------------------------------------
# Instances -> graphs -> the model's outputs.


def collate(windows: list[np.ndarray], config, device) -> dict:
    """Windows of instances -> a padded batch of graphs (graphs built with the model's
    similarity and neighbours, exactly as the runtime builds them)."""
    longest = max(len(w) for w in windows)
    nodes = np.zeros((len(windows), longest, windows[0].shape[1]), dtype=np.float32)
    node_mask = np.zeros((len(windows), longest), dtype=bool)
    for b, window in enumerate(windows):
        nodes[b, : len(window)], node_mask[b, : len(window)] = window, True
    nodes, node_mask = torch.from_numpy(nodes).to(device), torch.from_numpy(node_mask).to(device)
    weights, scale_masks = build_graph(nodes, node_mask, config.neighbours, config.similarity)
    return {"nodes": nodes, "weights": weights, "scale_masks": scale_masks, "node_mask": node_mask}


def predict_clips(score, clips, window: int, config, device, batch_size: int = 64):
    """The model's outputs over each clip of `clips` (a data.ClipSet) as users are served them
    (`mmgat.model.serving`).

    Clip probabilities: the maximum over the clip's windows. Per-second probabilities: each
    second's node probability in the last window that holds it, as mmgat-tag reports them.
    `score(batch) -> (probs (B, C), group_probs (B, G), node_probs (B, N, C))` numpy, for a
    torch model or an ONNX session alike.
    Returns (probs (N, C), group_probs (N, G), per clip (n_seconds, C) second probabilities)."""
    pieces = [(i, start, end) for i in range(len(clips))
              for start, end in served_windows(len(clips.features[i]), window)]
    probs = np.zeros((len(clips), NUM_CLASSES), dtype=np.float32)
    group_probs = np.zeros((len(clips), NUM_GROUPS), dtype=np.float32)
    seconds = [LatestPerSecond() for _ in range(len(clips))]
    for first in range(0, len(pieces), batch_size):
        chosen = pieces[first: first + batch_size]
        batch = collate([clips.features[i][start:end] for i, start, end in chosen], config, device)
        window_probs, window_groups, node_probs = score(batch)
        for (owner, start, end), p, g, nodes in zip(chosen, window_probs, window_groups, node_probs):
            np.maximum(probs[owner], p, out=probs[owner])
            np.maximum(group_probs[owner], g, out=group_probs[owner])
            seconds[owner].add(end, nodes[: end - start])
    return probs, group_probs, [clip.array() for clip in seconds]


def torch_scorer(model):
    """`score` for predict_clips from an MMGAT module (eval mode, no gradients)."""
    scorer = Scorer(model)

    @torch.inference_mode()
    def score(batch):
        outputs = scorer(batch["nodes"], batch["weights"], batch["scale_masks"], batch["node_mask"])
        return tuple(output.float().cpu().numpy() for output in outputs)
    return score

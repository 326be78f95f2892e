"""Multi-label metrics over clips x classes, honouring a label mask (unlabelled pairs ignored).

F1 micro: from tp, fp, fn summed over all classes (paper section 4.1; sklearn average="micro").
F1 macro: the mean of per-class F1 (sklearn average="macro"). This is what the paper's Table 4
reports in its "F1" column (the mean of its MMGAT row is 0.62 = its F1 macro). The paper's
formula instead writes the harmonic mean of macro precision and macro recall; that figure is
reported too, as `f1_macro_pr`. A class with no positives and no predictions scores 0 (sklearn's
zero_division=0).
mAP: the mean over classes of average precision (sklearn's average_precision_score, step-wise
precision-recall integral, ties grouped), over classes with at least one labelled positive.
"""

from __future__ import annotations

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _as_mask(targets: np.ndarray, mask) -> np.ndarray:
    return np.ones(targets.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def _divide(numerator, denominator):
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)


def counts(targets, predictions, mask=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class tp, fp, fn over the labelled entries."""
    targets, predictions = np.asarray(targets) > 0.5, np.asarray(predictions) > 0.5
    mask = _as_mask(targets, mask)
    tp = (targets & predictions & mask).sum(axis=0)
    fp = (~targets & predictions & mask).sum(axis=0)
    fn = (targets & ~predictions & mask).sum(axis=0)
    return tp, fp, fn


def f1_scores(targets, predictions, mask=None) -> dict:
    """Binary predictions (N, C) against targets (N, C) -> micro/macro F1, per-class P/R/F1."""
    tp, fp, fn = counts(targets, predictions, mask)
    precision, recall = _divide(tp, tp + fp), _divide(tp, tp + fn)
    per_class = _divide(2 * tp, 2 * tp + fp + fn)
    macro_p, macro_r = precision.mean(), recall.mean()
    return {
        "f1_micro": float(_divide(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "f1_macro": float(per_class.mean()),
        "f1_macro_pr": float(_divide(2 * macro_p * macro_r, macro_p + macro_r)),
        "precision_micro": float(_divide(tp.sum(), tp.sum() + fp.sum())),
        "recall_micro": float(_divide(tp.sum(), tp.sum() + fn.sum())),
        "per_class_f1": per_class.tolist(),
        "per_class_precision": precision.tolist(),
        "per_class_recall": recall.tolist(),
    }


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """One class: sum over distinct thresholds of (R_n - R_{n-1}) * P_n (as sklearn)."""
    order = np.argsort(-scores, kind="stable")
    scores, targets = scores[order], targets[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(targets)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(targets, scores, mask=None) -> tuple[float, list]:
    """-> (mAP over classes with a labelled positive, per-class AP (None where undefined))."""
    targets, scores = np.asarray(targets) > 0.5, np.asarray(scores, dtype=float)
    mask = _as_mask(targets, mask)
    per_class = []
    for c in range(targets.shape[1]):
        labelled = mask[:, c]
        positives = targets[labelled, c]
        per_class.append(average_precision(positives.astype(float), scores[labelled, c])
                         if positives.any() else None)
    defined = [ap for ap in per_class if ap is not None]
    return (float(np.mean(defined)) if defined else 0.0), per_class


def tune_thresholds(targets, scores, mask=None, grid=THRESHOLD_GRID) -> np.ndarray:
    """Per class, the grid threshold maximising that class's F1; among equal F1s the one nearest
    0.5 (a small validation set leaves wide plateaus, whose edges overfit); 0.5 for a class
    without labelled positives."""
    targets, scores = np.asarray(targets) > 0.5, np.asarray(scores)
    mask = _as_mask(targets, mask)
    predicted = scores[None] >= np.asarray(grid)[:, None, None]  # (T, N, C)
    tp = (predicted & targets & mask).sum(axis=1)
    wrong = (predicted != targets) & mask  # fp + fn
    f1 = _divide(2 * tp, 2 * tp + wrong.sum(axis=1))  # (T, C)
    grid = np.asarray(grid, dtype=np.float32)
    best = np.isclose(f1, f1.max(axis=0), rtol=0.0, atol=1e-9)
    thresholds = grid[np.argmin(np.where(best, np.abs(grid - 0.5)[:, None], np.inf), axis=0)]
    return np.where((targets & mask).any(axis=0), thresholds, np.float32(0.5))


def evaluate_scores(targets, scores, thresholds, mask=None) -> dict:
    """Probabilities + thresholds -> F1 metrics and mAP."""
    metrics = f1_scores(targets, np.asarray(scores) >= np.asarray(thresholds), mask)
    metrics["map"], metrics["per_class_ap"] = mean_average_precision(targets, scores, mask)
    return metrics

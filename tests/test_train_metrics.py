"""Metrics equal scikit-learn's on random inputs; threshold tuning."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from mmgat.model.train.metrics import (THRESHOLD_GRID, evaluate_scores, f1_scores,
                                       mean_average_precision, tune_thresholds)


@pytest.mark.parametrize("seed", range(8))
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(5, 200)), int(rng.integers(1, 25))
    targets = rng.random((n, c)) < rng.uniform(0.05, 0.6)
    targets[0] = True  # every class has a positive (AP is undefined otherwise)
    scores = np.round(rng.random((n, c)), int(rng.integers(1, 4)))  # rounding makes ties
    predictions = scores >= rng.uniform(0.2, 0.8)
    ours = f1_scores(targets, predictions)
    kwargs = {"zero_division": 0}
    assert ours["f1_micro"] == pytest.approx(f1_score(targets, predictions, average="micro", **kwargs))
    assert ours["f1_macro"] == pytest.approx(f1_score(targets, predictions, average="macro", **kwargs))
    np.testing.assert_allclose(ours["per_class_f1"], f1_score(targets, predictions, average=None, **kwargs))
    macro_p = precision_score(targets, predictions, average="macro", **kwargs)
    macro_r = recall_score(targets, predictions, average="macro", **kwargs)
    paper_formula = 2 * macro_p * macro_r / (macro_p + macro_r) if macro_p + macro_r else 0.0
    assert ours["f1_macro_pr"] == pytest.approx(paper_formula)
    assert mean_average_precision(targets, scores)[0] == pytest.approx(
        average_precision_score(targets, scores, average="macro"))


def test_the_comparison_can_fail():
    """The two macro F1s differ on ordinary data, so the test above tells them apart."""
    rng = np.random.default_rng(0)
    targets, predictions = rng.random((50, 10)) < 0.3, rng.random((50, 10)) < 0.5
    ours = f1_scores(targets, predictions)
    assert abs(ours["f1_macro_pr"] - ours["f1_macro"]) > 1e-3
    assert ours["f1_macro"] != pytest.approx(f1_score(targets, predictions, average="micro"))


def test_masked_entries_are_ignored():
    rng = np.random.default_rng(1)
    targets, scores = rng.random((60, 6)) < 0.4, rng.random((60, 6))
    mask = rng.random((60, 6)) < 0.7
    targets[:6] = mask[:6] = True
    ours = evaluate_scores(targets, scores, np.full(6, 0.5), mask)
    for c in range(6):
        rows = mask[:, c]
        assert ours["per_class_f1"][c] == pytest.approx(
            f1_score(targets[rows, c], scores[rows, c] >= 0.5, zero_division=0))
        assert ours["per_class_ap"][c] == pytest.approx(
            average_precision_score(targets[rows, c], scores[rows, c]))
    garbage = np.where(mask, targets, ~targets)  # flipping unlabelled targets changes nothing
    assert evaluate_scores(garbage, scores, np.full(6, 0.5), mask)["f1_micro"] == ours["f1_micro"]


def test_tuned_thresholds_maximise_per_class_f1():
    rng = np.random.default_rng(2)
    targets = rng.random((80, 12)) < 0.3
    scores = np.clip(0.35 * targets + rng.random((80, 12)) * 0.7, 0, 1)
    targets[:, 5] = False
    thresholds = tune_thresholds(targets, scores)
    assert thresholds[5] == 0.5  # no positives: untouched
    for c in set(range(12)) - {5}:
        best = max(f1_score(targets[:, c], scores[:, c] >= t, zero_division=0) for t in THRESHOLD_GRID)
        assert f1_score(targets[:, c], scores[:, c] >= thresholds[c]) == pytest.approx(best)

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from sitesight.errors import InputError
from sitesight.evaluation.anomaly import anomaly_metrics, best_f1_threshold, pixel_auroc, threshold_from_normals


@pytest.mark.parametrize("seed", range(30))
def test_auroc_aupr_f1_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    y = rng.random(n) < 0.3
    y[0], y[-1] = True, False
    scores = rng.normal(size=n) + y * rng.uniform(0, 2)
    if seed % 2:
        scores = np.round(scores, 1)  # ties
    thr = float(np.median(scores))
    r = anomaly_metrics(y, scores, threshold=thr)
    assert r.auroc == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert r.aupr == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert r.f1 == pytest.approx(f1_score(y, scores >= thr), abs=1e-12)
    assert r.threshold_source == "given"


@pytest.mark.parametrize("seed", range(10))
def test_best_f1_threshold_matches_sklearn_pr_curve(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    y = rng.random(50) < 0.4
    y[0] = True
    scores = np.round(rng.normal(size=50) + y, 1)
    p, r, t = precision_recall_curve(y, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)[:-1]
    thr, best = best_f1_threshold(y, scores)
    assert best == pytest.approx(f1.max(), abs=1e-12)
    assert f1_score(y, scores >= thr) == pytest.approx(best, abs=1e-12)
    res = anomaly_metrics(y, scores)
    assert res.threshold_source == "best_f1" and res.f1 == pytest.approx(best)


def test_threshold_from_normals() -> None:
    normals = np.arange(101, dtype=float)
    assert threshold_from_normals(normals, 95) == pytest.approx(95.0)
    assert threshold_from_normals(normals, false_alarm_rate=0.1) == pytest.approx(90.0)
    with pytest.raises(InputError):
        threshold_from_normals(np.array([]))
    with pytest.raises(InputError):
        threshold_from_normals(normals, 120)


def test_pixel_auroc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 8, 9)) < 0.2
    maps = rng.random((3, 8, 9)) + masks * 0.3
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


def test_degenerate_inputs() -> None:
    r = anomaly_metrics(np.zeros(4, bool), np.arange(4.0), threshold=2.0)
    assert np.isnan(r.auroc) and r.to_dict()["auroc"] is None and r.fp == 2
    assert best_f1_threshold(np.zeros(3, bool), np.ones(3)) == (float("inf"), 0.0)
    with pytest.raises(InputError):
        anomaly_metrics(np.array([True]), np.array([np.nan]))
    with pytest.raises(InputError):
        anomaly_metrics(np.array([0, 2]), np.array([0.1, 0.2]))

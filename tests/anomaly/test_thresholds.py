"""Thresholds from normal images only vs the labels: held-out false-alarm rates, and the side-by-side
table checked against scikit-learn and hand counts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402
from sklearn.metrics import f1_score, precision_recall_curve  # noqa: E402

from sitesight.evaluation.anomaly import threshold_from_normals  # noqa: E402
from sitesight.models.anomaly.thresholds import threshold_table  # noqa: E402
from sitesight.synth.parts import make_parts  # noqa: E402

N_CALIBRATION = 1000
N_HELD_OUT = 1000


@pytest.fixture(scope="module")
def normal_scores():
    """Memory-detector scores of 2000 fresh normal parts (none of them seen while fitting)."""
    from sitesight.models.anomaly.memory import MemoryConfig, fit_memory

    # Small parts (32 px) and layer1 only, so that 2000 images score in a few seconds on two cores.
    fit = make_parts(40, 0, seed=0, image_wh=(32, 32))
    det = fit_memory(list(fit.images), config=MemoryConfig(image_size=32, layers=(1,), smoothing_sigma=2.0), seed=0, device="cpu")
    fresh = make_parts(N_CALIBRATION + N_HELD_OUT, 0, seed=7, image_wh=(32, 32))
    return det.predict(list(fresh.images), batch_size=100).scores


@pytest.mark.parametrize("target", [0.01, 0.02, 0.05, 0.10])
def test_normal_only_threshold_holds_false_alarm_rate_on_held_out_normals(normal_scores, target):
    calibration, held_out = normal_scores[:N_CALIBRATION], normal_scores[N_CALIBRATION:]
    t = threshold_from_normals(calibration, false_alarm_rate=target)
    assert t == threshold_from_normals(calibration, percentile=100 * (1 - target))
    far = float(np.mean(held_out >= t))
    print(f"target false-alarm rate {target:.0%}: held-out normals flagged {far:.1%} ({N_HELD_OUT} images)")
    assert abs(far - target) <= 0.02, (target, far)


def test_threshold_table_against_sklearn_and_hand_counts():
    rng = np.random.default_rng(0)
    calibration = rng.normal(0.0, 1.0, 400)
    normal = rng.normal(0.0, 1.0, 60)
    defect = rng.normal(2.0, 1.0, 40)
    scores = np.r_[normal, defect]
    labels = np.r_[np.zeros(60, bool), np.ones(40, bool)]
    defects = [None] * 60 + ["scratch", "dent"] * 20
    rows = threshold_table(calibration, scores, labels, defects=defects, false_alarm_rates=(0.01, 0.05))
    assert [r.name for r in rows] == ["normals FAR 1%", "normals FAR 5%", "best F1 (tuned on test labels)"]
    assert [r.source for r in rows] == ["normals", "normals", "labels"]
    for row, rate in zip(rows[:2], (0.01, 0.05), strict=True):
        # the order statistic whose exceedance Beta(n + 1 - k, k) stays <= rate with 95 % (scipy as the reference)
        k = next(k for k in range(1, 401) if stats.beta.sf(rate, 401 - k, k) <= 0.05)
        assert row.threshold == np.sort(calibration)[k - 1]
        assert row.target_false_alarm_rate == rate
    for row in rows:
        flagged = scores >= row.threshold
        assert row.false_alarm_rate == pytest.approx(flagged[:60].mean())
        assert row.recall == pytest.approx(flagged[60:].mean())
        assert row.f1 == pytest.approx(f1_score(labels, flagged))
        for kind in ("scratch", "dent"):
            sel = np.array([d == kind for d in defects])
            assert row.caught[kind] == [int(flagged[sel].sum()), 20]
    # Best F1 against scikit-learn's precision-recall curve (its thresholds are the distinct scores).
    p, r, th = precision_recall_curve(labels, scores)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)[:-1]
    assert rows[-1].f1 == pytest.approx(f1.max())
    assert rows[-1].f1 >= max(row.f1 for row in rows[:2])
    # Without calibration scores only the best-F1 row is left.
    assert [r.name for r in threshold_table(None, scores, labels)] == ["best F1 (tuned on test labels)"]
    assert threshold_table(None, scores, labels)[0].caught == {"anomalous": [rows[-1].caught["scratch"][0] + rows[-1].caught["dent"][0], 40]}

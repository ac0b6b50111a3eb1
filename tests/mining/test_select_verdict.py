"""Selection rules by hand; Bradley–Terry against scikit-learn's logistic regression; per-image errors by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.mining.select import Diversity, random_control, select_top
from sitesight.mining.verdict import bradley_terry, image_errors, verdict


def test_window_cap_per_camera_and_unknown_metadata_uncapped():
    scores = np.array([9, 8, 7, 6, 5, 4], float)
    cams = np.array(["c1", "c1", "c1", None, None, "c2"], object)
    ts = np.array([0, 100, 5000, 0, 0, np.nan])
    sel = select_top(scores, budget=10, camera=cams, timestamp=ts, diversity=Diversity(window_s=3600, max_per_window=1))
    assert sel.frames.tolist() == [0, 2, 3, 4, 5]
    assert sel.skipped["window_cap"] == 1


def test_near_duplicates_eligibility_budget_and_min_score():
    scores = np.array([9, 8, 7, 6, 0], float)
    hashes = np.array([0b0, 0b111, 0xFFFF, 0xFFFF0000, 0xFF], np.uint64)
    sel = select_top(scores, budget=3, hashes=hashes, diversity=Diversity(max_hamming=3))
    assert sel.frames.tolist() == [0, 2, 3]  # frame 1 is 3 bits from frame 0
    assert sel.skipped["near_duplicate"] == 1
    sel = select_top(scores, budget=10, eligible=np.array([True, False, True, True, True]))
    assert sel.frames.tolist() == [0, 2, 3]  # frame 4 scores 0: nothing to learn there
    assert select_top(scores, budget=2).frames.tolist() == [0, 1]
    with pytest.raises(InputError):
        select_top(scores, budget=-1)


def test_random_control_excludes_and_is_seeded():
    c = random_control(100, 10, exclude=np.arange(50), seed=3)
    assert c.size == 10 and c.min() >= 50 and np.array_equal(c, random_control(100, 10, exclude=np.arange(50), seed=3))
    assert random_control(5, 10, exclude=[0, 1]).tolist() == [2, 3, 4]


def _sklearn_bt(wins: np.ndarray) -> np.ndarray:
    m = wins.shape[0]
    rows, y, weight = [], [], []
    for i in range(m):
        for j in range(m):
            if i != j and wins[i, j] > 0:
                x = np.zeros(m)
                x[i], x[j] = 1, -1
                rows += [x, -x]
                y += [1, 0]
                weight += [wins[i, j], wins[i, j]]
    model = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    model.fit(np.array(rows), np.array(y), sample_weight=np.array(weight) / 2)
    beta = model.coef_[0]
    return beta - beta.mean()


@pytest.mark.parametrize("seed", range(5))
def test_bradley_terry_matches_logistic_regression_mle(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(3, 6))
    wins = rng.integers(1, 30, (m, m)).astype(float)
    np.fill_diagonal(wins, 0)
    got = np.log(bradley_terry(wins, prior=0.0))
    np.testing.assert_allclose(got - got.mean(), _sklearn_bt(wins), atol=1e-4)


def test_bradley_terry_prior_keeps_a_swept_model_finite():
    s = bradley_terry(np.array([[0, 10], [0, 0]]), prior=0.5)
    assert np.all(s > 0) and s[0] / s[1] == pytest.approx(10.5 / 0.5)


def test_image_errors_by_hand():
    gt = [Detections(xyxy=[[0, 0, 10, 10], [20, 20, 30, 30]], class_id=[0, 0]),
          Detections(xyxy=[[0, 0, 10, 10]], class_id=[1], attributes={"iscrowd": np.array([1])})]
    pred = [Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], score=[0.9, 0.8, 0.3], class_id=[0, 0, 0]),
            Detections(xyxy=[[1, 1, 9, 9]], score=[0.9], class_id=[1])]
    e = image_errors(gt, pred, conf=0.5)
    assert e["tp"].tolist() == [1, 0] and e["fp"].tolist() == [1, 0] and e["fn"].tolist() == [1, 0]


def test_verdict_by_hand_two_models():
    gt = [Detections(xyxy=[[0, 0, 10, 10]]) for _ in range(4)]
    good = [Detections(xyxy=[[0, 0, 10, 10]], score=[0.9]) for _ in range(4)]
    bad = [Detections.empty(), Detections.empty(), Detections(xyxy=[[0, 0, 10, 10]], score=[0.9]), Detections.empty()]
    v = verdict([*gt[:3], None], {"good": good, "bad": bad}, {("good", "bad"): [0, 1, 3]}, [2], prior=0.0)
    (p,) = v.pairs
    assert (p.n_images, p.wins_a, p.wins_b, p.ties, p.winner) == (2, 2, 0, 0, "good")  # frame 3 is unlabelled
    assert v.ranking == ["good", "bad"]
    assert v.aggressiveness[0, 1] == 1.0 and v.aggressiveness[1, 0] == 0.0
    assert v.mined_f1 == {"good": 1.0, "bad": 0.0} and v.control_f1 == {"good": 1.0, "bad": 1.0}
    assert v.drop["bad"] == 1.0 and v.resistance[1, 0] == 0.0
    with pytest.raises(InputError):
        verdict([None], {"a": [Detections.empty()]}, {}, [0])

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_fscore_support

from sitesight.errors import InputError
from sitesight.evaluation.classification import classification_metrics
from sitesight.evaluation.ranking import average_precision


@pytest.mark.parametrize("seed", range(40))
def test_matches_sklearn_on_random_problems(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    n = int(rng.integers(1, 60))
    y = rng.integers(0, k, n)
    if seed % 3 == 0:  # coarse scores: many ties
        probs = rng.integers(0, 4, (n, k)).astype(float) / 4
    else:
        probs = rng.dirichlet(np.ones(k), n)
    r = classification_metrics(y, probs, [f"c{i}" for i in range(k)])
    y_pred = probs.argmax(1)
    labels = list(range(k))
    p, rc, f, s = precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    assert r.accuracy == pytest.approx(np.mean(y == y_pred), abs=1e-12)
    np.testing.assert_array_equal(r.confusion, confusion_matrix(y, y_pred, labels=labels))
    for c in range(k):
        m = r.per_class[f"c{c}"]
        assert (m.precision, m.recall, m.f1, m.support) == pytest.approx((p[c], rc[c], f[c], s[c]), abs=1e-12)
        if s[c] > 0:
            assert m.ap == pytest.approx(average_precision_score(y == c, probs[:, c]), abs=1e-12)
        else:
            assert m.ap is None
    active = [c for c in labels if s[c] > 0]
    pa, ra, fa, _ = precision_recall_fscore_support(y, y_pred, labels=active, average="macro", zero_division=0)
    assert r.macro_active["precision"] == pytest.approx(pa, abs=1e-12)
    assert r.macro_active["recall"] == pytest.approx(ra, abs=1e-12)
    assert r.macro_active["f1"] == pytest.approx(fa, abs=1e-12)
    ap_active = np.mean([average_precision_score(y == c, probs[:, c]) for c in active])
    assert r.macro_active["ap"] == pytest.approx(ap_active, abs=1e-12)
    pm, rm, fm, _ = precision_recall_fscore_support(y, y_pred, labels=labels, average="macro", zero_division=0)
    assert (r.macro_all["precision"], r.macro_all["recall"], r.macro_all["f1"]) == pytest.approx((pm, rm, fm), abs=1e-12)


def test_zero_support_class_warns_and_stays_out_of_macro_active() -> None:
    # The field-report case: two real classes at high AP and a third with no test samples.
    y = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    r = classification_metrics(y, probs, ["wrong", "correct", "unknown"])
    assert r.per_class["unknown"].support == 0 and r.per_class["unknown"].ap is None
    assert any("unknown" in w for w in r.warnings)
    ap0 = average_precision_score(y == 0, probs[:, 0])
    ap1 = average_precision_score(y == 1, probs[:, 1])
    assert r.macro_active["ap"] == pytest.approx((ap0 + ap1) / 2)
    assert r.macro_all["ap"] == pytest.approx((ap0 + ap1) / 3)
    d = r.to_dict()
    assert set(d["per_class"]["wrong"]) >= {"ap", "precision", "recall", "f1", "support"}
    assert {"accuracy", "confusion", "macro_active", "macro_all"} <= set(d)


def test_hand_computed_ap() -> None:
    # ranks: +, -, +  → AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.8, 0.7])) == pytest.approx(0.5 + 1 / 3)


def test_bad_shapes_raise_input_error() -> None:
    with pytest.raises(InputError):
        classification_metrics(np.array([0, 1]), np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(InputError):
        classification_metrics(np.array([0, 5]), np.zeros((2, 2)), ["a", "b"])
    with pytest.raises(InputError):
        classification_metrics(np.array([0.5, 1.0]), np.zeros((2, 2)), ["a", "b"])

"""RoI attribute heads: the per-task box expansion and the baselines a head has to beat (scikit-learn
as the reference)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sklearn.metrics import accuracy_score, average_precision_score, f1_score  # noqa: E402

from sitesight.errors import InputError  # noqa: E402
from sitesight.models.attribute import PART_EXPANSION, PERSON_EXPANSION, baseline_metrics, box_expansion  # noqa: E402
from sitesight.models.roi_head import BoxExpansion  # noqa: E402


def test_expansion_per_task_and_parsed():
    assert box_expansion("auto", "person") == PERSON_EXPANSION == BoxExpansion(1.0, 0.2, 1.5)
    assert box_expansion("auto", "head") == PART_EXPANSION and PART_EXPANSION.bottom <= 0.1  # a helmet lies inside its head box
    assert box_expansion("x=1,top=0.2,bottom=1.5", "head") == BoxExpansion(1.0, 0.2, 1.5)
    assert box_expansion("bottom=0", "person") == BoxExpansion(1.0, 0.2, 0.0)
    for bad in ("left=1", "x=wide", "x=0", "top=-1", "x"):
        with pytest.raises(InputError):
            box_expansion(bad, "head")


def test_baselines_against_sklearn():
    rng = np.random.default_rng(0)
    names = ("unknown", "no", "yes")
    y_train = rng.choice(3, 500, p=[0.0, 0.35, 0.65])
    y_eval = rng.choice(3, 20000, p=[0.0, 0.4, 0.6])
    b = baseline_metrics(y_eval, y_train, names)
    present = [1, 2]  # macro over the classes present in y_eval, as macro_active
    majority = np.full_like(y_eval, 2)
    assert b["majority"]["predicts"] == "yes"
    assert b["majority"]["accuracy"] == pytest.approx(accuracy_score(y_eval, majority))
    assert b["majority"]["macro_f1"] == pytest.approx(f1_score(y_eval, majority, labels=present, average="macro", zero_division=0))
    # prior: AP of a constant score is the prevalence; guessing at the training frequencies (sklearn on a simulated guess)
    assert b["prior"]["macro_ap"] == pytest.approx(np.mean([average_precision_score(y_eval == c, np.zeros(len(y_eval))) for c in present]))
    q = np.bincount(y_train, minlength=3) / len(y_train)
    guess = rng.choice(3, len(y_eval), p=q)
    assert b["prior"]["accuracy"] == pytest.approx(accuracy_score(y_eval, guess), abs=0.01)
    assert b["prior"]["macro_f1"] == pytest.approx(f1_score(y_eval, guess, labels=present, average="macro", zero_division=0), abs=0.01)

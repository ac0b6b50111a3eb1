"""Done-when: a pool with planted weaknesses (A blind in dark frames, B blind to small workers).

The truth is known by construction, so the test checks that the mined sets are the planted failures
(precision >= 0.8), that the verdict ranks the models in the planted order (which is also their
order by F1 over the whole pool, computed here from the ground truth), and that the mined set shows
a larger metric drop than a second random set of the same size.
"""

from __future__ import annotations

import numpy as np
import pytest

from sitesight.mining import Diversity, mine_pool, pool_from_detections, random_control, verdict
from sitesight.mining.verdict import image_errors

from .planted import CLASSES, planted_pool


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    p = planted_pool(400, seed=7)
    pool = pool_from_detections(p.keys, p.image_wh, p.preds, camera=p.camera, timestamp=p.timestamp, class_names=CLASSES)
    result = mine_pool(pool, tmp_path_factory.mktemp("mined"), budget=90, diversity=Diversity(window_s=3600, max_per_window=3))
    return p, result


def test_mined_sets_are_the_planted_failures(mined):
    p, result = mined
    planted = {"A~B": p.dark | p.small, "A~C": p.dark, "B~C": p.small}
    for pair, frames in result.pairs.items():
        assert frames.size == 30
        precision = planted[pair][frames].mean()
        assert precision >= 0.8, (pair, precision)


def test_verdict_ranks_models_in_planted_order(mined):
    p, result = mined
    gts = [None] * len(p.gts)
    for f in np.union1d(result.mined, result.control):
        gts[f] = p.gts[f]  # the labels that come back
    pair_sets = {tuple(name.split("~")): frames for name, frames in result.pairs.items()}
    v = verdict(gts, p.preds, pair_sets, result.control)
    truth = {m: image_errors(p.gts, p.preds[m]) for m in p.preds}
    f1 = {m: 2 * e["tp"].sum() / (2 * e["tp"].sum() + e["fp"].sum() + e["fn"].sum()) for m, e in truth.items()}
    assert sorted(f1, key=lambda m: -f1[m]) == ["C", "B", "A"]
    assert v.ranking == ["C", "B", "A"]
    assert {pv.winner for pv in v.pairs if pv.a == "A"} == {"B", "C"}
    assert next(pv.winner for pv in v.pairs if (pv.a, pv.b) == ("B", "C")) == "C"
    # aggressiveness: C exposes A and B far more often than they expose C
    i = {m: k for k, m in enumerate(v.models)}
    assert v.aggressiveness[i["C"], i["A"]] > 0.8 and v.aggressiveness[i["A"], i["C"]] < 0.2

    # the mined set drops the weak models far more than a second random set of the same size
    other = random_control(len(p.gts), result.control.size, exclude=np.union1d(result.mined, result.control), seed=99)
    gts2 = list(gts)
    for f in other:
        gts2[f] = p.gts[f]
    v2 = verdict(gts2, p.preds, {("A", "B"): other}, result.control)
    for m in ("A", "B"):
        random_drop = v2.control_f1[m] - v2.mined_f1[m]
        assert v.drop[m] > random_drop + 0.15, (m, v.drop[m], random_drop)
    assert abs(v.drop["C"]) < 0.05

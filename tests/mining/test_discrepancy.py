"""Discrepancy terms against hand-computed cases, scipy's Jensen–Shannon and a sequential greedy matcher."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from sitesight import Detections
from sitesight.mining.discrepancy import (
    CrossTaskRules,
    DiscrepancyWeights,
    frame_pair_hits,
    greedy_match,
    js_divergence,
    pair_discrepancy,
)
from sitesight.mining.pool import pool_from_detections

NO_CROSS = None


def _pool(a: list[Detections], b: list[Detections], probs: str | None = None):
    return pool_from_detections([f"f{i}.jpg" for i in range(len(a))], [(640, 480)] * len(a), {"A": a, "B": b}, probs_name=probs)


def _sequential_greedy(ia, ib, w, n_a):
    order = sorted(range(len(ia)), key=lambda k: (-w[k], ia[k], ib[k]))
    match, used_b = [-1] * n_a, set()
    for k in order:
        if match[ia[k]] < 0 and ib[k] not in used_b:
            match[ia[k]] = ib[k]
            used_b.add(ib[k])
    return match


@pytest.mark.parametrize("seed", range(30))
def test_greedy_match_equals_sequential_greedy(seed):
    rng = np.random.default_rng(seed)
    n_a, n_b = int(rng.integers(1, 15)), int(rng.integers(1, 15))
    pairs = {(int(a), int(b)) for a, b in zip(rng.integers(0, n_a, 60), rng.integers(0, n_b, 60), strict=True)}
    ia = np.array([p[0] for p in pairs])
    ib = np.array([p[1] for p in pairs])
    w = rng.integers(0, 5, ia.size).astype(float) / 4  # many ties on purpose
    assert greedy_match(ia, ib, w, n_a, n_b).tolist() == _sequential_greedy(ia.tolist(), ib.tolist(), w.tolist(), n_a)


def test_js_divergence_matches_scipy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), 50)
    q = rng.dirichlet(np.ones(4), 50)
    p[0] = [1, 0, 0, 0]
    q[0] = [0, 1, 0, 0]
    ref = np.array([jensenshannon(a, b, base=2) ** 2 for a, b in zip(p, q, strict=True)])
    np.testing.assert_allclose(js_divergence(p, q), ref, atol=1e-9)
    assert js_divergence(p[:1], q[:1])[0] == pytest.approx(1.0)


def test_frame_pair_hits_lists_exactly_the_same_frame_pairs():
    rng = np.random.default_rng(1)
    na, nb = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    off_a, off_b = np.r_[0, np.cumsum(na)], np.r_[0, np.cumsum(nb)]
    xa = rng.uniform(0, 100, (off_a[-1], 4)).astype(np.float32)
    xb = rng.uniform(0, 100, (off_b[-1], 4)).astype(np.float32)
    everything = lambda a, b: (~np.isnan(a[..., 0] + b[..., 0]), a[..., 0] + 0 * b[..., 0])  # noqa: E731
    got = set()
    for ia, ib, _ in frame_pair_hits(off_a, xa, off_b, xb, everything, max_cells=16):
        got.update(zip(ia.tolist(), ib.tolist(), strict=True))
    want = {(i, j) for f in range(40) for i in range(off_a[f], off_a[f + 1]) for j in range(off_b[f], off_b[f + 1])}
    assert got == want


def test_detection_terms_by_hand():
    # A: a matched person (IoU 0.8, scores .9/.6), a class flip (.8 person vs .7 helmet, same box), an A-only box (.5)
    a = Detections(xyxy=[[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 450, 50]], score=[0.9, 0.8, 0.5], class_id=[0, 0, 0])
    # B: the same person shifted (IoU = 80*100 / (2*100*100 - 8000) = 2/3), the flip, a B-only faint box
    b = Detections(xyxy=[[20, 0, 120, 100], [200, 0, 300, 100], [500, 300, 520, 320]], score=[0.6, 0.7, 0.1], class_id=[0, 1, 2])
    pd = pair_discrepancy(_pool([a], [b]), "A", "B", rules=NO_CROSS, weights=DiscrepancyWeights(localisation=0.5, flip=1.0))
    iou = 8000 / 12000
    want = (abs(0.9 - 0.6) + 0.5 * 0.6 * (1 - iou)) + (abs(0.8 - 0.7) + 1.0 * 0.7) + 0.5 + 0.1
    assert pd.det[0] == pytest.approx(want, abs=1e-6)
    assert pd.a_match.tolist() == [0, 1, -1]
    # confident disputes (conf_hi .6, conf_lo .3): the flip (both >= .6); .9/.6 is not "one yes, one no"
    assert pd.confident[0] == 1
    assert pd.cls[0] == 0 and pd.cross[0] == 0


def test_same_class_partner_preferred_over_flip():
    a = Detections(xyxy=[[0, 0, 100, 100]], score=[0.9], class_id=[0])
    b = Detections(xyxy=[[0, 0, 100, 100], [5, 0, 100, 100]], score=[0.9, 0.9], class_id=[1, 0])
    pd = pair_discrepancy(_pool([a], [b]), "A", "B", rules=NO_CROSS)
    assert pd.a_match.tolist() == [1]  # the same-class box at IoU 0.95, not the identical flipped one


def test_two_faint_guesses_do_not_dominate_one_confident_miss():
    faint = [Detections(xyxy=[[0, 0, 50, 50], [100, 0, 150, 50]], score=[0.1, 0.1], class_id=[0, 0]), Detections.empty()]
    sure = [Detections.empty(), Detections(xyxy=[[0, 0, 50, 50]], score=[0.95], class_id=[0])]
    pd = pair_discrepancy(_pool(faint, sure), "A", "B", rules=NO_CROSS)
    assert pd.total[1] > pd.total[0]
    assert pd.confident.tolist() == [0, 1]


def test_classification_term_js_and_confident_flip():
    box = [[0, 0, 40, 100]]
    pa = np.array([[0.05, 0.9, 0.05]], np.float32)
    pb = np.array([[0.05, 0.15, 0.8]], np.float32)
    a = [Detections(xyxy=box, score=[0.9], class_id=[0], attributes={"p": pa})]
    b = [Detections(xyxy=box, score=[0.8], class_id=[0], attributes={"p": pb})]
    pd = pair_discrepancy(_pool(a, b, probs="p"), "A", "B", rules=NO_CROSS)
    js = jensenshannon(pa[0].astype(float), pb[0].astype(float), base=2) ** 2
    assert pd.cls[0] == pytest.approx(0.8 * (js + 1.0), abs=1e-5)
    assert pd.confident[0] == 1


def test_cross_task_rules_by_hand():
    rules = CrossTaskRules(person_class=0, part_classes=(1, 2), upper_fraction=0.4, min_person_height=48,
                           large_person_height=120, unknown_index=0, conf=0.5, part_conf=0.25)
    person = [0, 0, 60, 150]
    helmet_box, head_box = [20, 5, 40, 25], [20, 5, 40, 25]
    unknown = np.array([[0.9, 0.05, 0.05], [np.nan] * 3], np.float32)
    # A: person + helmet, attribute head says "unknown" for this clear 150 px person
    a = Detections(xyxy=[person, helmet_box], score=[0.9, 0.8], class_id=[0, 1], attributes={"p": unknown})
    # B: same person with a bare head: helmet state disagrees
    b = Detections(xyxy=[person, head_box], score=[0.8, 0.7], class_id=[0, 2], attributes={"p": np.full((2, 3), np.nan, np.float32)})
    pd = pair_discrepancy(_pool([a], [b], probs="p"), "A", "B", rules=rules)
    # A's person: helmet-state disagreement (0.9) + says unknown (0.9); B's person: disagreement (0.8)
    assert pd.cross[0] == pytest.approx(0.9 + 0.9 + 0.8, abs=1e-6)
    # B without any part in the head region: A's person implies one there → violation 0.9
    b2 = Detections(xyxy=[person], score=[0.8], class_id=[0], attributes={"p": np.full((1, 3), np.nan, np.float32)})
    pd2 = pair_discrepancy(_pool([a], [b2], probs="p"), "A", "B", rules=rules)
    # A: missing part in B (0.9) + unknown (0.9); B's person: A has a helmet there, B has none → no rule-2 clash
    assert pd2.cross[0] == pytest.approx(0.9 + 0.9, abs=1e-6)


def test_weights_combine_terms():
    a = [Detections(xyxy=[[0, 0, 50, 120]], score=[0.9], class_id=[0])]
    b = [Detections.empty()]
    pool = _pool(a, b)
    w = DiscrepancyWeights(detection=2.0, classification=0.0, cross_task=3.0)
    pd = pair_discrepancy(pool, "A", "B", weights=w, rules=CrossTaskRules(unknown_index=None))
    assert pd.det[0] == pytest.approx(0.9) and pd.cross[0] == pytest.approx(0.9)
    assert pd.total[0] == pytest.approx(2 * 0.9 + 3 * 0.9)

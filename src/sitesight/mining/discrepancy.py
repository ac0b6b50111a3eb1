"""How much two models disagree on each frame: detection, classification and cross-task terms.

All terms are computed over the whole pool at once from `FlatDetections` (no per-frame Python
objects), in chunks of frames so that memory stays bounded.

**Detection.** Boxes of model A and model B in the same frame are matched one to one by IoU
(``>= iou``), greedily by descending IoU with same-class pairs preferred over class flips (a
pair's weight is ``IoU + 1`` when the classes agree, ``IoU`` otherwise, so a class flip is only
matched when no same-class partner exists). Every box then contributes, weighted by confidence so
that two low-confidence guesses cannot dominate:

* existence: ``|s_a - s_b|`` for a matched pair, ``s`` for a box the other model has no match for;
* class flip: ``min(s_a, s_b)`` for a matched pair with different classes;
* localisation: ``min(s_a, s_b) * (1 - IoU)`` for a matched same-class pair.

**Classification** (attribute heads, e.g. the RoI head's ``safety_rope_probs``): for matched
pairs where both models give a probability vector, ``min(s_a, s_b) * (JS + flip)``: ``JS`` is the
Jensen–Shannon divergence in bits (0..1) and ``flip`` is 1 when both top-1 probabilities are
``>= cls_conf`` and the top-1 classes differ.

**Cross-task** (what one model's output implies about another's, `CrossTaskRules`): for each of
the two models X (the other being Y) and each confident person of X at least ``min_person_height``
tall, a violation weighted by the person's score when (1) Y has no head/helmet box whose centre lies
in the upper ``upper_fraction`` of the person box, (2) X and Y both have one there but of different
classes (helmet state disagrees), or (3) X's attribute head says ``unknown`` (top-1 ``>= cls_conf``)
for a person at least ``large_person_height`` tall.

A frame's term is the sum over its boxes (an expected number of disputed objects), and the total
is ``weights.detection * det + weights.classification * cls + weights.cross_task * cross``.
``confident`` counts the disputes both models are sure about (MAD's filter): an unmatched box with
``s >= conf_hi``, a matched pair with one score ``>= conf_hi`` and the other ``< conf_lo``, a class
flip with both ``>= conf_hi``, a confident top-1 attribute flip.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.mining.pool import pool_from_detections
    >>> from sitesight.mining.discrepancy import pair_discrepancy
    >>> a = [Detections(xyxy=[[0, 0, 10, 20]], score=[0.9])]
    >>> b = [Detections.empty()]
    >>> pool = pool_from_detections(["f.jpg"], [(64, 64)], {"A": a, "B": b})
    >>> round(float(pair_discrepancy(pool, "A", "B").det[0]), 6)
    0.9
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sitesight.mining.pairing import frame_pair_hits, greedy_match, match_runs
from sitesight.mining.pool import FlatDetections, Pool

__all__ = ["DiscrepancyWeights", "CrossTaskRules", "PairDiscrepancy", "js_divergence", "greedy_match",
           "frame_pair_hits", "pair_discrepancy", "all_pairs"]

@dataclass(frozen=True)
class DiscrepancyWeights:
    """User weights of the combined score (and of the detection sub-terms)."""

    detection: float = 1.0
    classification: float = 1.0
    cross_task: float = 0.5
    localisation: float = 0.5
    flip: float = 1.0


@dataclass(frozen=True)
class CrossTaskRules:
    """Class ids and thresholds of the cross-task rules (defaults: the synth classes person/helmet/head).

    Args:
        person_class: class id of persons.
        part_classes: class ids of head-region parts, e.g. ``(helmet, head)``; empty turns rules 1–2 off.
        upper_fraction: the head region is this top fraction of a person box.
        min_person_height: persons shorter than this (px) are not checked by rules 1–2.
        large_person_height: rule 3 checks persons at least this tall (px).
        unknown_index: index of ``unknown`` in the attribute probabilities (the RoI head puts it first);
            None turns rule 3 off.
        conf: a person is confident at ``score >= conf``.
        part_conf: a part counts at ``score >= part_conf``.
    """

    person_class: int = 0
    part_classes: tuple[int, ...] = (1, 2)
    upper_fraction: float = 0.4
    min_person_height: float = 48.0
    large_person_height: float = 120.0
    unknown_index: int | None = 0
    conf: float = 0.5
    part_conf: float = 0.25


@dataclass(frozen=True, eq=False)
class PairDiscrepancy:
    """Discrepancy of models ``a`` and ``b`` over a pool of ``F`` frames.

    Attributes:
        a, b: model names.
        det, cls, cross, total: ``(F,)`` float64 per-frame terms and their weighted sum.
        confident: ``(F,)`` int64 disputes both models are confident about.
        a_match: ``(Na,)`` int64 row of B matched to each row of A, -1 if none.
        a_iou: ``(Na,)`` float32 IoU of that match (0 if none).
        a_contrib, b_contrib: ``(Na,)`` / ``(Nb,)`` float64 weighted contribution of each box (a
            matched pair's detection and classification terms are booked on its A row).
        a_cross, b_cross: ``(Na,)`` / ``(Nb,)`` float64 unweighted cross-task violations per box.
    """

    a: str
    b: str
    det: np.ndarray
    cls: np.ndarray
    cross: np.ndarray
    total: np.ndarray
    confident: np.ndarray
    a_match: np.ndarray
    a_iou: np.ndarray
    a_contrib: np.ndarray
    b_contrib: np.ndarray
    a_cross: np.ndarray
    b_cross: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.a}~{self.b}"


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(N,)`` Jensen–Shannon divergence in bits (0..1) of ``(N, K)`` probability rows (renormalised)."""
    p = np.clip(np.asarray(p, np.float64), 0, None)
    q = np.clip(np.asarray(q, np.float64), 0, None)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    m = (p + q) / 2

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log2(x / np.where(m > 0, m, 1)), 0.0).sum(axis=1)

    return np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0)


def _head_parts(x: FlatDetections, y: FlatDetections, persons: np.ndarray, rules: CrossTaskRules) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``persons`` (rows of ``x``): does ``y`` have a part in its head region, and its class.

    Returns ``(has_part (P,) bool, part_class (P,) int64, -1 when none)``; the highest-scoring part wins.
    """
    has = np.zeros(persons.size, bool)
    cls = np.full(persons.size, -1, np.int64)
    parts = np.flatnonzero(np.isin(y.class_id, rules.part_classes) & (y.score >= rules.part_conf))
    if persons.size == 0 or parts.size == 0:
        return has, cls
    n = x.n_frames
    p_off = np.r_[0, np.cumsum(np.bincount(x.frame[persons], minlength=n))]
    q_off = np.r_[0, np.cumsum(np.bincount(y.frame[parts], minlength=n))]
    frac = rules.upper_fraction

    def inside(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cx, cy = (q[..., 0] + q[..., 2]) / 2, (q[..., 1] + q[..., 3]) / 2
        top = p[..., 1] + frac * (p[..., 3] - p[..., 1])
        return (cx >= p[..., 0]) & (cx <= p[..., 2]) & (cy >= p[..., 1]) & (cy <= top), cx

    part_score = y.score[parts]
    for ip, iq, _ in frame_pair_hits(p_off, x.xyxy[persons], q_off, y.xyxy[parts], inside):
        if ip.size == 0:  # a block of frames with no hit (np.r_[True, ...] below needs one)
            continue
        order = np.lexsort((-part_score[iq], ip))
        ip, iq = ip[order], iq[order]
        first = np.r_[True, ip[1:] != ip[:-1]]
        has[ip[first]] = True
        cls[ip[first]] = y.class_id[parts[iq[first]]]
    return has, cls


def _cross_violations(x: FlatDetections, y: FlatDetections, rules: CrossTaskRules) -> np.ndarray:
    """``(Nx,)`` float64 cross-task violation weight of each box of ``x`` (non-zero on persons only)."""
    out = np.zeros(len(x), np.float64)
    height = x.xyxy[:, 3] - x.xyxy[:, 1]
    confident = (x.class_id == rules.person_class) & (x.score >= rules.conf)
    if rules.part_classes:
        persons = np.flatnonzero(confident & (height >= rules.min_person_height))
        has_y, cls_y = _head_parts(x, y, persons, rules)
        has_x, cls_x = _head_parts(x, x, persons, rules)
        violation = (~has_y).astype(np.float64) + (has_x & has_y & (cls_x != cls_y))
        out[persons] += violation * x.score[persons]
    if rules.unknown_index is not None and x.probs is not None and x.probs.shape[1] > rules.unknown_index:
        large = np.flatnonzero(confident & (height >= rules.large_person_height))
        p = x.probs[large]
        valid = ~np.isnan(p).any(axis=1)
        says_unknown = valid & (np.nan_to_num(p).argmax(axis=1) == rules.unknown_index)
        says_unknown &= np.nan_to_num(p).max(axis=1) >= 0.5
        out[large[says_unknown]] += x.score[large[says_unknown]]
    return out


def pair_discrepancy(
    pool: Pool,
    a: str,
    b: str,
    *,
    weights: DiscrepancyWeights = DiscrepancyWeights(),
    rules: CrossTaskRules | None = CrossTaskRules(),
    iou: float = 0.5,
    conf_hi: float | tuple[float, float] = 0.6,
    conf_lo: float | tuple[float, float] = 0.3,
    cls_conf: float = 0.6,
) -> PairDiscrepancy:
    """Per-frame discrepancy of models ``a`` and ``b`` of ``pool`` (terms in the module notes).

    Args:
        pool: frames and detections (`sitesight.mining.pool`).
        a, b: model names in ``pool.runs``.
        weights: weights of the combined score.
        rules: cross-task rules; None turns the cross-task term off.
        iou: IoU at which boxes of the two models are the same object.
        conf_hi, conf_lo: "confident yes" / "confident no" scores for the ``confident`` count, one
            for both models or ``(a, b)`` each on its own scale (`sitesight.mining.confident`).
        cls_conf: top-1 probability at which an attribute prediction is confident.
    """
    ra, rb = pool.runs[a], pool.runs[b]
    n = pool.n_frames
    a_match, a_iou = match_runs(ra, rb, iou)
    m = np.flatnonzero(a_match >= 0)
    mb = a_match[m]
    sa, sb = ra.score.astype(np.float64), rb.score.astype(np.float64)
    b_matched = np.zeros(len(rb), bool)
    b_matched[mb] = True
    lo = np.minimum(sa[m], sb[mb])
    flip = ra.class_id[m] != rb.class_id[mb]
    # detection, booked on A rows (matched pairs and A-only boxes) and on B-only rows
    a_det = sa.copy()
    a_det[m] = np.abs(sa[m] - sb[mb]) + weights.flip * lo * flip + weights.localisation * lo * (1 - a_iou[m]) * ~flip
    b_det = np.where(b_matched, 0.0, sb)
    (hi_a, hi_b), (lo_a, lo_b) = _per_model(conf_hi), _per_model(conf_lo)
    a_conf = (a_match < 0) & (sa >= hi_a)
    a_yes, b_yes = sa[m] >= hi_a, sb[mb] >= hi_b
    a_conf[m] = (a_yes & (sb[mb] < lo_b)) | (b_yes & (sa[m] < lo_a)) | (flip & a_yes & b_yes)
    b_conf = ~b_matched & (sb >= hi_b)
    # classification on matched pairs where both models give probabilities
    a_cls = np.zeros(len(ra), np.float64)
    if ra.probs is not None and rb.probs is not None and ra.probs.shape[1] == rb.probs.shape[1] and m.size:
        pa, pb = ra.probs[m], rb.probs[mb]
        both = ~(np.isnan(pa).any(axis=1) | np.isnan(pb).any(axis=1))
        js = np.zeros(m.size)
        js[both] = js_divergence(pa[both], pb[both])
        top_flip = both & (np.nan_to_num(pa).argmax(1) != np.nan_to_num(pb).argmax(1))
        top_flip &= (np.nan_to_num(pa).max(1) >= cls_conf) & (np.nan_to_num(pb).max(1) >= cls_conf)
        a_cls[m] = lo * (js + top_flip)
        a_conf[m] |= top_flip
    cross_a = _cross_violations(ra, rb, rules) if rules is not None else np.zeros(len(ra))
    cross_b = _cross_violations(rb, ra, rules) if rules is not None else np.zeros(len(rb))
    fa, fb = ra.frame, rb.frame
    det = np.bincount(fa, a_det, n) + np.bincount(fb, b_det, n)
    cls = np.bincount(fa, a_cls, n)
    cross = np.bincount(fa, cross_a, n) + np.bincount(fb, cross_b, n)
    confident = np.bincount(fa, a_conf, n).astype(np.int64) + np.bincount(fb, b_conf, n).astype(np.int64)
    total = weights.detection * det + weights.classification * cls + weights.cross_task * cross
    a_contrib = weights.detection * a_det + weights.classification * a_cls + weights.cross_task * cross_a
    b_contrib = weights.detection * b_det + weights.cross_task * cross_b
    return PairDiscrepancy(a, b, det, cls, cross, total, confident, a_match, a_iou, a_contrib, b_contrib, cross_a, cross_b)


def _per_model(value: float | tuple[float, float]) -> tuple[float, float]:
    return (float(value), float(value)) if np.isscalar(value) else (float(value[0]), float(value[1]))


def all_pairs(
    pool: Pool,
    *,
    weights: DiscrepancyWeights = DiscrepancyWeights(),
    rules: CrossTaskRules | None = CrossTaskRules(),
    iou: float = 0.5,
    conf_hi: float | Mapping[str, float] = 0.6,
    conf_lo: float | Mapping[str, float] = 0.3,
) -> list[PairDiscrepancy]:
    """`pair_discrepancy` for every pair of models of the pool (in run order: A~B, A~C, B~C, …).

    ``conf_hi`` / ``conf_lo``: one number for all models, or model name → its own (e.g. from
    `sitesight.mining.confident.confident_points`).
    """
    names = list(pool.runs)

    def pick(value: float | Mapping[str, float], x: str, y: str) -> float | tuple[float, float]:
        return (float(value[x]), float(value[y])) if isinstance(value, Mapping) else float(value)

    return [pair_discrepancy(pool, x, y, weights=weights, rules=rules, iou=iou, conf_hi=pick(conf_hi, x, y),
                             conf_lo=pick(conf_lo, x, y))
            for i, x in enumerate(names) for y in names[i + 1 :]]

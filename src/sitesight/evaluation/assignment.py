"""Greedy assignment of candidate pairs, for every IoU threshold and area range, stored sparsely.

pycocotools matches each (image, class) group once per area range and IoU threshold. Almost all
of that work is shared, and this module does it once:

* Only candidate pairs (IoU ≥ the lowest threshold) can ever match; every other prediction is
  unmatched at every threshold, in every range.
* A ground truth whose candidate predictions have no other candidate forms a "star": at threshold
  ``t`` the first of its predictions (by score rank) with IoU ≥ t takes it (all of them, for crowd
  ground truth). Area ranges only decide whether that ground truth is ignored, never who takes it,
  so one pass over thresholds, by IoU levels and a running maximum, serves every range.
* The remaining (contested) pairs are matched by the greedy rule, one score rank at a time over
  all groups and thresholds at once. pycocotools sorts ignored ground truth last and prefers
  regular ground truth, so a range can change the outcome; a group is matched again for a range
  only when the ignore flags of its contested ground truth differ from the crowd flags used in
  the shared pass (and are not uniform in both).

Matches are ``(threshold index, prediction position, ground-truth row)`` entries; a prediction has
at most one entry per threshold and range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitesight.evaluation.boxtable import BoxTable
from sitesight.evaluation.candidates import Candidates, find_candidates

__all__ = ["SparseMatches", "match_sparse"]

_Entries = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SparseMatches:
    """Result of `match_sparse`: one entry per (threshold, prediction) matched in at least one range.

    Attributes:
        candidates: prediction order (``pred_index``), ranks and the candidate pairs.
        gt_ignored: ``(A, G)`` bool ground truth ignored per area range (crowd or out of range).
        pred_out_of_range: ``(A, D)`` bool prediction area outside the range (D in candidate order).
        entry_t: ``(E,)`` int64 index into ``iou_thresholds``.
        entry_pred: ``(E,)`` int64 prediction position (into ``candidates.pred_index``).
        entry_gt: ``(A, E)`` int64 matched ground-truth row in each area range, -1 = unmatched there.
        n_shared: the first ``n_shared`` entries match the same ground truth in every range.
        iou_thresholds: ``(T,)`` float64 as given.
    """

    candidates: Candidates
    gt_ignored: np.ndarray
    pred_out_of_range: np.ndarray
    entry_t: np.ndarray
    entry_pred: np.ndarray
    entry_gt: np.ndarray
    n_shared: int
    iou_thresholds: np.ndarray

    def entries(self, area_range: int) -> _Entries:
        """``(t, d, g)`` of the matches in one area range."""
        g = self.entry_gt[area_range]
        hit = g >= 0
        return self.entry_t[hit], self.entry_pred[hit], g[hit]


def match_sparse(
    gt: BoxTable,
    pred: BoxTable,
    *,
    num_classes: int,
    n_images: int,
    iou_thresholds: np.ndarray,
    area_lo: np.ndarray,
    area_hi: np.ndarray,
    max_det: int | None,
) -> SparseMatches:
    """Match predictions to ground truth per image and class, every threshold and area range.

    Args:
        gt, pred: tables with class indices in ``[0, num_classes)``, images in ``[0, n_images)``.
        iou_thresholds: ``(T,)``; a match needs IoU ≥ ``min(t, 1 - 1e-10)``.
        area_lo, area_hi: ``(A, n_images)`` inclusive area bounds per range and image, or ``(A, 1)``
            when they are the same for every image.
        max_det: predictions kept per image and class, highest score first (None = all).
    """
    thr = np.asarray(iou_thresholds, np.float64)
    capped = np.minimum(thr, 1 - 1e-10)
    perm = np.argsort(capped, kind="stable")
    thr_sorted = capped[perm]
    min_iou = float(thr_sorted[0]) if thr.size else np.inf
    cand = find_candidates(gt, pred, num_classes=num_classes, n_images=n_images, min_iou=min_iou, max_det=max_det)
    gt_lo, gt_hi = _per_box(area_lo, gt.frame), _per_box(area_hi, gt.frame)
    gt_ignored = gt.crowd[None, :] | (gt.range_area[None, :] < gt_lo) | (gt.range_area[None, :] > gt_hi)
    rows = cand.pred_index
    p_area, p_img = pred.area[rows], pred.frame[rows]
    out_of_range = (p_area[None, :] < _per_box(area_lo, p_img)) | (p_area[None, :] > _per_box(area_hi, p_img))
    n_ranges = area_lo.shape[0]
    empty = np.zeros(0, np.int64)
    if cand.pair_pred.size == 0:
        return SparseMatches(cand, gt_ignored, out_of_range, empty, empty, np.zeros((n_ranges, 0), np.int64), 0, thr)

    pp, pg, pu = cand.pair_pred, cand.pair_gt, cand.pair_iou
    level = np.searchsorted(thr_sorted, pu, side="right")  # thresholds (sorted) the pair clears
    multi = np.bincount(pp, minlength=rows.size)[pp] > 1
    contested = np.zeros(len(gt), bool)
    contested[pg[multi]] = True
    star = ~contested[pg]
    s, d, g = _stars(pp[star], pg[star], level[star], cand.pred_rank, gt.crowd, thr.size)
    entry_t, entry_pred = perm[s], d
    entry_gt = np.broadcast_to(g, (n_ranges, g.size))
    n_shared = g.size
    if not star.all():
        group = (pred.frame * num_classes + pred.class_id)[rows]
        c = ~star
        per_range = _contested(pp[c], pg[c], pu[c], level[c], group, cand.pred_rank, gt.crowd, gt_ignored, thr.size)
        # One entry per (threshold, prediction) matched in any range; -1 where a range left it unmatched.
        keys = [s * rows.size + d for s, d, _ in per_range]
        union, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        c_gt = np.full((n_ranges, union.size), -1, np.int64)
        offsets = np.cumsum([0] + [k.size for k in keys])
        for a, (_, _, g_a) in enumerate(per_range):
            c_gt[a, inverse[offsets[a] : offsets[a + 1]]] = g_a
        entry_t = np.concatenate([entry_t, perm[union // rows.size]])
        entry_pred = np.concatenate([entry_pred, union % rows.size])
        entry_gt = np.concatenate([entry_gt, c_gt], axis=1)
    return SparseMatches(cand, gt_ignored, out_of_range, entry_t, entry_pred, entry_gt, n_shared, thr)


def _per_box(bounds: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``(A, N)`` bounds of each box's image, or ``(A, 1)`` when every image shares them."""
    return bounds if bounds.shape[1] == 1 else bounds[:, image]


def _expand(lo: np.ndarray, hi: np.ndarray, d: np.ndarray, g: np.ndarray) -> _Entries:
    """One entry per threshold index in ``[lo, hi)`` of each pair."""
    n = np.maximum(hi - lo, 0)
    total = int(n.sum())
    which = np.repeat(np.arange(n.size), n)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    return lo[which] + offset, d[which], g[which]


def _stars(pp: np.ndarray, pg: np.ndarray, level: np.ndarray, rank: np.ndarray, crowd: np.ndarray, n_thr: int) -> _Entries:
    """Star components: threshold ``t`` goes to the first prediction (by rank) whose level exceeds t.

    ``level`` = number of (sorted) thresholds the pair's IoU clears, so the pair matches the sorted
    thresholds ``[highest level of earlier predictions, level)``, or ``[0, level)`` for crowd.
    """
    if pp.size == 0:
        return pp, pp, pg
    order = np.argsort(pg * (int(rank.max(initial=0)) + 1) + rank[pp])  # keys are unique
    pp, pg, level = pp[order], pg[order], level[order]
    new = np.empty(pg.size, bool)
    new[0] = True
    np.not_equal(pg[1:], pg[:-1], out=new[1:])
    shift = (np.cumsum(new) - 1) * (n_thr + 1)  # keeps the running maximum inside each ground truth
    running = np.maximum.accumulate(level + shift) - shift
    before = np.empty_like(running)
    before[0] = 0
    before[1:] = running[:-1]
    before[new] = 0
    before[crowd[pg]] = 0
    return _expand(before, level, pp, pg)


def _contested(
    pp: np.ndarray,
    pg: np.ndarray,
    pu: np.ndarray,
    level: np.ndarray,
    group: np.ndarray,
    rank: np.ndarray,
    crowd: np.ndarray,
    gt_ignored: np.ndarray,
    n_thr: int,
) -> list[_Entries]:
    """Greedy matching of contested pairs; per area range, the entries of that range.

    Variant 0 uses the crowd flags (shared by ranges whose flags agree); variant ``a + 1`` is range
    ``a`` for the groups whose flags differ.
    """
    n_ranges = gt_ignored.shape[0]
    cg_ids, cg = np.unique(group[pp], return_inverse=True)
    n_cg = cg_ids.size
    size = np.bincount(cg, minlength=n_cg)
    crowd_p = crowd[pg]
    n_crowd = np.bincount(cg, crowd_p, minlength=n_cg)
    uniform_base = (n_crowd == 0) | (n_crowd == size)
    rematch = np.zeros((n_ranges, n_cg), bool)
    for a in range(n_ranges):
        flags = gt_ignored[a, pg]
        differs = np.bincount(cg, flags != crowd_p, minlength=n_cg) > 0
        n_ign = np.bincount(cg, flags, minlength=n_cg)
        rematch[a] = differs & ~(uniform_base & ((n_ign == 0) | (n_ign == size)))
    parts = [(np.zeros(pp.size, np.int64), np.arange(pp.size), crowd_p)]
    for a in range(n_ranges):
        sel = np.flatnonzero(rematch[a, cg])
        if sel.size:
            parts.append((np.full(sel.size, a + 1, np.int64), sel, gt_ignored[a, pg[sel]]))
    variant = np.concatenate([p[0] for p in parts])
    src = np.concatenate([p[1] for p in parts])
    flag = np.concatenate([p[2] for p in parts])
    v_s, t_s, d_s, g_s = _greedy(variant, pp[src], pg[src], pu[src], level[src], flag, crowd[pg[src]], rank, n_thr)
    base = v_s == 0
    base_cg = _group_of(pp, cg, d_s[base])
    out = []
    for a in range(n_ranges):
        keep = base.copy()
        keep[base] = ~rematch[a, base_cg]
        keep |= v_s == a + 1
        out.append((t_s[keep], d_s[keep], g_s[keep]))
    return out


def _group_of(pp: np.ndarray, cg: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Compact group of predictions ``d`` (each appears in ``pp``)."""
    lookup = np.empty(int(pp.max()) + 1, np.int64)
    lookup[pp] = cg
    return lookup[d]


def _greedy(
    variant: np.ndarray,
    pp: np.ndarray,
    pg: np.ndarray,
    pu: np.ndarray,
    level: np.ndarray,
    flag: np.ndarray,
    crowd: np.ndarray,
    rank: np.ndarray,
    n_thr: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' greedy rule, one score rank at a time over every group, variant and threshold.

    Pairs of one (variant, prediction) must be in ground-truth row order; ``flag`` marks ignored
    ground truth. Predictions of equal rank belong to different groups (or variants), so they
    never compete. Returns ``(variant, t, d, g)`` entries (``t`` in sorted-threshold order).
    """
    n_var = int(variant.max()) + 1
    key = (rank[pp] * n_var + variant) * (int(pp.max()) + 1) + pp
    order = np.argsort(key, kind="stable")  # keeps ground-truth order within a prediction
    variant, pp, pg, pu, level, flag, crowd, key = (x[order] for x in (variant, pp, pg, pu, level, flag, crowd, key))
    _, used_id = np.unique(variant * (int(pg.max()) + 1) + pg, return_inverse=True)
    used = np.zeros((n_thr, int(used_id.max()) + 1), bool)
    r = rank[pp]
    steps = np.r_[0, np.flatnonzero(r[1:] != r[:-1]) + 1, r.size]
    thr_index = np.arange(n_thr)[:, None]
    out: list[tuple[np.ndarray, ...]] = []
    for lo, hi in zip(steps[:-1], steps[1:], strict=True):
        k = key[lo:hi]
        starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
        seg = np.cumsum(np.r_[0, k[1:] != k[:-1]])
        u, uu = used_id[lo:hi], pu[lo:hi]
        valid = (thr_index < level[lo:hi][None, :]) & (crowd[lo:hi][None, :] | ~used[:, u])
        ign = flag[lo:hi][None, :]
        pick = _segment_best(valid & ~ign, uu, starts, seg)
        pick = np.where(pick >= 0, pick, _segment_best(valid & ign, uu, starts, seg))
        t, s = np.nonzero(pick >= 0)
        if t.size == 0:
            continue
        chosen = lo + pick[t, s]
        used[t, used_id[chosen]] = True
        out.append((variant[chosen], t, pp[chosen], pg[chosen]))
    if not out:
        return tuple(np.zeros(0, np.int64) for _ in range(4))  # type: ignore[return-value]
    return tuple(np.concatenate([o[i] for o in out]).astype(np.int64, copy=False) for i in range(4))  # type: ignore[return-value]


def _segment_best(mask: np.ndarray, iou: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Per segment, the position of the highest IoU among ``mask`` (ties: the last); -1 if none.

    ``mask`` is ``(T, P)``; returns ``(T, S)`` positions into ``P``.
    """
    value = np.where(mask, iou[None, :], -1.0)
    best = np.maximum.reduceat(value, starts, axis=1)
    is_best = mask & (value == best[:, seg])
    pos = np.where(is_best, np.arange(iou.size)[None, :], -1)
    return np.maximum.reduceat(pos, starts, axis=1)

"""Candidate pairs for matching: boxes sorted into (image, class) groups, and every prediction /
ground-truth pair of a group whose IoU can clear the lowest threshold.

Sorting and pairing are where COCO evaluation spends its time at 10^5-10^6 boxes, so this module
avoids numpy's stable sorts of wide keys (a timsort, several times slower than a plain sort) by
packing ``(key, position)`` into one int64 and sorting that. Pairs are generated one "GT slot" at a
time: predictions are ordered by how many ground-truth boxes their group holds, so slot ``j``
(the ``j``-th ground truth of each group) is a prefix of that order and every column is a slice.

IoU is computed exactly as pycocotools' ``bbIou`` (float64; intersection ``w * h`` with ``w, h > 0``,
union ``(area_pred + area_gt) - inter``, or the prediction's area for crowd ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitesight.evaluation.boxtable import BoxTable

__all__ = ["Candidates", "find_candidates", "stable_order", "descending_ranks"]


def stable_order(key: np.ndarray, n_keys: int) -> np.ndarray:
    """Stable argsort of integer keys in ``[0, n_keys)``: ties keep their input order.

    Radix sort for keys that fit in 16 bits, otherwise one plain sort of ``key << b | position``.
    """
    n = int(key.size)
    if n_keys <= 1 or n <= 1:
        return np.arange(n, dtype=np.int64)
    if n_keys <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable").astype(np.int64, copy=False)
    bits = max(n - 1, 1).bit_length()
    if (n_keys - 1).bit_length() + bits <= 63:
        packed = key.astype(np.int64) << bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        packed &= (1 << bits) - 1
        return packed
    return np.argsort(key, kind="stable")


def descending_ranks(score: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense rank of each score, 0 = highest, equal scores share a rank; and the number of ranks.

    NaN ranks last (with -inf), as it sorts last in pycocotools' ``argsort(-score)``.
    """
    n = int(score.size)
    if n == 0:
        return np.zeros(0, np.int64), 0
    s = np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf)
    order = np.argsort(s)
    ss = s[order]
    step = np.empty(n, np.int64)
    step[0] = 0
    np.not_equal(ss[1:], ss[:-1], out=step[1:], casting="unsafe")
    np.cumsum(step, out=step)
    n_ranks = int(step[-1]) + 1
    ranks = np.empty(n, np.int64)
    ranks[order] = (n_ranks - 1) - step
    return ranks, n_ranks


@dataclass(frozen=True)
class Candidates:
    """Predictions in matching order and the pairs that can match.

    Attributes:
        pred_index: ``(D,)`` int64 rows of the prediction table that are evaluated (rank below
            ``max_det``), ordered by (image, class, score descending, row).
        pred_rank: ``(D,)`` int64 rank within the image and class (0 = highest score).
        score_rank: ``(D,)`` int64 dense score rank over all predictions (0 = highest).
        n_score_ranks: number of distinct score ranks.
        pair_pred: ``(P,)`` int64 position in ``pred_index``; pairs come slot by slot, and within one
            prediction in ground-truth row order.
        pair_gt: ``(P,)`` int64 ground-truth row.
        pair_iou: ``(P,)`` float64 IoU (≥ ``min_iou``).
    """

    pred_index: np.ndarray
    pred_rank: np.ndarray
    score_rank: np.ndarray
    n_score_ranks: int
    pair_pred: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray


def _order_predictions(pred: BoxTable, num_classes: int, n_groups: int, max_det: int | None) -> tuple[np.ndarray, ...]:
    """``(index, rank, group, score_rank, n_ranks)`` of the kept predictions in matching order."""
    ranks, n_ranks = descending_ranks(pred.score)
    group = pred.frame * num_classes + pred.class_id
    order = stable_order(group * max(n_ranks, 1) + ranks, n_groups * max(n_ranks, 1))
    g_sorted = group[order]
    count = np.bincount(g_sorted, minlength=n_groups)
    rank = np.arange(order.size, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    if max_det is not None and order.size and int(count.max()) > max_det:
        keep = rank < max_det
        order, g_sorted, rank = order[keep], g_sorted[keep], rank[keep]
    return order, rank, g_sorted, ranks[order], n_ranks


def find_candidates(
    gt: BoxTable, pred: BoxTable, *, num_classes: int, n_images: int, min_iou: float, max_det: int | None
) -> Candidates:
    """Sort predictions into groups (keeping ``max_det`` per group) and pair them with ground truth.

    Args:
        gt, pred: tables with class indices in ``[0, num_classes)`` and image indices in ``[0, n_images)``.
        min_iou: keep pairs with IoU ≥ this (the lowest threshold, already capped at ``1 - 1e-10``).
        max_det: predictions kept per image and class, highest score first (None = all).
    """
    n_groups = max(n_images * num_classes, 1)
    p_index, p_rank, p_group, s_rank, n_ranks = _order_predictions(pred, num_classes, n_groups, max_det)
    g_group = gt.frame * num_classes + gt.class_id
    g_order = stable_order(g_group, n_groups)
    g_count = np.bincount(g_group, minlength=n_groups)
    g_start = np.cumsum(g_count) - g_count

    per_pred = g_count[p_group]
    pairs = _pairs(gt, pred, p_index, per_pred, g_start[p_group], g_order, min_iou)
    return Candidates(
        pred_index=p_index,
        pred_rank=p_rank,
        score_rank=s_rank,
        n_score_ranks=n_ranks,
        pair_pred=pairs[0],
        pair_gt=pairs[1],
        pair_iou=pairs[2],
    )


def _pairs(
    gt: BoxTable,
    pred: BoxTable,
    p_index: np.ndarray,
    per_pred: np.ndarray,
    first_gt: np.ndarray,
    g_order: np.ndarray,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs with IoU ≥ ``min_iou``, generated one ground-truth slot at a time (see the module notes)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    has = np.flatnonzero(per_pred)
    if has.size == 0:
        return empty
    counts = per_pred[has]
    top = int(counts.max())
    if top < 1 << 16:
        slot_order = has[np.argsort((top - counts).astype(np.uint16), kind="stable")]
    else:
        slot_order = has[np.argsort(-counts, kind="stable")]
    counts = per_pred[slot_order]
    # n_at[j]: predictions whose group holds more than j ground-truth boxes (a prefix of slot_order).
    n_at = slot_order.size - np.cumsum(np.bincount(counts, minlength=top + 1))[:top]
    rows = p_index[slot_order]
    px1, py1, px2, py2 = np.ascontiguousarray(pred.xyxy[rows].T)
    parea = pred.area[rows]
    gx1, gy1, gx2, gy2 = np.ascontiguousarray(gt.xyxy[g_order].T)
    garea = gt.area[g_order]
    gcrowd = gt.crowd[g_order]
    any_crowd = bool(gcrowd.any())
    first = first_gt[slot_order]
    out_p, out_g, out_u = [], [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(top):
            n = int(n_at[j])
            gi = first[:n] + j
            w = np.minimum(px2[:n], gx2[gi])
            w -= np.maximum(px1[:n], gx1[gi])
            h = np.minimum(py2[:n], gy2[gi])
            h -= np.maximum(py1[:n], gy1[gi])
            np.maximum(w, 0.0, out=w)
            np.maximum(h, 0.0, out=h)
            inter = np.multiply(w, h, out=w)
            union = parea[:n] + garea[gi]
            union -= inter
            if any_crowd:
                union = np.where(gcrowd[gi], parea[:n], union)
            iou = np.divide(inter, union, out=h)
            if min_iou <= 0:  # non-overlapping pairs have IoU 0, which clears a threshold of 0
                iou[~(inter > 0)] = 0.0
            hit = np.flatnonzero(iou >= min_iou)
            if hit.size:
                out_p.append(slot_order[hit])
                out_g.append(g_order[gi[hit]])
                out_u.append(iou[hit])
    if not out_p:
        return empty
    return np.concatenate(out_p), np.concatenate(out_g), np.concatenate(out_u)

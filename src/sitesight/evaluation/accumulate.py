"""pycocotools' ``accumulate`` on sparse matches: interpolated precision and recall arrays.

For one class, area range, IoU threshold and ``max_det``, pycocotools sorts the predictions by
score (ties: image order, then rank in the image), drops ignored ones, and reads the precision
envelope at 101 recall points. Recall rises and precision peaks exactly at true positives, so only
they are needed: for a TP at position ``p`` of the class's score-sorted list, its rank ``j`` among
TPs and the number of counted (not ignored) predictions up to ``p`` give ``j / (counted + eps)``,
the very float pycocotools computes. The counted number is ``p + 1`` minus the ignored ones up to
``p``: unmatched predictions outside the area range (a cumulative sum over the sorted list, shared
by every threshold) corrected by the matched ones (few, from the match entries).

The envelope is read at the recall points with one ``maximum.reduceat`` over blocks between
consecutive recall points and a reverse running maximum over the blocks: exact, and no grid as
large as the longest class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sitesight.evaluation.assignment import SparseMatches
from sitesight.evaluation.boxtable import BoxTable
from sitesight.evaluation.candidates import stable_order

__all__ = ["COCO_RECALL_THRESHOLDS", "accumulate"]

COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_EPS = np.spacing(1)


def accumulate(
    matches: SparseMatches, pred: BoxTable, gt: BoxTable, num_classes: int, max_dets: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``precision (T, R, K, A, M)`` and ``recall (T, K, A, M)``, -1 where a class has no ground truth.

    ``max_dets`` ascending; matching was done with ``max_dets[-1]`` per image and class.
    """
    cand = matches.candidates
    n_ranges, n_pred = matches.pred_out_of_range.shape
    n_thr = matches.iou_thresholds.size
    rec = COCO_RECALL_THRESHOLDS
    precision = -np.ones((n_thr, rec.size, num_classes, n_ranges, len(max_dets)))
    recall = -np.ones((n_thr, num_classes, n_ranges, len(max_dets)))
    npig = [np.bincount(gt.class_id[~matches.gt_ignored[a]], minlength=num_classes)[:num_classes] for a in range(n_ranges)]
    cls = pred.class_id[cand.pred_index]
    n_ranks = max(cand.n_score_ranks, 1)
    # Class, then score, then image and rank in the image: candidate order already has image first.
    acc_order = stable_order(cls * n_ranks + cand.score_rank, num_classes * n_ranks)
    acc_pos = np.empty(n_pred, np.int64)
    acc_pos[acc_order] = np.arange(n_pred)
    order = stable_order(matches.entry_t * max(n_pred, 1) + acc_pos[matches.entry_pred], max(n_thr * n_pred, 1))
    t, d = matches.entry_t[order], matches.entry_pred[order]
    cls_e, acc_e, rank_e = cls[d], acc_pos[d], cand.pred_rank[d]
    # Per range: true positives, and the change to "ignored iff out of range" (matched entries only).
    g_first = matches.entry_gt[0][order] if n_ranges else order
    ranged = np.flatnonzero(order >= matches.n_shared)  # entries whose match depends on the range
    tp_all, delta_all, oor_sorted = [], [], []
    for a in range(n_ranges):
        g = g_first
        if a and ranged.size:
            g = g_first.copy()
            g[ranged] = matches.entry_gt[a][order[ranged]]
        hit = g >= 0
        g_safe = g if ranged.size == 0 else np.where(hit, g, 0)
        g_ign = matches.gt_ignored[a][g_safe]
        zero = gt.zero_id[g_safe]
        oor = matches.pred_out_of_range[a]
        oor_e = oor[d]
        tp_all.append(hit & ~g_ign & ~zero)
        # ignored: matched to ignored GT, or matched to an id-0 GT (pycocotools: unmatched) outside the range
        delta = (g_ign | (zero & oor_e)).astype(np.int8)
        delta -= oor_e
        delta *= hit
        delta_all.append(delta if delta.any() else None)
        oor_sorted.append(oor[acc_order] if oor.any() else None)
    max_rank = int(cand.pred_rank.max(initial=-1))
    rank_sorted = cand.pred_rank[acc_order]
    for m, max_det in enumerate(max_dets):
        if max_det > max_rank:
            keep, sel, pos_m, kept_cls = None, slice(None), acc_e, cls[acc_order]
        else:
            keep = rank_sorted < max_det
            sel = rank_e < max_det
            kept_before = np.cumsum(keep) - 1
            pos_m = kept_before[acc_e[sel]]
            kept_cls = cls[acc_order[keep]]
        start = np.searchsorted(kept_cls, np.arange(num_classes + 1))
        seg = t[sel] * num_classes + cls_e[sel]
        for a in range(n_ranges):
            if not npig[a].any():
                continue
            oor_cum = None
            if oor_sorted[a] is not None:
                oor_cum = np.zeros(start[-1] + 1, np.int64)
                np.cumsum(oor_sorted[a] if keep is None else oor_sorted[a][keep], out=oor_cum[1:])
            delta = delta_all[a]
            _curves(
                precision[:, :, :, a, m],
                recall[:, :, a, m],
                seg,
                pos_m,
                tp_all[a][sel],
                None if delta is None else delta[sel],
                start,
                oor_cum,
                npig[a],
            )
    return precision, recall


def _curves(
    precision: np.ndarray,
    recall: np.ndarray,
    seg: np.ndarray,
    pos: np.ndarray,
    tp: np.ndarray,
    delta: np.ndarray | None,
    start: np.ndarray,
    oor_cum: np.ndarray | None,
    npig: np.ndarray,
) -> None:
    """Fill ``precision (T, R, K)`` and ``recall (T, K)`` of one area range and max_det.

    Entries (matched predictions) are sorted by ``seg = t * K + k`` (threshold, class) and by their
    position ``pos`` in the score order, where class ``k`` owns ``start[k]:start[k + 1]``. ``tp``
    marks true positives; ``delta`` (None = all 0) is the change to the ignored count against
    "ignored iff out of range", whose running count is ``oor_cum`` (None = nothing out of range).
    """
    n_thr, n_cls = recall.shape
    rec = COCO_RECALL_THRESHOLDS
    has_gt = npig > 0
    precision[:, :, has_gt] = 0.0
    recall[:, has_gt] = 0.0
    rows = np.flatnonzero(tp)
    if rows.size == 0:
        return
    seg_tp = seg[rows]
    starts = np.r_[0, np.flatnonzero(seg_tp[1:] != seg_tp[:-1]) + 1]
    length = np.diff(np.r_[starts, rows.size])
    seg_t, seg_k = seg_tp[starts] // n_cls, seg_tp[starts] % n_cls
    j = np.arange(1, rows.size + 1) - np.repeat(starts, length)  # rank among the segment's TPs
    lo = np.repeat(start[seg_k], length)
    p = pos[rows]
    counted = p - lo + 1
    if oor_cum is not None:
        counted -= oor_cum[p + 1] - oor_cum[lo]
    if delta is not None:
        new = np.empty(seg.size, bool)
        new[0] = True
        np.not_equal(seg[1:], seg[:-1], out=new[1:])
        cum = np.cumsum(delta, dtype=np.int64)
        first = np.flatnonzero(new)
        counted -= cum[rows] - (cum[first] - delta[first])[(np.cumsum(new) - 1)[rows]]
    pr = j / (counted.astype(np.float64) + _EPS)  # the very floats pycocotools computes: tp / (fp + tp + eps)
    npk = npig[seg_k].astype(np.float64)
    recall[seg_t, seg_k] = length / npk
    # First TP rank j with j / npig >= r (pycocotools' searchsorted on rc), exact: test j* - 1, j*, j* + 1.
    guess = np.ceil(rec[None, :] * npk[:, None]).astype(np.int64)
    first_j = np.full(guess.shape, np.iinfo(np.int64).max)
    for cand in (guess + 1, guess, guess - 1):
        ok = (cand >= 1) & (cand / npk[:, None] >= rec[None, :])
        first_j = np.where(ok, np.minimum(first_j, cand), first_j)
    first_j = np.maximum(first_j, 1)  # r = 0 is reached at the first position
    filled = first_j <= length[:, None]
    # Suffix maxima of pr at the recall points: maxima of the blocks between consecutive points,
    # then a running maximum from the right (pycocotools stops filling past the curve's end).
    query = starts[:, None] + np.minimum(first_j, length[:, None]) - 1
    blocks = np.maximum.reduceat(pr, query.ravel()).reshape(query.shape)
    envelope = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1]
    precision[seg_t, :, seg_k] = np.where(filled, envelope, 0.0)

"""Which box is which error: the per-box view behind `sitesight.evaluation.errors.error_breakdown`.

`error_breakdown` counts error types; a report also shows examples of each. `classify_errors`
assigns the same types box by box with the same rules (the matching engine at ``iou``, then TIDE's
order: localisation, class, duplicate, background, both; misses last), and splits duplicates by
where they came from: ``duplicate_border`` when the duplicate's ``source`` (slice index, -1 = full
frame) differs from the source of the prediction that took the ground truth — a box repeated or
cut across a slice border — and ``duplicate_same`` otherwise. Their counts agree with
`error_breakdown` (``duplicate`` = both kinds, ``duplicate_cross_slice`` = ``duplicate_border``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections
from sitesight.evaluation.matching import match_boxes, pair_ious, table_from_detections

__all__ = ["BoxError", "classify_errors", "EXAMPLE_TYPES"]

EXAMPLE_TYPES = ("localisation", "class", "duplicate_border", "duplicate_same", "background", "both", "missed")


@dataclass(frozen=True)
class BoxError:
    """One error. ``pred`` / ``gt`` index into that image's `Detections` (None when not involved);
    for a false positive ``gt`` is the ground truth it overlaps most (or the one it duplicates)."""

    type: str
    image: int
    pred: int | None
    gt: int | None
    score: float


def _offsets(per_image: Sequence[Detections]) -> np.ndarray:
    counts = np.array([len(d) for d in per_image], np.int64)
    return np.cumsum(counts) - counts


def classify_errors(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    iou: float = 0.5,
    background_iou: float = 0.1,
    conf: float = 0.0,
) -> list[BoxError]:
    """Every false positive (``score >= conf``) and every miss, with its type (see the module notes).

    Args:
        gts, preds: equal-length lists of `Detections`, one per image (crowd ground truth via
            ``attributes["iscrowd"]``; slice provenance via ``attributes["source"]``).
    """
    gt = table_from_detections(gts, gt=True)
    pred_all = table_from_detections(preds, gt=False)
    kept_rows = np.flatnonzero(pred_all.score >= conf)
    pred = pred_all.take(kept_rows)
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    rows = m.pred_index
    matched = m.pred_gt[0, 0]
    ignored = m.pred_ignored[0, 0]
    taker_source = np.full(len(gt), -2, np.int64)
    tp = matched >= 0
    taker_source[matched[tp]] = pred.source[rows[tp]]
    fp_rows = rows[(matched < 0) & ~ignored]
    regular = np.flatnonzero(~gt.crowd)
    g_off, p_off = _offsets(gts), _offsets(preds)
    out: list[BoxError] = []
    claimed = np.zeros(len(gt), bool)
    for r in fp_rows:
        cand = regular[gt.image[regular] == pred.image[r]]
        ious = pair_ious(np.repeat(pred.xyxy[r : r + 1], cand.size, 0), np.repeat(pred.area[r : r + 1], cand.size),
                         gt.xyxy[cand], gt.area[cand], np.zeros(cand.size, bool)) if cand.size else np.zeros(0)
        same = gt.class_id[cand] == pred.class_id[r]
        s_iou = float(ious[same].max()) if same.any() else 0.0
        o_iou = float(ious[~same].max()) if (~same).any() else 0.0
        # ties go to the later ground truth, as the engine's argmax over IoU-sorted pairs does
        s_gt = int(cand[same][::-1][np.argmax(ious[same][::-1])]) if same.any() else -1
        o_gt = int(cand[~same][::-1][np.argmax(ious[~same][::-1])]) if (~same).any() else -1
        if background_iou <= s_iou < iou:
            kind, g = "localisation", s_gt
            claimed[s_gt] = True
        elif o_iou >= iou:
            kind, g = "class", o_gt
            claimed[o_gt] = True
        elif s_iou >= iou:
            kind, g = ("duplicate_border" if pred.source[r] != taker_source[s_gt] else "duplicate_same"), s_gt
        elif max(s_iou, o_iou) < background_iou:
            kind, g = "background", -1
        else:
            kind, g = "both", s_gt if s_iou >= o_iou else o_gt
        image = int(pred.image[r])
        out.append(BoxError(kind, image, int(kept_rows[r] - p_off[image]), None if g < 0 else int(g - g_off[image]), float(pred.score[r])))
    taken = taker_source > -2
    for g in regular[~taken[regular] & ~claimed[regular]]:
        image = int(gt.image[g])
        out.append(BoxError("missed", image, None, int(g - g_off[image]), 0.0))
    return out

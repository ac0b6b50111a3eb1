"""Which box is which error: the per-box view behind `sitesight.evaluation.errors.error_breakdown`.

`error_breakdown` counts error types; a report also shows examples of each. `classify_errors`
lists the same types box by box from the same function,
`sitesight.evaluation.errors.label_errors` (the matching engine at ``iou``, then TIDE's order:
localisation, class, duplicate, background, both; misses last), and splits duplicates by where
they came from: ``duplicate_border`` when the duplicate's ``source`` (slice index, -1 = full
frame) differs from the source of the prediction that took the ground truth — a box repeated or
cut across a slice border — and ``duplicate_same`` otherwise. Their counts agree with
`error_breakdown` (``duplicate`` = both kinds, ``duplicate_cross_slice`` = ``duplicate_border``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections
from sitesight.evaluation.errors import label_errors
from sitesight.evaluation.matching import table_from_detections

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
    labels = label_errors(gt, pred, iou=iou, background_iou=background_iou)
    g_off, p_off = _offsets(gts), _offsets(preds)
    out: list[BoxError] = []
    for r in labels.fp_rows.tolist():
        kind, g = str(labels.pred_type[r]), int(labels.pred_gt[r])
        if kind == "duplicate":
            kind = "duplicate_border" if labels.cross_slice[r] else "duplicate_same"
        image = int(pred.frame[r])
        out.append(BoxError(kind, image, int(kept_rows[r] - p_off[image]), None if g < 0 else int(g - g_off[image]), float(pred.score[r])))
    for g in np.flatnonzero(labels.missed).tolist():
        image = int(gt.frame[g])
        out.append(BoxError("missed", image, None, int(g - g_off[image]), 0.0))
    return out

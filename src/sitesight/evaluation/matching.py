"""The one matching engine: every detection metric in sitesight derives from `match_boxes`.

Rules (exactly those of pycocotools' ``COCOeval.evaluateImg``, vectorised over all images,
classes, IoU thresholds and area ranges at once):

* per image and class, predictions are taken highest score first (stable on ties: input order),
  keeping at most ``max_det`` of them;
* each prediction takes the still-unmatched ground truth with the highest IoU ≥ t (ties: the later
  ground truth); regular (not ignored) ground truth is preferred over ignored ground truth;
* crowd ground truth is ignored, never used up, and its IoU is intersection over the prediction's
  area; a prediction matched to ignored ground truth is ignored (neither TP nor FP);
* ground truth outside an area range is ignored for that range; an unmatched prediction outside
  the range is ignored too.

The work is done sparsely (`sitesight.evaluation.candidates`: candidate pairs; `.assignment`: the
greedy rule, shared across area ranges where pycocotools' result cannot differ); `match_boxes`
returns it as dense ``(A, T, D)`` arrays for the metrics that read one threshold, while COCO
evaluation reads the sparse form directly.

Inputs are columnar `BoxTable` values (one row per box over all images), built from per-image
`Detections` by `table_from_detections` or straight from COCO JSON by `sitesight.evaluation.coco_files`.
Boxes are float64 absolute-pixel xyxy; ``area`` is the box area used by IoU (``w * h``) and
``range_area`` the area compared with area ranges (COCO's ``"area"`` field for ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.evaluation.assignment import SparseMatches, match_sparse
from sitesight.evaluation.boxtable import BoxTable, table_from_detections

__all__ = ["BoxTable", "Matches", "table_from_detections", "match_boxes", "dense_matches", "pair_ious"]


@dataclass(frozen=True)
class Matches:
    """Result of `match_boxes`.

    Attributes:
        pred_index: ``(D,)`` rows of the prediction table that were evaluated (after ``max_det``),
            ordered by (image, class, score descending).
        pred_rank: ``(D,)`` rank of each of them within its image and class (0 = highest score).
        pred_gt: ``(A, T, D)`` int32 (int64 beyond 2**31 boxes) row of the matched ground truth, -1 when unmatched.
        pred_ignored: ``(A, T, D)`` bool, neither TP nor FP.
        gt_ignored: ``(A, G)`` bool ground truth ignored for each area range (crowd or out of range).
        iou_thresholds: ``(T,)`` float64.
    """

    pred_index: np.ndarray
    pred_rank: np.ndarray
    pred_gt: np.ndarray
    pred_ignored: np.ndarray
    gt_ignored: np.ndarray
    iou_thresholds: np.ndarray

    @property
    def pred_tp(self) -> np.ndarray:
        """``(A, T, D)`` bool true positives."""
        return (self.pred_gt >= 0) & ~self.pred_ignored

    @property
    def pred_fp(self) -> np.ndarray:
        """``(A, T, D)`` bool false positives."""
        return (self.pred_gt < 0) & ~self.pred_ignored


def pair_ious(pred_xyxy: np.ndarray, pred_area: np.ndarray, gt_xyxy: np.ndarray, gt_area: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Element-wise IoU of ``(P, 4)`` prediction/ground-truth pairs, float64, as pycocotools' ``bbIou``.

    For crowd ground truth the union is the prediction's area. Touching boxes have IoU 0.
    """
    w = np.minimum(pred_xyxy[:, 2], gt_xyxy[:, 2]) - np.maximum(pred_xyxy[:, 0], gt_xyxy[:, 0])
    h = np.minimum(pred_xyxy[:, 3], gt_xyxy[:, 3]) - np.maximum(pred_xyxy[:, 1], gt_xyxy[:, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = np.where(crowd, pred_area, pred_area + gt_area - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(inter > 0, iou, 0.0)


def match_boxes(
    gt: BoxTable,
    pred: BoxTable,
    *,
    iou_thresholds: Sequence[float] | np.ndarray = (0.5,),
    area_lo: np.ndarray | None = None,
    area_hi: np.ndarray | None = None,
    max_det: int | None = 100,
) -> Matches:
    """Match predictions to ground truth per image and class for several IoU thresholds and area ranges.

    Args:
        gt: ground-truth table.
        pred: prediction table (same image and class indexing).
        iou_thresholds: ``T`` thresholds; a match needs IoU ≥ ``min(t, 1 - 1e-10)``.
        area_lo, area_hi: ``(A, n_images)`` float64 inclusive area bounds per range and image (so
            ranges may be relative to each frame); default one range ``[0, inf]``.
        max_det: keep at most this many predictions per image and class (None = all).

    Returns:
        `Matches` (dense ``(A, T, D)`` arrays; COCO evaluation reads the sparse form instead).
    """
    n_images = int(max(gt.frame.max(initial=-1), pred.frame.max(initial=-1))) + 1
    if area_lo is None or area_hi is None:
        area_lo = np.zeros((1, n_images))
        area_hi = np.full((1, n_images), np.inf)
    area_lo = np.asarray(area_lo, np.float64)
    area_hi = np.asarray(area_hi, np.float64)
    num_classes = int(max(gt.class_id.max(initial=-1), pred.class_id.max(initial=-1))) + 1
    sparse = match_sparse(
        gt,
        pred,
        num_classes=num_classes,
        n_images=n_images,
        iou_thresholds=np.asarray(iou_thresholds, np.float64),
        area_lo=area_lo,
        area_hi=area_hi,
        max_det=max_det,
    )
    return dense_matches(sparse, gt)


def dense_matches(sparse: SparseMatches, gt: BoxTable) -> Matches:
    """`Matches` with ``(A, T, D)`` arrays from a `SparseMatches`."""
    n_ranges, n_pred = sparse.pred_out_of_range.shape
    n_thr = sparse.iou_thresholds.size
    pred_gt = np.full((n_ranges, n_thr, n_pred), -1, np.int64 if len(gt) >= 2**31 else np.int32)
    pred_ignored = np.repeat(sparse.pred_out_of_range[:, None, :], n_thr, axis=1)
    for a in range(n_ranges):
        t, d, g = sparse.entries(a)
        zero = gt.zero_id[g]
        # matched to ignored GT → ignored; matched to a regular GT → counted, unless its id is 0
        # (pycocotools then sees "no match" and applies the area test to the prediction).
        pred_ignored[a, t, d] = sparse.gt_ignored[a, g] | (zero & sparse.pred_out_of_range[a, d])
        pred_gt[a, t, d] = np.where(zero, -1, g)
    return Matches(
        pred_index=sparse.candidates.pred_index,
        pred_rank=sparse.candidates.pred_rank,
        pred_gt=pred_gt,
        pred_ignored=pred_ignored,
        gt_ignored=sparse.gt_ignored,
        iou_thresholds=sparse.iou_thresholds,
    )

"""One detection model's per-frame count table: everything ΔAP, ΔAP50 and ΔF1 need, matched once.

Boxes are matched once per model with the COCO rules (`sitesight.evaluation.matching.match_boxes`:
IoU 0.50:0.05:0.95, the all/small/medium/large area ranges, 100 predictions per frame and class),
and once more at IoU 0.5 with every prediction at or above the model's operating confidence.
The table then holds, per frame (row):

* ``tp``/``counted`` ``[K, A, T, S]``: true positives and counted (not ignored) predictions per
  class, area range, IoU threshold and score bin (``S`` bins per class at quantiles of that class's
  scores, highest first);
* ``n_gt`` ``[K, A]``: regular ground truth per class and area range;
* ``op_tp``/``op_fp`` ``[K, A]``: TP and FP at the operating point (IoU 0.5, ``score >= conf``).

Any resample's AP is COCO's 101-point interpolated AP read at the bin edges of the summed
counts (`ap_from_bins`); with one bin per distinct score it is pycocotools' AP. The exact AP of the
full data (every prediction) is kept in ``exact`` so the comparison can state it and move the
interval by the small binning gap (`sitesight.compare.verdict.estimate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.accumulate import COCO_RECALL_THRESHOLDS
from sitesight.evaluation.coco import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, evaluate_tables
from sitesight.evaluation.matching import match_boxes, table_from_detections

__all__ = ["DetectionTable", "detection_table", "ap_from_bins", "metric_names", "SIZE_NAMES"]

SIZE_NAMES = ("small", "medium", "large")
_EPS = np.spacing(1)


@dataclass(frozen=True)
class DetectionTable:
    """Per-frame counts of one model (see the module notes for the column blocks).

    Attributes:
        counts: ``(F, M)`` float32 counts, one row per frame (a transposed view of a row-major ``(M, F)`` array).
        class_names: ``K`` names.
        area_names: ``A`` area-range names (``all`` first).
        iou_thresholds: ``(T,)`` float64.
        n_bins: ``S`` score bins per class.
        conf: the operating confidence of the F1 block.
        exact: ``(Q,)`` float64 metric values from every prediction (order of `metric_names`).
    """

    counts: np.ndarray
    class_names: tuple[str, ...]
    area_names: tuple[str, ...]
    iou_thresholds: np.ndarray
    n_bins: int
    conf: float
    exact: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.class_names), len(self.area_names), self.iou_thresholds.size, self.n_bins

    def blocks(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Named views of ``(B, M)`` summed counts: ``tp``/``counted`` ``(B, K, A, T, S)``, ``n_gt``,
        ``op_tp``, ``op_fp`` ``(B, K, A)``."""
        k, a, t, s = self.shape
        n_bin = k * a * t * s
        b = sums.shape[0]
        at = np.cumsum([0, n_bin, n_bin, k * a, k * a, k * a])
        names = ("tp", "counted", "n_gt", "op_tp", "op_fp")
        shapes = ((b, k, a, t, s), (b, k, a, t, s), (b, k, a), (b, k, a), (b, k, a))
        return {n: sums[:, at[i]:at[i + 1]].reshape(shp) for i, (n, shp) in enumerate(zip(names, shapes, strict=True))}

    def statistic(self, sums: np.ndarray) -> np.ndarray:
        """``(B, Q)`` metric values of summed counts (AP from the score bins)."""
        blk = self.blocks(sums)
        return aggregate(ap_from_bins(blk["tp"], blk["counted"], blk["n_gt"]), blk["op_tp"], blk["op_fp"], blk["n_gt"], self.area_names)

    def metric_names(self) -> list[str]:
        return metric_names(self.class_names, self.area_names)


def metric_names(class_names: Sequence[str], area_names: Sequence[str]) -> list[str]:
    """Names of the ``Q`` metrics, in `aggregate` order."""
    names = ["AP", "AP50", "F1", "precision", "recall"]
    if len(class_names) > 1:
        for c in class_names:
            names += [f"AP[{c}]", f"AP50[{c}]", f"F1[{c}]"]
    for a in area_names[1:]:
        names += [f"AP[{a}]", f"AP50[{a}]", f"F1[{a}]"]
    return names


def ap_from_bins(tp: np.ndarray, counted: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """COCO's 101-point interpolated AP from per-bin counts, highest-score bin first.

    Args:
        tp, counted: ``(..., K, A, T, S)`` true positives and counted predictions per score bin.
        n_gt: ``(..., K, A)`` regular ground truth.

    Returns:
        ``(..., K, A, T)`` AP; NaN where there is no ground truth.
    """
    ctp = np.cumsum(tp, axis=-1)
    ccnt = np.cumsum(counted, axis=-1)
    gt = n_gt[..., None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(gt > 0, ctp / gt, 0.0)
    precision = ctp / (ccnt + _EPS)
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    # recall point r_i goes to the first bin whose recall reaches it (pycocotools' searchsorted 'left')
    reached = np.searchsorted(COCO_RECALL_THRESHOLDS, recall.ravel(), side="right").reshape(recall.shape)
    points = np.diff(reached, axis=-1, prepend=0)
    ap = np.sum(envelope * points, axis=-1) / COCO_RECALL_THRESHOLDS.size
    return np.where(n_gt[..., None] > 0, ap, np.nan)


def _mean_defined(x: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, x, 0.0).sum(axis=axis) / np.maximum(n, 1), np.nan)


def _f1(tp: np.ndarray, fp: np.ndarray, n_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fn = n_gt - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 2 * tp + fp + fn
        f1 = np.where(d > 0, 2 * tp / np.maximum(d, _EPS), 0.0)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, _EPS), 0.0)
        recall = np.where(n_gt > 0, tp / np.maximum(n_gt, _EPS), np.nan)
    return f1, precision, recall


def aggregate(ap_kat: np.ndarray, op_tp: np.ndarray, op_fp: np.ndarray, n_gt: np.ndarray, area_names: Sequence[str]) -> np.ndarray:
    """``(B, Q)`` metrics (`metric_names` order) from AP per class, area and IoU ``(B, K, A, T)`` and
    the operating-point counts ``(B, K, A)``. AP means are over classes with ground truth (COCO);
    F1, precision and recall are micro over classes."""
    ap_ka = _mean_defined(ap_kat, axis=3)  # (B, K, A)
    ap50_ka = ap_kat[..., 0]
    k = ap_kat.shape[1]
    f1_all, p_all, r_all = _f1(op_tp[:, :, 0].sum(1), op_fp[:, :, 0].sum(1), n_gt[:, :, 0].sum(1))
    cols = [_mean_defined(ap_ka[:, :, 0], 1), _mean_defined(ap50_ka[:, :, 0], 1), f1_all, p_all, r_all]
    if k > 1:
        f1_k = _f1(op_tp[:, :, 0], op_fp[:, :, 0], n_gt[:, :, 0])[0]
        f1_k = np.where(n_gt[:, :, 0] + op_fp[:, :, 0] > 0, f1_k, np.nan)
        for c in range(k):
            cols += [ap_ka[:, c, 0], ap50_ka[:, c, 0], f1_k[:, c]]
    for a in range(1, len(area_names)):
        f1_a = _f1(op_tp[:, :, a].sum(1), op_fp[:, :, a].sum(1), n_gt[:, :, a].sum(1))[0]
        f1_a = np.where(n_gt[:, :, a].sum(1) + op_fp[:, :, a].sum(1) > 0, f1_a, np.nan)
        cols += [_mean_defined(ap_ka[:, :, a], 1), _mean_defined(ap50_ka[:, :, a], 1), f1_a]
    return np.stack(cols, axis=1)


def _bins(score: np.ndarray, class_id: np.ndarray, num_classes: int, n_bins: int) -> np.ndarray:
    """Bin index per prediction, 0 = highest scores, edges at quantiles of each class's scores."""
    out = np.zeros(score.size, np.int64)
    for k in range(num_classes):
        sel = np.flatnonzero(class_id == k)
        if sel.size == 0:
            continue
        uniq = np.unique(score[sel])
        if uniq.size <= n_bins:  # one bin per distinct score: exact
            edges = uniq[1:]
        else:
            edges = np.unique(np.quantile(score[sel], np.linspace(0, 1, n_bins + 1)[1:-1]))
        # bin = number of edges above the score
        out[sel] = edges.size - np.searchsorted(edges, score[sel], side="right")
    return out


def detection_table(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    class_names: Sequence[str],
    conf: float,
    n_bins: int = 20,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    max_det: int = 100,
    op_preds: Sequence[Detections] | None = None,
) -> DetectionTable:
    """Match once and count per frame (see the module notes).

    Args:
        gts, preds: one `Detections` per frame, aligned (crowd ground truth via ``attributes["iscrowd"]``).
        class_names: the ``K`` classes; predictions of other class ids are dropped (as COCO does).
        conf: the operating confidence for F1/precision/recall (IoU 0.5, ``score >= conf``).
        n_bins: score bins per class for the resampled AP (more = closer to the exact AP, slower).
        iou_thresholds: the first one is AP50's (0.5 by default).
        area_ranges: name → ``(lo, hi)`` px²; the first must be the all-covering one.
        max_det: predictions per frame and class for AP (COCO: 100).
        op_preds: the detections at the operating point when they are not ``preds`` cut at ``conf``
            (a run post-processed at ``conf`` merges fewer boxes than one post-processed for AP).
    """
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth frames but {len(preds)} prediction frames")
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    n_frames, k = len(gts), len(class_names)
    iou = np.asarray(iou_thresholds, np.float64)
    area_names = tuple(area_ranges)
    n_area, n_thr = len(area_names), iou.size
    gt = table_from_detections(gts, gt=True)
    pred = table_from_detections(preds, gt=False)
    pred = pred.take((pred.class_id >= 0) & (pred.class_id < k))
    gt = gt.take((gt.class_id >= 0) & (gt.class_id < k))
    bounds = np.array(list(area_ranges.values()), np.float64).reshape(-1, 2)
    lo = np.repeat(bounds[:, :1], max(n_frames, 1), axis=1)
    hi = np.repeat(bounds[:, 1:], max(n_frames, 1), axis=1)
    m = match_boxes(gt, pred, iou_thresholds=iou, area_lo=lo, area_hi=hi, max_det=max_det)
    rows = m.pred_index
    frame, cls, score = pred.frame[rows], pred.class_id[rows], pred.score[rows]
    distinct = max([np.unique(score[cls == c]).size for c in range(k)] + [1])
    n_bins = min(n_bins, distinct)  # never more bins than distinct scores (then the bins are exact)
    b = _bins(score, cls, k, n_bins)
    n_bin_cols = k * n_area * n_thr * n_bins
    width = 2 * n_bin_cols + 3 * k * n_area
    # built column-major, (M, F): the bootstrap reads each column as one contiguous row
    cells = []  # one flat (column, frame) cell per count
    # column of (class, area, threshold, bin) for every (area, threshold, prediction)
    a_idx, t_idx = np.meshgrid(np.arange(n_area), np.arange(n_thr), indexing="ij")
    col = ((cls[None, None, :] * n_area + a_idx[..., None]) * n_thr + t_idx[..., None]) * n_bins + b[None, None, :]
    cell = col * n_frames + frame[None, None, :]
    counted = ~m.pred_ignored
    tp = m.pred_tp
    cells += [cell[tp], cell[counted] + n_bin_cols * n_frames]
    # regular ground truth per frame, class and area range
    gt_cell = (2 * n_bin_cols + gt.class_id * n_area) * n_frames + gt.frame
    for a in range(n_area):
        cells.append(gt_cell[~m.gt_ignored[a]] + a * n_frames)
    # the operating point: IoU 0.5, every prediction with score >= conf (no per-frame cap)
    if op_preds is None:
        op_pred = pred.take(pred.score >= np.float32(conf))
    else:
        if len(op_preds) != n_frames:
            raise InputError(f"{len(op_preds)} operating-point frames but {n_frames} ground-truth frames")
        op_pred = table_from_detections(op_preds, gt=False)
        op_pred = op_pred.take((op_pred.class_id >= 0) & (op_pred.class_id < k) & (op_pred.score >= np.float32(conf)))
    op = match_boxes(gt, op_pred, iou_thresholds=[float(iou[0])], area_lo=lo, area_hi=hi, max_det=None)
    op_cell = (2 * n_bin_cols + k * n_area + op_pred.class_id[op.pred_index] * n_area) * n_frames + op_pred.frame[op.pred_index]
    for a in range(n_area):
        cells += [op_cell[op.pred_tp[a, 0]] + a * n_frames, op_cell[op.pred_fp[a, 0]] + (a + k * n_area) * n_frames]
    counts = np.bincount(np.concatenate(cells), minlength=width * n_frames).astype(np.float32)
    counts = counts.reshape(width, n_frames).T  # (F, M) view of the (M, F) array
    # exact AP from every prediction (pycocotools' numbers), and the exact F1 block
    coco = evaluate_tables(gt, pred, n_images=n_frames, class_names=tuple(class_names), iou_thresholds=iou,
                           max_dets=(max_det,), area_ranges=area_ranges)
    prec = coco.precision[..., 0]  # (T, R, K, A)
    with np.errstate(invalid="ignore"):
        ap_tka = np.where(prec.min(axis=1) < 0, np.nan, prec.mean(axis=1))
    ap_kat = np.transpose(ap_tka, (1, 2, 0))[None]
    table = DetectionTable(counts, tuple(class_names), area_names, iou, n_bins, float(conf), np.zeros(0))
    blk = table.blocks(counts.sum(axis=0, keepdims=True, dtype=np.float64))
    exact = aggregate(ap_kat, blk["op_tp"], blk["op_fp"], blk["n_gt"], area_names)[0]
    return DetectionTable(counts, tuple(class_names), area_names, iou, n_bins, float(conf), exact)

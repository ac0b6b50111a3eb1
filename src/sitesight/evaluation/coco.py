"""COCO bbox AP/AR (the 12 standard stats, identical to pycocotools) and VOC-style AP.

Built on `sitesight.evaluation.matching.match_boxes`, vectorised over images, classes, IoU
thresholds and area ranges. Reproduces pycocotools exactly: stable sort on descending score,
``max_det`` truncation per image and class, area-range ignore flags for ground truth and for
unmatched predictions, crowd IoU, the 101-point interpolated precision, ``-1`` for classes without
ground truth, and the tie order of predictions across images.

Beyond pycocotools: per-class AP/AR, any IoU list, area ranges relative to each frame
(``frame_wh``), and ``honour_max_dets=True`` so that the headline AP uses ``max_dets[-1]``
(pycocotools always looks for 100 there).

Example:
    >>> from sitesight import Detections
    >>> from sitesight.evaluation.coco import evaluate_coco
    >>> gt = [Detections(xyxy=[[0, 0, 10, 10]])]
    >>> pred = [Detections(xyxy=[[0, 0, 10, 10]], score=[0.9])]
    >>> evaluate_coco(gt, pred).stats[0]
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.accumulate import COCO_RECALL_THRESHOLDS, accumulate
from sitesight.evaluation.assignment import match_sparse
from sitesight.evaluation.boxtable import BoxTable, Frames, box_table, class_names_for
from sitesight.evaluation.matching import match_boxes

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "COCO_AREA_RANGES",
    "STAT_NAMES",
    "CocoResult",
    "evaluate_coco",
    "evaluate_tables",
    "voc_ap",
]

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_AREA_RANGES: Mapping[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class CocoResult:
    """COCO evaluation result.

    Attributes:
        stats: ``(12,)`` float64 in pycocotools' order (see `STAT_NAMES`); -1 where undefined.
        precision: ``(T, R, K, A, M)`` interpolated precision at 101 recall points (-1 = no GT).
        recall: ``(T, K, A, M)`` final recall (-1 = no GT).
        class_names: ``K`` names; ``per_class`` holds AP, AP50, AP75, APs, APm, APl, AR100 per class.
        iou_thresholds, max_dets, area_range_names: the axes of ``precision``.
    """

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    class_names: tuple[str, ...]
    per_class: Mapping[str, Mapping[str, float]]
    iou_thresholds: np.ndarray
    max_dets: tuple[int, ...]
    area_range_names: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def named(self) -> dict[str, float]:
        """The 12 stats under their names (AP, AP50, ..., ARl)."""
        return {k: float(v) for k, v in zip(STAT_NAMES, self.stats, strict=True)}

    def to_pandas(self) -> Any:
        """Per-class table (index ``class``; AP, AP50, AP75, APs, APm, APl, AR100; -1 = undefined); needs pandas."""
        from sitesight.interop import records_frame

        return records_frame({k: dict(v) for k, v in self.per_class.items()}, index_name="class")

    def pr_curve(self, class_index: int, iou: float = 0.5, area: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """``(recall (101,), precision (101,))`` of one class at one IoU threshold (max_dets[-1])."""
        t = int(np.argmin(np.abs(self.iou_thresholds - iou)))
        a = self.area_range_names.index(area)
        return COCO_RECALL_THRESHOLDS.copy(), self.precision[t, :, class_index, a, -1].copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stats": [float(v) for v in self.stats],
            **self.named,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "iou_thresholds": [float(v) for v in self.iou_thresholds],
            "max_dets": list(self.max_dets),
            "area_ranges": list(self.area_range_names),
            "counts": dict(self.counts),
        }


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _summaries(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    area_names: Sequence[str],
    max_dets: Sequence[int],
    headline_max_det: int,
) -> np.ndarray:
    def pick(ap: bool, iou: float | None, area: str, max_det: int, k: slice | int = slice(None)) -> float:
        a = [i for i, name in enumerate(area_names) if name == area]
        m = [i for i, d in enumerate(max_dets) if d == max_det]
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == iou_thresholds)[0]]
        s = s[:, :, k][..., a, :][..., m] if ap else s[:, k][..., a, :][..., m]
        return _mean_defined(s)

    md = list(max_dets) + [max_dets[-1]] * (3 - len(max_dets))
    return np.array(
        [
            pick(True, None, "all", headline_max_det),
            pick(True, 0.5, "all", md[2]),
            pick(True, 0.75, "all", md[2]),
            pick(True, None, "small", md[2]),
            pick(True, None, "medium", md[2]),
            pick(True, None, "large", md[2]),
            pick(False, None, "all", md[0]),
            pick(False, None, "all", md[1]),
            pick(False, None, "all", md[2]),
            pick(False, None, "small", md[2]),
            pick(False, None, "medium", md[2]),
            pick(False, None, "large", md[2]),
        ]
    )


def _per_class(precision: np.ndarray, recall: np.ndarray, iou_thresholds: np.ndarray, area_names: Sequence[str], class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    area_index = {name: i for i, name in enumerate(area_names)}
    for k, name in enumerate(class_names):
        row: dict[str, float] = {}
        for key, t_sel, area in (
            ("AP", slice(None), "all"),
            ("AP50", np.isclose(iou_thresholds, 0.5), "all"),
            ("AP75", np.isclose(iou_thresholds, 0.75), "all"),
            ("APs", slice(None), "small"),
            ("APm", slice(None), "medium"),
            ("APl", slice(None), "large"),
        ):
            if area in area_index:
                row[key] = _mean_defined(precision[t_sel, :, k, area_index[area], -1])
        if "all" in area_index:
            row["AR100"] = _mean_defined(recall[:, k, area_index["all"], -1])
        out[name] = row
    return out


def _area_bounds(
    area_ranges: Mapping[str, tuple[float, float]], n_images: int, frame_wh: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    ranges = np.array([list(v) for v in area_ranges.values()], np.float64).reshape(-1, 2)
    if frame_wh is None:  # the same bounds for every image: (A, 1) broadcasts
        return ranges[:, :1].copy(), ranges[:, 1:].copy()
    frame_area = np.asarray(frame_wh, np.float64).reshape(n_images, 2).prod(axis=1)
    return ranges[:, :1] * frame_area[None, :], ranges[:, 1:] * frame_area[None, :]


def evaluate_tables(
    gt: BoxTable,
    pred: BoxTable,
    *,
    n_images: int,
    class_names: Sequence[str],
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    frame_wh: np.ndarray | None = None,
    honour_max_dets: bool = False,
) -> CocoResult:
    """COCO evaluation of columnar tables (see `evaluate_coco` for the arguments).

    Predictions whose class index is outside ``class_names`` are dropped, as pycocotools drops
    results whose category is unknown. ``frame_wh`` ``(n_images, 2)`` makes ``area_ranges`` fractions
    of each frame's area.
    """
    num_classes = len(class_names)
    max_dets = tuple(sorted(int(m) for m in max_dets))
    if not max_dets:
        raise InputError("max_dets: need at least one value")
    iou_arr = np.asarray(iou_thresholds, np.float64)
    known = (pred.class_id >= 0) & (pred.class_id < num_classes)
    pred = pred if known.all() else pred.take(known)
    known = (gt.class_id >= 0) & (gt.class_id < num_classes)
    gt = gt if known.all() else gt.take(known)
    lo, hi = _area_bounds(area_ranges, n_images, frame_wh)
    matches = match_sparse(
        gt, pred, num_classes=num_classes, n_images=n_images, iou_thresholds=iou_arr, area_lo=lo, area_hi=hi, max_det=max_dets[-1]
    )
    precision, recall = accumulate(matches, pred, gt, num_classes, max_dets)
    names = tuple(area_ranges)
    stats = _summaries(precision, recall, iou_arr, names, max_dets, max_dets[-1] if honour_max_dets else 100)
    return CocoResult(
        stats=stats,
        precision=precision,
        recall=recall,
        class_names=tuple(class_names),
        per_class=_per_class(precision, recall, iou_arr, names, class_names),
        iou_thresholds=iou_arr,
        max_dets=max_dets,
        area_range_names=names,
        counts={"images": n_images, "gt": len(gt), "pred": len(pred), "pred_evaluated": int(matches.candidates.pred_index.size)},
    )


def evaluate_coco(
    gts: Frames,
    preds: Frames,
    *,
    class_names: Sequence[str] | None = None,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    frame_wh: Sequence[tuple[int, int]] | None = None,
    honour_max_dets: bool = False,
) -> CocoResult:
    """COCO bbox evaluation of per-image predictions against ground truth.

    Args:
        gts: one ground-truth `Detections` per image, or their `FrameTable` (``attributes["iscrowd"]``
            marks crowd boxes, ``attributes["coco_area"]`` / ``["area"]`` override the area used for
            area ranges).
        preds: one prediction `Detections` per image, or their `FrameTable`, aligned with ``gts``.
        class_names: the ``K`` classes (default ``c0..`` up to the largest class id).
        iou_thresholds: IoU thresholds (default 0.50:0.05:0.95).
        max_dets: per image and class limits; the last one bounds matching.
        area_ranges: name → ``(lo, hi)`` inclusive area bounds in px² (COCO's all/small/medium/large);
            the 12 stats read the ranges named all/small/medium/large.
        frame_wh: per-image ``(width, height)``; when given, ``area_ranges`` are fractions of the frame.
        honour_max_dets: headline AP at ``max_dets[-1]`` instead of pycocotools' fixed 100.

    Returns:
        `CocoResult` whose ``stats`` equal pycocotools' ``COCOeval.stats`` (|Δ| ≤ 1e-12 in tests).
    """
    gt, n_images = box_table(gts, gt=True)
    pred, n_pred = box_table(preds, gt=False)
    if n_images != n_pred:
        raise InputError(f"evaluate_coco: {n_images} ground-truth images but {n_pred} prediction images")
    class_names = class_names_for(gt, pred, class_names=class_names)
    wh = None if frame_wh is None else np.asarray(frame_wh, np.float64).reshape(n_images, 2)
    return evaluate_tables(
        gt,
        pred,
        n_images=n_images,
        class_names=class_names,
        iou_thresholds=iou_thresholds,
        max_dets=max_dets,
        area_ranges=area_ranges,
        frame_wh=wh,
        honour_max_dets=honour_max_dets,
    )


def voc_ap(
    gts: Frames,
    preds: Frames,
    *,
    iou: float = 0.5,
    eleven_point: bool = False,
    class_names: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """VOC-style AP per class at one IoU, from the same matches as every other metric.

    All predictions count (no ``max_det``); crowd ground truth is ignored like VOC's "difficult".
    ``eleven_point=True`` is the VOC2007 metric (mean of the best precision at recall ≥ 0, 0.1, …, 1),
    otherwise the area under the monotone precision envelope (VOC2010+). Matching is sitesight's
    (best still-unmatched GT), continuous coordinates (no VOC "+1 pixel"). ``None`` = no GT.
    """
    gt, pred = box_table(gts, gt=True)[0], box_table(preds, gt=False)[0]
    class_names = class_names_for(gt, pred, class_names=class_names)
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    rows = m.pred_index
    cls = pred.class_id[rows]
    order = np.lexsort((m.pred_rank, pred.frame[rows], -pred.score[rows], cls))
    tp = m.pred_tp[0, 0, order]
    fp = m.pred_fp[0, 0, order]
    cls = cls[order]
    npos = np.bincount(gt.class_id[~m.gt_ignored[0]], minlength=len(class_names))
    out: dict[str, float | None] = {}
    for k, name in enumerate(class_names):
        if npos[k] == 0:
            out[name] = None
            continue
        sel = (cls == k) & (tp | fp)
        tps = np.cumsum(tp[sel], dtype=np.float64)
        fps = np.cumsum(fp[sel], dtype=np.float64)
        rc = tps / npos[k]
        pr = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
        if eleven_point:
            out[name] = float(np.mean([pr[rc >= r].max() if (rc >= r).any() else 0.0 for r in np.arange(0, 1.1, 0.1)]))
        else:
            mrec = np.r_[0.0, rc, 1.0]
            mpre = np.maximum.accumulate(np.r_[0.0, pr, 0.0][::-1])[::-1]
            step = np.flatnonzero(mrec[1:] != mrec[:-1])
            out[name] = float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))
    return out

"""Detection metrics at the operating point the user chooses, all from one set of matches.

`match_detections` matches once at a single IoU over every prediction (no ``max_det`` cap), then
every threshold is a cumulative count: the operating point at ``conf``, a sweep over 40 thresholds,
the best-F1 threshold per class, the highest-precision threshold that still reaches a target
recall, and PR curves. Matching at the lowest threshold and then filtering is exact, because a
prediction's match depends only on predictions with higher scores.

Conventions: a prediction counts at threshold ``c`` when ``score >= c``; TP = matched to regular
ground truth, FP = unmatched, predictions matched to crowd ground truth are neither; FN = regular
ground truth minus TP. Precision with no prediction is 0, as is recall with no ground truth.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.evaluation.detection import operating_point
    >>> gt = [Detections(xyxy=[[0, 0, 10, 10], [20, 20, 30, 30]])]
    >>> pred = [Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.9, 0.8])]
    >>> r = operating_point(gt, pred, conf=0.5, num_classes=1)
    >>> (r.tp, r.fp, r.fn, r.precision)
    (1, 1, 1, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.boxtable import Frames, box_table, class_names_for
from sitesight.evaluation.matching import match_boxes
from sitesight.ranges import parse_range

__all__ = [
    "Counts",
    "OperatingPoint",
    "MatchedDetections",
    "match_detections",
    "operating_point",
    "confidence_sweep",
    "parse_sweep",
]


@dataclass(frozen=True)
class Counts:
    """TP/FP/FN with precision, recall and F1 (0 where undefined)."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class OperatingPoint(Counts):
    """Counts overall (micro, over all classes) at one ``conf`` and ``iou``, plus ``per_class``."""

    conf: float = 0.5
    iou: float = 0.5
    per_class: Mapping[str, Counts] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"conf": self.conf, "iou": self.iou, **super().to_dict()}
        out["per_class"] = {k: v.to_dict() for k, v in (self.per_class or {}).items()}
        return out


@dataclass(frozen=True)
class MatchedDetections:
    """Every prediction matched once at one IoU; thresholds are then cumulative counts.

    Attributes:
        score: ``(D,)`` float32 scores of the counted predictions (TP or FP), highest first.
        class_id: ``(D,)`` int64.
        tp: ``(D,)`` bool, True = TP, False = FP.
        n_gt: ``(K,)`` int64 regular (non-crowd) ground truth per class.
        class_names: ``K`` names.
        iou: the IoU threshold of the matches.
    """

    score: np.ndarray
    class_id: np.ndarray
    tp: np.ndarray
    n_gt: np.ndarray
    class_names: tuple[str, ...]
    iou: float

    def _counts(self, conf: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(len(conf),)`` TP and FP counts with ``score >= conf`` (restricted to ``mask``)."""
        score, tp = (self.score, self.tp) if mask is None else (self.score[mask], self.tp[mask])
        # Thresholds in the scores' own precision: a float32 score of 0.35 counts at conf=0.35.
        n = np.searchsorted(-score, -np.asarray(conf, np.float64).astype(score.dtype), side="right")
        tp_cum = np.r_[0, np.cumsum(tp, dtype=np.int64)]
        return tp_cum[n], n - tp_cum[n]

    def at(self, conf: float) -> OperatingPoint:
        """TP/FP/FN/P/R/F1 overall and per class at ``score >= conf``."""
        per_class = {}
        for k, name in enumerate(self.class_names):
            tp, fp = self._counts(np.array([conf]), self.class_id == k)
            per_class[name] = Counts(int(tp[0]), int(fp[0]), int(self.n_gt[k] - tp[0]))
        tp, fp = self._counts(np.array([conf]))
        return OperatingPoint(int(tp[0]), int(fp[0]), int(self.n_gt.sum() - tp[0]), conf=float(conf), iou=self.iou, per_class=per_class)

    def sweep(self, thresholds: Sequence[float] | np.ndarray) -> list[dict[str, Any]]:
        """One row per threshold: ``conf, tp, fp, fn, precision, recall, f1`` (overall) and ``per_class``."""
        conf = np.asarray(thresholds, np.float64)
        tp, fp = self._counts(conf)
        per = [self._counts(conf, self.class_id == k) for k in range(len(self.class_names))]
        rows = []
        for i, c in enumerate(conf):
            row = {"conf": float(c), **Counts(int(tp[i]), int(fp[i]), int(self.n_gt.sum() - tp[i])).to_dict()}
            row["per_class"] = {
                name: Counts(int(per[k][0][i]), int(per[k][1][i]), int(self.n_gt[k] - per[k][0][i])).to_dict()
                for k, name in enumerate(self.class_names)
            }
            rows.append(row)
        return rows

    def pr_curve(self, class_index: int | None = None) -> dict[str, np.ndarray]:
        """PR curve at every distinct score: ``threshold, precision, recall, f1`` arrays, thresholds descending.

        ``class_index=None`` pools all classes (micro).
        """
        mask = None if class_index is None else self.class_id == class_index
        score = self.score if mask is None else self.score[mask]
        n_gt = int(self.n_gt.sum() if class_index is None else self.n_gt[class_index])
        thresholds = np.unique(score)[::-1]
        tp, fp = self._counts(thresholds, mask)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = tp / n_gt if n_gt else np.zeros(tp.size)
        f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + n_gt, 1), 0.0)
        return {"threshold": thresholds, "precision": precision, "recall": recall, "f1": f1}

    def best_thresholds(self, target_recall: float | None = None) -> dict[str, dict[str, Any]]:
        """Per class (and ``"all"``): the best-F1 threshold, and the highest-precision threshold with
        recall ≥ ``target_recall`` (None when no threshold reaches it). Ties go to the higher threshold."""
        out: dict[str, dict[str, Any]] = {}
        for key, k in [("all", None), *[(n, i) for i, n in enumerate(self.class_names)]]:
            c = self.pr_curve(k)
            entry: dict[str, Any] = {"best_f1": None, "target_recall": target_recall, "at_target_recall": None}
            if c["threshold"].size:
                i = int(np.argmax(c["f1"]))
                entry["best_f1"] = {m: float(c[m][i]) for m in ("threshold", "precision", "recall", "f1")}
                if target_recall is not None:
                    ok = np.flatnonzero(c["recall"] >= target_recall - 1e-12)
                    if ok.size:
                        j = int(ok[np.argmax(c["precision"][ok])])
                        entry["at_target_recall"] = {m: float(c[m][j]) for m in ("threshold", "precision", "recall", "f1")}
            out[key] = entry
        return out


def match_detections(
    gts: Frames,
    preds: Frames,
    *,
    iou: float = 0.5,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> MatchedDetections:
    """Match every prediction once at ``iou`` (per image and class, highest score first).

    Args:
        gts, preds: equal-length lists of `Detections`, one per image, or their `FrameTable`s.
        iou: IoU threshold for a match.
        num_classes / class_names: the class set (default: up to the largest class id seen).
    """
    gt, n_gt_frames = box_table(gts, gt=True)
    pred, n_pred_frames = box_table(preds, gt=False)
    if n_gt_frames != n_pred_frames:
        raise InputError(f"{n_gt_frames} ground-truth images but {n_pred_frames} prediction images")
    names = class_names_for(gt, pred, class_names=class_names, num_classes=num_classes)
    k = len(names)
    for what, table in (("ground truth", gt), ("predictions", pred)):
        if len(table) and (table.class_id.min() < 0 or table.class_id.max() >= k):
            raise InputError(f"{what}: class id outside 0..{k - 1}")
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    counted = ~m.pred_ignored[0, 0]
    rows = m.pred_index[counted]
    order = np.argsort(-pred.score[rows], kind="stable")
    n_gt = np.bincount(gt.class_id[~gt.crowd], minlength=k)
    return MatchedDetections(
        score=pred.score[rows][order].astype(np.float32),  # Detections scores are float32
        class_id=pred.class_id[rows][order],
        tp=(m.pred_gt[0, 0, counted] >= 0)[order],
        n_gt=n_gt,
        class_names=names,
        iou=float(iou),
    )


def operating_point(
    gts: Frames,
    preds: Frames,
    *,
    iou: float = 0.5,
    conf: float = 0.5,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> OperatingPoint:
    """TP, FP, FN, precision, recall, F1 overall and per class at ``score >= conf`` and ``iou``."""
    return match_detections(gts, preds, iou=iou, num_classes=num_classes, class_names=class_names).at(conf)


def confidence_sweep(
    gts: Frames,
    preds: Frames,
    thresholds: Sequence[float] | np.ndarray,
    *,
    iou: float = 0.5,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``conf, tp, fp, fn, precision, recall, f1`` (+ ``per_class``) per threshold; one matching."""
    return match_detections(gts, preds, iou=iou, num_classes=num_classes, class_names=class_names).sweep(thresholds)


def parse_sweep(text: str) -> np.ndarray:
    """``--sweep`` thresholds: `sitesight.ranges.parse_range` as a float64 array, a reversed range refused.

    ``"0.15:0.5:0.05"`` (start:stop:step, stop included) or ``"0.2,0.3,0.5"`` → ``(T,)`` float64.

    Raises:
        InputError: malformed text, a non-positive step, or a stop below the start.
    """
    try:
        values = parse_range(text)
    except ValueError:
        values = None
    # parse_range reads a reversed range as empty; as a sweep it is a typo, so it is refused
    if values is None or (not values and ":" in text):
        raise InputError(f"--sweep: expected start:stop:step or a comma list of numbers, got {text!r}")
    return np.array(values, np.float64)

"""IoU-aware scoring values (numpy only): the rescoring rule, the true IoU, rank correlation, IoU calibration.

A detector that predicts the IoU of its own boxes (the IoU-aware RetinaNet, or any detector after
post-hoc rescoring) stores, per raw box, the class probability ``cls_score`` = p and the predicted
IoU ``iou_pred``; `rescore` gives ``S = p^alpha * IoU^(1 - alpha)``. The alpha sweep over a stored
run (rescore, post-process, COCO AP per alpha, and the true-IoU *oracle*) lives with the run in
`sitesight.sliced.alpha`; `AlphaRow` / `AlphaSweep` are its result values.

Example:
    >>> import numpy as np
    >>> from sitesight.evaluation.iou_aware import rescore, spearman
    >>> [round(float(v), 3) for v in rescore(np.array([0.81]), np.array([0.25]), 0.5)]
    [0.45]
    >>> spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20]))
    0.5
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.boxes import pairwise_iou
from sitesight.detections import Detections

__all__ = [
    "AlphaRow",
    "AlphaSweep",
    "Calibration",
    "rescore",
    "true_iou",
    "spearman",
    "iou_calibration",
    "CLS_SCORE",
    "IOU_PRED",
]

CLS_SCORE = "cls_score"
IOU_PRED = "iou_pred"


def rescore(cls_score: np.ndarray, iou: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """``(N,)`` float32 ``S = p^alpha * IoU^(1 - alpha)``; ``alpha`` scalar or ``(N,)`` per box; alpha 1 gives p exactly."""
    p = np.asarray(cls_score, np.float64)
    q = np.clip(np.asarray(iou, np.float64), 0.0, 1.0)
    a = np.broadcast_to(np.asarray(alpha, np.float64), p.shape)
    out = np.where(a >= 1.0, p, np.power(p, a) * np.power(q, 1.0 - a))
    return out.astype(np.float32)


def true_iou(pred: Detections, gt: Detections) -> np.ndarray:
    """``(N,)`` float32: each predicted box's best IoU with a ground-truth box of the same class (0 if none)."""
    out = np.zeros(len(pred), np.float32)
    if len(pred) == 0 or len(gt) == 0:
        return out
    iou = pairwise_iou(pred.xyxy, gt.xyxy)
    iou[pred.class_id[:, None] != gt.class_id[None, :]] = 0.0
    return iou.max(axis=1)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy's ``rankdata``)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two ``(N,)`` arrays (ties averaged); nan when either is constant or N < 2."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes differ, {a.shape} vs {b.shape}")
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a) - (len(a) + 1) / 2.0, _ranks(b) - (len(b) + 1) / 2.0
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class Calibration:
    """Predicted vs true IoU in equal-width bins of the prediction.

    Args:
        edges: ``(B + 1,)`` bin edges over ``[0, 1]``.
        count: ``(B,)`` boxes per bin.
        mean_pred / mean_true: ``(B,)`` means per bin (nan where empty).
        ece: count-weighted mean of ``|mean_pred - mean_true|`` over bins (expected calibration error).
        spearman / pearson: correlation of predicted and true IoU over all boxes.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_pred: np.ndarray
    mean_true: np.ndarray
    ece: float
    spearman: float
    pearson: float

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else float(v) for v in a]

        return {"edges": clean(self.edges), "count": [int(c) for c in self.count], "mean_pred": clean(self.mean_pred),
                "mean_true": clean(self.mean_true), "ece": self.ece, "spearman": self.spearman, "pearson": self.pearson}


def iou_calibration(pred_iou: np.ndarray, true: np.ndarray, *, bins: int = 10) -> Calibration:
    """Bin ``(N,)`` predicted IoUs into ``bins`` equal bins of ``[0, 1]`` and compare with the ``(N,)`` true IoUs."""
    p = np.clip(np.asarray(pred_iou, np.float64).ravel(), 0.0, 1.0)
    t = np.asarray(true, np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"iou_calibration: {p.shape} predictions for {t.shape} true values")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(which, p, minlength=bins) / count
        mean_true = np.bincount(which, t, minlength=bins) / count
    used = count > 0
    ece = float((count[used] * np.abs(mean_pred[used] - mean_true[used])).sum() / max(1, count.sum()))
    pearson = float(np.corrcoef(p, t)[0, 1]) if len(p) > 1 and p.std() > 0 and t.std() > 0 else float("nan")
    return Calibration(edges, count, mean_pred, mean_true, ece, spearman(p, t), pearson)


@dataclass(frozen=True)
class AlphaRow:
    """One alpha: COCO AP, AP50, AP75 after rescoring and merging; ``oracle`` rows use the true IoU."""

    alpha: float
    oracle: bool
    AP: float
    AP50: float
    AP75: float


@dataclass(frozen=True)
class AlphaSweep:
    """Rows for every alpha (predicted IoU), then, when asked, every alpha again with the oracle."""

    rows: tuple[AlphaRow, ...]
    frames: int
    boxes: int

    def best(self, *, oracle: bool = False, key: str = "AP") -> AlphaRow:
        """The row with the highest ``key`` among predicted (or oracle) rows; ties go to the larger alpha."""
        rows = [r for r in self.rows if r.oracle == oracle]
        if not rows:
            raise ValueError("no rows of that kind")
        return max(rows, key=lambda r: (round(getattr(r, key), 9), r.alpha))

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "boxes": self.boxes, "rows": [asdict(r) for r in self.rows],
                "best": asdict(self.best()), **({"best_oracle": asdict(self.best(oracle=True))} if any(r.oracle for r in self.rows) else {})}

    def save_csv(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.open_atomic(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["alpha", "oracle", "AP", "AP50", "AP75"])
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.rows)
        return path

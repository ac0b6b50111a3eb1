"""Class confusion matrix with a background row and column, from the one matching engine.

Semantics (also written into ``to_dict()["semantics"]``): predictions with ``score >= conf`` are
matched to ground truth class-agnostically by `match_boxes` (per image, highest score first, each
prediction takes the best still-free ground truth at IoU ≥ ``iou``). Rows are the true class, the
last row ``background`` counts predictions that matched nothing (false positives); columns are the
predicted class, the last column ``background`` counts ground truth that no prediction took
(misses). Predictions matched to crowd ground truth are left out.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.evaluation.confusion import confusion_matrix
    >>> gt = [Detections(xyxy=[[0, 0, 10, 10]], class_id=[0])]
    >>> pred = [Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]], class_id=[1, 0], score=[0.9, 0.9])]
    >>> confusion_matrix(gt, pred, num_classes=2).matrix.tolist()
    [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.boxtable import class_names_for
from sitesight.evaluation.matching import match_boxes, table_from_detections

__all__ = ["ConfusionResult", "confusion_matrix"]

SEMANTICS = (
    "rows: true class, last row 'background' = predictions that matched no ground truth (false positives); "
    "columns: predicted class, last column 'background' = ground truth no prediction took (misses); "
    "class-agnostic greedy matching at IoU >= iou, predictions with score >= conf"
)


@dataclass(frozen=True)
class ConfusionResult:
    """``matrix (K+1, K+1)`` int64 with ``labels`` = class names + ``"background"``."""

    matrix: np.ndarray
    labels: tuple[str, ...]
    iou: float
    conf: float

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "matrix": self.matrix.tolist(), "iou": self.iou, "conf": self.conf, "semantics": SEMANTICS}


def confusion_matrix(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    iou: float = 0.5,
    conf: float = 0.25,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> ConfusionResult:
    """Confusion between classes, background included (see the module notes for the semantics)."""
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth images but {len(preds)} prediction images")
    gt = table_from_detections(gts, gt=True)
    pred = table_from_detections(preds, gt=False)
    pred = pred.take(pred.score >= conf)
    class_names = class_names_for(gt, pred, class_names=class_names, num_classes=num_classes)
    k = len(class_names)
    # Class-agnostic: every box in one class for matching, true classes looked up afterwards.
    m = match_boxes(gt.with_columns(class_id=np.zeros(len(gt), np.int64)), pred.with_columns(class_id=np.zeros(len(pred), np.int64)), iou_thresholds=[iou], max_det=None)
    matched = m.pred_gt[0, 0]
    ignored = m.pred_ignored[0, 0]
    rows = m.pred_index
    matrix = np.zeros((k + 1, k + 1), np.int64)
    tp = (matched >= 0) & ~ignored
    np.add.at(matrix, (gt.class_id[matched[tp]], pred.class_id[rows[tp]]), 1)
    fp = (matched < 0) & ~ignored
    np.add.at(matrix, (np.full(int(fp.sum()), k), pred.class_id[rows[fp]]), 1)
    taken = np.zeros(len(gt), bool)
    taken[matched[tp]] = True
    missed = ~taken & ~gt.crowd
    np.add.at(matrix, (gt.class_id[missed], np.full(int(missed.sum()), k)), 1)
    return ConfusionResult(matrix=matrix, labels=(*class_names, "background"), iou=float(iou), conf=float(conf))

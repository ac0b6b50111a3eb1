"""Evaluation: one matching engine for every detection metric, plus classification and anomaly metrics.

Modules: `matching` (the engine), `coco` (COCO/VOC AP, exact against pycocotools), `detection`
(operating point, confidence sweep, PR curves), `errors` (TIDE-like error breakdown), `confusion`
(class confusion with a background row/column), `classification`, `anomaly`. numpy only.
"""

from __future__ import annotations

from sitesight.evaluation.anomaly import anomaly_metrics, best_f1_threshold, pixel_auroc, threshold_from_normals
from sitesight.evaluation.classification import classification_metrics

__all__ = [
    "anomaly_metrics",
    "best_f1_threshold",
    "classification_metrics",
    "pixel_auroc",
    "threshold_from_normals",
]

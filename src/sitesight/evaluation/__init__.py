"""Evaluation: one matching engine for every detection metric, plus classification and anomaly metrics.

Modules: `matching` (the engine: `boxtable` columns, `candidates` pairs, `assignment` greedy
matches), `coco` (COCO/VOC AP, exact against pycocotools; `accumulate` its precision/recall
arrays), `coco_files` (COCO JSON straight into columns; `coco_json` the fast readers), `detection`
(operating point, confidence sweep, thresholds, PR curves), `errors` (TIDE-like error breakdown),
`confusion` (class confusion with a background row/column), `classification`, `anomaly`, `inputs`
(the CLI's file readers). numpy only.
"""

from __future__ import annotations

from sitesight.evaluation.anomaly import anomaly_metrics, best_f1_threshold, pixel_auroc, threshold_from_normals
from sitesight.evaluation.classification import classification_metrics
from sitesight.evaluation.coco import evaluate_coco, voc_ap
from sitesight.evaluation.coco_files import evaluate_coco_files
from sitesight.evaluation.confusion import confusion_matrix
from sitesight.evaluation.detection import confidence_sweep, match_detections, operating_point
from sitesight.evaluation.errors import error_breakdown
from sitesight.evaluation.matching import match_boxes

__all__ = [
    "anomaly_metrics",
    "best_f1_threshold",
    "classification_metrics",
    "confidence_sweep",
    "confusion_matrix",
    "error_breakdown",
    "evaluate_coco",
    "evaluate_coco_files",
    "match_boxes",
    "match_detections",
    "operating_point",
    "pixel_auroc",
    "threshold_from_normals",
    "voc_ap",
]

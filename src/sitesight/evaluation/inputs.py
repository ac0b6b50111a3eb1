"""File inputs for the ``sitesight eval`` commands: one library function per command.

* `evaluate_det_files`: ground truth in any supported format, predictions as COCO results JSON or
  a sitesight run folder (raw per-slice predictions merged per frame) → operating point, sweep,
  error breakdown and confusion matrix, all from the same matching rules.
* `evaluate_cls_csv`: a CSV with a ``label`` column and one probability column per class.
* `evaluate_anomaly_csv`: a CSV with ``label`` (normal/anomalous) and ``score`` columns.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.anomaly import AnomalyResult, anomaly_metrics
from sitesight.evaluation.classification import ClassificationResult, classification_metrics
from sitesight.evaluation.confusion import confusion_matrix
from sitesight.evaluation.detection import match_detections
from sitesight.evaluation.errors import error_breakdown

__all__ = ["load_predictions", "detection_report", "evaluate_det_files", "evaluate_cls_csv", "evaluate_anomaly_csv"]

ANOMALOUS = {"anomalous", "anomaly", "abnormal", "defect", "defective", "ng", "bad", "1", "true", "yes"}
NORMAL = {"normal", "good", "ok", "0", "false", "no"}
# columns of a classification CSV that describe a row rather than hold a class probability
CLS_CSV_INFO_COLUMNS = ("image", "path", "id", "box_index", "x1", "y1", "x2", "y2", "score", "pred")


def _run_predictions(run_dir: Path, dataset: Dataset, merge_method: str, merge_threshold: float) -> list[Detections]:
    from sitesight.sliced.merge import merge
    from sitesight.sliced.store import load_run

    run = load_run(run_dir)
    by_path = {str(Path(f.key).resolve()): d for f, d in zip(run.frames, run.raw, strict=True)}
    by_name: dict[str, Detections] = {}
    for f, d in zip(run.frames, run.raw, strict=True):
        by_name.setdefault(Path(f.key).name, d)
    out = []
    for sample in dataset.samples:
        path = dataset.image_path(sample)
        raw = by_path.get(str(path.resolve()), by_name.get(path.name))
        if raw is None:
            out.append(Detections.empty(["source"]))
            continue
        merged = merge(raw, method=merge_method, metric="ios" if merge_method != "nms" else "iou", threshold=merge_threshold)
        out.append(merged)
    return out


def load_predictions(pred: Path | str, dataset: Dataset, *, merge_method: str = "greedy_nmm", merge_threshold: float = 0.5) -> list[Detections]:
    """Predictions aligned with ``dataset.samples``: COCO results JSON, or a run folder (merged per frame)."""
    pred = Path(pred)
    if pred.is_dir():
        if not (pred / "manifest.json").is_file():
            raise InputError("a prediction folder must be a sitesight run (manifest.json missing)", pred)
        return _run_predictions(pred, dataset, merge_method, merge_threshold)
    from sitesight.formats.coco import read_coco_results

    return read_coco_results(pred, dataset)


def detection_report(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    class_names: Sequence[str],
    iou: float = 0.5,
    conf: float = 0.5,
    thresholds: Sequence[float] | np.ndarray = (),
    target_recall: float | None = None,
) -> dict[str, Any]:
    """Operating point, sweep rows, best thresholds, error breakdown and confusion as one dict."""
    matched = match_detections(gts, preds, iou=iou, class_names=class_names)
    out = matched.at(conf).to_dict()
    out["sweep"] = matched.sweep(thresholds)
    out["best_thresholds"] = matched.best_thresholds(target_recall)
    out["errors"] = error_breakdown(gts, preds, iou=iou, conf=conf, class_names=class_names).to_dict()
    out["confusion"] = confusion_matrix(gts, preds, iou=iou, conf=conf, class_names=class_names).to_dict()
    out["images"] = len(gts)
    return out


def evaluate_det_files(
    gt: Path | str,
    pred: Path | str,
    *,
    iou: float = 0.5,
    conf: float = 0.5,
    thresholds: Sequence[float] | np.ndarray = (),
    target_recall: float | None = None,
    merge_method: str = "greedy_nmm",
) -> dict[str, Any]:
    """`detection_report` for a ground-truth dataset (any format) and a prediction file or run folder."""
    from sitesight.formats import read_dataset

    dataset = read_dataset(gt)
    preds = load_predictions(pred, dataset, merge_method=merge_method)
    gts = [s.gt for s in dataset.samples]
    return detection_report(gts, preds, class_names=dataset.class_names, iou=iou, conf=conf, thresholds=thresholds, target_recall=target_recall)


def _read_csv(path: Path | str, required: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc})", path) from None
    if not rows:
        raise InputError("empty CSV", path)
    header = [h.strip() for h in rows[0]]
    for name in required:
        if name not in header:
            raise InputError(f"missing column {name!r}; columns are {header}", path, "line 1")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    for i, r in enumerate(rows[1:], start=2):
        if any(c.strip() for c in r) and len(r) != len(header):
            raise InputError(f"expected {len(header)} fields, got {len(r)}", path, f"line {i}")
    return header, body


def _floats(values: list[str], path: Path | str, column: str, first_line: int) -> np.ndarray:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except ValueError:
            raise InputError(f"column {column!r}: not a number: {v!r}", path, f"line {first_line + i}") from None
    return out


def evaluate_cls_csv(path: Path | str) -> ClassificationResult:
    """Classification metrics from a CSV: ``label`` (true class name) + one probability column per class.

    Every column other than ``label`` and the descriptive columns in `CLS_CSV_INFO_COLUMNS` (image
    or box identity, box corners, detector score, predicted class name, as ``sitesight predict
    roi|cls`` write them) is a class.
    """
    header, body = _read_csv(path, ["label"])
    classes = [h for h in header if h != "label" and h not in CLS_CSV_INFO_COLUMNS]
    if not classes:
        raise InputError("no probability columns besides 'label'", path, "line 1")
    li = header.index("label")
    index = {c: k for k, c in enumerate(classes)}
    y = np.empty(len(body), np.int64)
    for i, r in enumerate(body):
        name = r[li].strip()
        if name not in index:
            raise InputError(f"label {name!r} is not one of the class columns {classes}", path, f"line {i + 2}")
        y[i] = index[name]
    probs = np.stack([_floats([r[header.index(c)] for r in body], path, c, 2) for c in classes], axis=1) if body else np.zeros((0, len(classes)))
    return classification_metrics(y, probs, classes)


def evaluate_anomaly_csv(path: Path | str, threshold: float | None = None) -> AnomalyResult:
    """Anomaly metrics from a CSV with ``label`` (normal/anomalous, also 0/1, good/defect) and ``score``."""
    header, body = _read_csv(path, ["label", "score"])
    li, si = header.index("label"), header.index("score")
    labels = np.empty(len(body), bool)
    for i, r in enumerate(body):
        v = r[li].strip().lower()
        if v in ANOMALOUS:
            labels[i] = True
        elif v in NORMAL:
            labels[i] = False
        else:
            raise InputError(f"label {r[li]!r}: expected normal or anomalous", path, f"line {i + 2}")
    scores = _floats([r[si] for r in body], path, "score", 2)
    return anomaly_metrics(labels, scores, threshold=threshold)

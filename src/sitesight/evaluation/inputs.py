"""File inputs for the ``sitesight eval`` commands: one library function per command.

* `detection_report`: operating point, sweep, error breakdown and confusion matrix of aligned
  ground truth and predictions, all from the same matching rules (``sitesight eval det`` reads
  its inputs with `sitesight.sliced.evaluate`, which joins runs and results files with ground truth).
* `evaluate_cls_csv`: a CSV with a ``label`` column and one probability column per class.
* `evaluate_anomaly_csv`: a CSV with ``label`` (normal/anomalous) and ``score`` columns.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.anomaly import AnomalyResult, anomaly_metrics
from sitesight.evaluation.classification import ClassificationResult, classification_metrics
from sitesight.evaluation.confusion import confusion_matrix
from sitesight.evaluation.detection import match_detections
from sitesight.evaluation.errors import error_breakdown
from sitesight.identity import class_lookup
from sitesight.limits import show

__all__ = ["detection_report", "evaluate_cls_csv", "evaluate_anomaly_csv"]

ANOMALOUS = {"anomalous", "anomaly", "abnormal", "defect", "defective", "ng", "bad", "1", "true", "yes"}
NORMAL = {"normal", "good", "ok", "0", "false", "no"}
# columns of a classification CSV that describe a row rather than hold a class probability
CLS_CSV_INFO_COLUMNS = ("image", "path", "id", "box_index", "x1", "y1", "x2", "y2", "score", "pred")


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


def _read_csv(path: Path | str, required: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = list(reader)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a CSV file", path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path) from None
    except csv.Error as exc:  # a cell over the csv module's 128 kB field limit, a NUL byte
        raise InputError(f"malformed CSV ({str(exc)[:80]})", path, f"line {reader.line_num}") from None
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path) from None
    if not rows:
        raise InputError("empty CSV", path)
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        twice = next(h for h in header if header.count(h) > 1)
        raise InputError(f"column {show(twice)} appears twice", path, "line 1")
    for name in required:
        if name not in header:
            raise InputError(f"missing column {name!r}; columns are {show(header, 120)}", path, "line 1")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    for i, r in enumerate(rows[1:], start=2):
        if any(c.strip() for c in r) and len(r) != len(header):
            raise InputError(f"expected {len(header)} fields, got {len(r)}", path, f"line {i}")
    return header, body


def _floats(values: list[str], path: Path | str, column: str, first_line: int) -> np.ndarray:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = float(v) if len(v) < 64 else float("nan")
        except ValueError:
            raise InputError(f"column {show(column)}: not a number: {show(v)}", path, f"line {first_line + i}") from None
        if not np.isfinite(out[i]):
            raise InputError(f"column {show(column)}: {show(v)} is not a finite number", path, f"line {first_line + i}")
    return out


def evaluate_cls_csv(path: Path | str, *, class_map: Sequence[tuple[str, str]] = ()) -> ClassificationResult:
    """Classification metrics from a CSV: ``label`` (true class name) + one probability column per class.

    Every column other than ``label`` and the descriptive columns in `CLS_CSV_INFO_COLUMNS` (image
    or box identity, box corners, detector score, predicted class name, as ``sitesight predict
    roi|cls`` write them) is a class. ``class_map`` (`sitesight.identity.parse_class_map`) renames
    the model's class columns to the label names: columns mapped onto one name have their
    probabilities summed, an empty target drops a column (its probability mass is not reassigned).
    """
    header, body = _read_csv(path, ["label"])
    columns = [h for h in header if h != "label" and h not in CLS_CSV_INFO_COLUMNS]
    if not columns:
        raise InputError("no probability columns besides 'label'", path, "line 1")
    mapping = dict(class_map)
    classes = list(dict.fromkeys(t for t in (mapping.get(c, c) for c in columns) if t))
    target = class_lookup(columns, classes, class_map=class_map, where=f"--class-map ({path})")
    li = header.index("label")
    index = {c: k for k, c in enumerate(classes)}
    y = np.empty(len(body), np.int64)
    for i, r in enumerate(body):
        name = r[li].strip()
        if name not in index:
            hint = "" if not class_map and name not in mapping else f" after --class-map (columns {show(columns, 120)})"
            raise InputError(f"label {show(name)} is not one of the classes {show(classes, 120)}{hint}; "
                             "map the model's class names with --class-map", path, f"line {i + 2}")
        y[i] = index[name]
    probs = np.zeros((len(body), len(classes)))
    for c, k in zip(columns, target, strict=True):
        if k >= 0:
            probs[:, k] += _floats([r[header.index(c)] for r in body], path, c, 2)
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
            raise InputError(f"label {show(r[li])}: expected normal or anomalous", path, f"line {i + 2}")
    scores = _floats([r[si] for r in body], path, "score", 2)
    return anomaly_metrics(labels, scores, threshold=threshold)

"""Report section for a classification or box-attribute run (RoI head, image classifier).

Reads the run's predictions CSV (see `sitesight.report.runs`), recomputes the metrics with
`sitesight.evaluation.classification.classification_metrics` and returns a plain dict that the
``classification`` template renders: headline macros (over active classes and over all classes,
each labelled), per-class table, confusion heatmap, sample predictions per class and the most
confident mistakes drawn on crops of the frame (inner box = the labelled box, yellow outer box =
the expanded region the model saw), training curves and history, configuration.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.classification import ClassificationResult, classification_metrics
from sitesight.report import plots
from sitesight.report.crops import CROP_SIDE, FrameCache, draw_crop, draw_thumbnail, palette
from sitesight.report.headline import classification_headline, init_warnings
from sitesight.report.runs import ReportRun

__all__ = ["ClassificationData", "load_classification", "classification_section", "picture"]

META_COLUMNS = ("image", "path", "id", "box_index", "x1", "y1", "x2", "y2", "score", "label", "pred")


@dataclass(frozen=True)
class ClassificationData:
    """Labelled predictions of one run.

    Attributes:
        class_names: ``K`` names.
        images: ``(N,)`` object array of image paths (str).
        xyxy: ``(N, 4)`` float32 boxes in frame pixels, or None for whole-image classification.
        y_true: ``(N,)`` int64 true class index.
        probs: ``(N, K)`` float64 class probabilities.
        box_index: ``(N,)`` int64 box index within its frame (row number when absent).
    """

    class_names: tuple[str, ...]
    images: np.ndarray
    xyxy: np.ndarray | None
    y_true: np.ndarray
    probs: np.ndarray
    box_index: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.y_true) else np.zeros(0, np.int64)

    def keys(self) -> list[tuple[str, int]]:
        """``(image, box_index)`` per row, to line up two runs on the same boxes."""
        return [(str(i), int(b)) for i, b in zip(self.images, self.box_index, strict=True)]


def load_classification(run: ReportRun) -> ClassificationData:
    """Read the labelled rows of the run's predictions CSV (rows without a true label are skipped)."""
    path = run.artefact("predictions")
    assert path is not None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path) from None
    if not rows:
        raise InputError("empty CSV", path)
    header = [h.strip() for h in rows[0]]
    if "label" not in header:
        raise InputError(f"missing column 'label'; columns are {header}", path, "line 1")
    ckpt_names = run.config.get("checkpoint", {}).get("class_names")
    names = tuple(ckpt_names) if ckpt_names else tuple(h for h in header if h not in META_COLUMNS)
    missing = [n for n in names if n not in header]
    if not names or missing:
        raise InputError(f"no probability column for classes {missing or '(none)'}", path, "line 1")
    col = {h: i for i, h in enumerate(header)}
    has_boxes = all(c in col for c in ("x1", "y1", "x2", "y2"))
    index = {n: k for k, n in enumerate(names)}
    images, boxes, labels, probs, box_index = [], [], [], [], []
    for line, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise InputError(f"expected {len(header)} fields, got {len(r)}", path, f"line {line}")
        label = r[col["label"]].strip()
        if not label:
            continue
        if label not in index:
            raise InputError(f"label {label!r} is not one of {list(names)}", path, f"line {line}")
        try:
            probs.append([float(r[col[n]]) for n in names])
            if has_boxes:
                boxes.append([float(r[col[c]]) for c in ("x1", "y1", "x2", "y2")])
            box_index.append(int(r[col["box_index"]]) if "box_index" in col else line - 2)
        except ValueError as exc:
            raise InputError(f"not a number ({exc})", path, f"line {line}") from None
        images.append(r[col["image"]] if "image" in col else r[col["path"]] if "path" in col else "")
        labels.append(index[label])
    k = len(names)
    return ClassificationData(
        class_names=names,
        images=np.array(images, dtype=object),
        xyxy=np.array(boxes, np.float32).reshape(-1, 4) if has_boxes else None,
        y_true=np.array(labels, np.int64),
        probs=np.array(probs, np.float64).reshape(-1, k),
        box_index=np.array(box_index, np.int64),
    )


def _expansion(run: ReportRun) -> dict[str, float] | None:
    exp = run.config.get("checkpoint", {}).get("expansion")
    if isinstance(exp, dict) and all(k in exp for k in ("x", "top", "bottom")):
        return {k: float(exp[k]) for k in ("x", "top", "bottom")}
    return None


def picture(data: ClassificationData, i: int, cache: FrameCache, *, expansion: dict[str, float] | None, label: str, colour: tuple[int, int, int]) -> str | None:
    """Crop of row ``i`` (box + expanded region) or a thumbnail of the whole image; None when unreadable."""
    from sitesight.boxes import expand_boxes

    frame = cache.get(data.images[i])
    if frame is None:
        return None
    if data.xyxy is None:
        return draw_thumbnail(frame, side=CROP_SIDE)
    inner = data.xyxy[i]
    outer = None
    if expansion is not None:
        outer = expand_boxes(inner[None], x=expansion["x"], top=expansion["top"], bottom=expansion["bottom"], image_wh=frame.size)[0]
    return draw_crop(frame, inner, outer_xyxy=outer, label=label, colour=colour)


def _card(data: ClassificationData, i: int, cache: FrameCache, expansion: dict[str, float] | None) -> dict[str, Any]:
    names = data.class_names
    t, p = int(data.y_true[i]), int(data.probs[i].argmax())
    return {
        "src": picture(data, i, cache, expansion=expansion, label=f"{names[p]} {data.probs[i, p]:.2f}", colour=palette(p)),
        "true": names[t],
        "pred": names[p],
        "correct": t == p,
        "probs": [(n, float(v)) for n, v in zip(names, data.probs[i], strict=True)],
        "where": f"{Path(str(data.images[i])).name}" + ("" if data.xyxy is None else f" box {int(data.box_index[i])}"),
    }


def _model_name(run: ReportRun) -> str | None:
    ckpt = run.config.get("checkpoint", {})
    if isinstance(ckpt, dict) and ckpt.get("backbone"):
        return f"{run.name} ({ckpt.get('backbone')})"
    return None


def _history(run: ReportRun) -> list[dict[str, Any]]:
    path = run.artefact("history")
    if path is None:
        return []
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg})", path, f"line {exc.lineno}") from None
        if not isinstance(rows, list):
            raise InputError("expected a list of epoch rows", path)
        return [r for r in rows if isinstance(r, dict)]
    with open(path, newline="", encoding="utf-8") as fh:
        out = []
        for r in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in r.items():
                try:
                    row[k] = float(v) if v not in ("", None) else None
                except ValueError:
                    row[k] = v
            out.append(row)
        return out


def metrics_of(data: ClassificationData) -> ClassificationResult:
    """`classification_metrics` of the run's labelled rows."""
    return classification_metrics(data.y_true, data.probs, data.class_names)


def classification_section(
    run: ReportRun,
    *,
    samples_per_class: int = 4,
    audit_per_class: int = 8,
    seed: int = 0,
    cache: FrameCache | None = None,
) -> dict[str, Any]:
    """Everything the classification template shows for one run, as plain values.

    Args:
        run: a ``classification`` run.
        samples_per_class: random sample predictions shown per true class (drawn with ``seed``).
        audit_per_class: most confident mistakes shown per true class.
        cache: shared decoded-frame cache.
    """
    cache = cache or FrameCache()
    data = load_classification(run)
    result = metrics_of(data)
    names = data.class_names
    expansion = _expansion(run)
    rng = np.random.default_rng(seed)
    y_pred = data.y_pred
    samples, audit = [], []
    for k, name in enumerate(names):
        rows = np.flatnonzero(data.y_true == k)
        pick = np.sort(rng.choice(rows, size=min(samples_per_class, rows.size), replace=False)) if rows.size else rows
        samples.append({"class": name, "support": int(rows.size), "cards": [_card(data, int(i), cache, expansion) for i in pick]})
        wrong = rows[y_pred[rows] != k]
        conf = data.probs[wrong, y_pred[wrong]] if wrong.size else np.zeros(0)
        top = wrong[np.argsort(-conf, kind="stable")[:audit_per_class]]
        audit.append({"class": name, "errors": int(wrong.size), "cards": [_card(data, int(i), cache, expansion) for i in top]})
    history = _history(run)
    d = result.to_dict()
    return {
        "kind": "classification",
        "headline": classification_headline(run.name, _model_name(run), data.y_true, y_pred, names,
                                            [str(i) for i in data.images] if any(str(i) for i in data.images) else None,
                                            warnings=init_warnings(run.config, run.json_artefact("metrics"))),
        "name": run.name,
        "path": str(run.path),
        "n": result.n_samples,
        "accuracy": result.accuracy,
        "macro_active": d["macro_active"],
        "macro_all": d["macro_all"],
        "warnings": list(result.warnings),
        "per_class": [{"class": n, **d["per_class"][n]} for n in names],
        "confusion_png": plots.confusion_heatmap(result.confusion, names, title="rows: true, columns: predicted (arg-max)"),
        "has_boxes": data.xyxy is not None,
        "expansion": expansion,
        "samples": samples,
        "audit": audit,
        "audit_per_class": audit_per_class,
        "history": history,
        "history_columns": list(dict.fromkeys(k for r in history for k in r)),
        "curves_png": plots.training_curves(history) if history else None,
        "config_json": json.dumps(run.config, indent=1, default=str) if run.config else "",
    }


def class_names_of(runs: Sequence[ClassificationData]) -> tuple[str, ...]:
    """The common class names of several runs (InputError when they differ)."""
    first = runs[0].class_names
    for r in runs[1:]:
        if r.class_names != first:
            raise InputError(f"runs have different classes: {list(first)} vs {list(r.class_names)}")
    return first

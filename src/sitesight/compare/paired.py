"""Library entry points: compare two detectors, two classifiers or two anomaly scorers on the same data.

Each builds per-unit count tables once and hands them to `sitesight.compare.result.run_comparison`:

* `compare_detections`: per frame, `sitesight.compare.detection_table` (ΔAP, ΔAP50, ΔF1 at each
  model's own operating point, precision and recall; per class and per COCO size bucket);
* `compare_classifications`: per image (all boxes of a frame move together), TP/FP/FN per class of
  the arg-max prediction → Δ macro F1 over the active classes (support > 0, as
  `sitesight.evaluation.classification` defines it), Δ accuracy, Δ F1 per class;
* `compare_anomaly`: per image, one score per model → ΔAUROC and Δ recall at a false-alarm rate
  (the highest recall whose share of normal images flagged stays ≤ the rate).

Example:
    >>> from sitesight.compare import compare_detections
    >>> cmp = compare_detections(gts, preds_v9, preds_v10, class_names=["person"], conf_a=0.4, conf_b=0.55)  # doctest: +SKIP
    >>> cmp.verdict, cmp.headline.lo, cmp.headline.hi  # doctest: +SKIP
    ('better', 0.012, 0.047)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sitesight.compare.detection_table import detection_table
from sitesight.compare.result import Comparison, run_comparison
from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = ["compare_detections", "compare_classifications", "compare_anomaly", "PRIMARY", "class_count_table",
           "classification_statistic", "anomaly_statistic", "score_bins"]

PRIMARY = {"detection": "AP", "classification": "macro_F1", "anomaly": "AUROC"}


def compare_detections(
    gts: Sequence[Detections],
    preds_a: Sequence[Detections],
    preds_b: Sequence[Detections],
    *,
    class_names: Sequence[str],
    conf_a: float,
    conf_b: float,
    cameras: Sequence[Any] | None = None,
    names: tuple[str, str] = ("A", "B"),
    primary: str = "AP",
    n_resamples: int = 2000,
    seed: int = 0,
    n_bins: int = 20,
    op_preds: tuple[Sequence[Detections], Sequence[Detections]] | None = None,
) -> Comparison:
    """Paired bootstrap of two detectors on the same frames.

    Args:
        gts: ground truth per frame; preds_a / preds_b: each model's final detections per frame, aligned.
        class_names: the ``K`` classes.
        conf_a, conf_b: each model's operating confidence (F1, precision, recall at IoU 0.5).
        cameras: camera per frame (None when unknown).
        names: the models' names.
        primary: the headline metric (``AP``, ``AP50``, ``F1``, …).
        n_resamples, seed: bootstrap settings.
        n_bins: score bins per class for the resampled AP (the stated AP is exact).
        op_preds: each model's detections at its operating point, when not ``preds`` cut at its ``conf``.
    """
    if not (len(gts) == len(preds_a) == len(preds_b)):
        raise InputError(f"compare: {len(gts)} ground-truth frames, {len(preds_a)} frames for {names[0]}, {len(preds_b)} for {names[1]}")
    op_a, op_b = op_preds if op_preds is not None else (None, None)
    ta = detection_table(gts, preds_a, class_names=class_names, conf=conf_a, n_bins=n_bins, op_preds=op_a)
    tb = detection_table(gts, preds_b, class_names=class_names, conf=conf_b, n_bins=n_bins, op_preds=op_b)
    metric_names = ta.metric_names()
    if primary not in metric_names:
        raise InputError(f"--metric {primary!r}: expected one of {metric_names}")
    n_gt = int(ta.blocks(ta.counts.sum(axis=0, keepdims=True))["n_gt"][0, :, 0].sum())
    settings = {"conf": {names[0]: conf_a, names[1]: conf_b}, "iou_for_f1": 0.5, "ap": "COCO 0.50:0.95, 101-point, 100 per frame and class",
                "score_bins": n_bins, "gt_boxes": n_gt, "class_names": list(class_names)}
    return run_comparison(kind="detection", names=metric_names, primary=primary, table_a=ta.counts, table_b=tb.counts,
                          statistic_a=ta.statistic, statistic_b=tb.statistic, exact_a=ta.exact, exact_b=tb.exact,
                          cameras=cameras, model_names=names, n_resamples=n_resamples, seed=seed, settings=settings)


def class_count_table(y_true: np.ndarray, y_pred: np.ndarray, unit: np.ndarray, n_units: int, k: int) -> np.ndarray:
    """``(U, 3K)`` per unit: TP, FP, FN per class."""
    tp = np.zeros((n_units, k))
    fp = np.zeros((n_units, k))
    fn = np.zeros((n_units, k))
    right = y_true == y_pred
    np.add.at(tp, (unit[right], y_true[right]), 1)
    np.add.at(fp, (unit[~right], y_pred[~right]), 1)
    np.add.at(fn, (unit[~right], y_true[~right]), 1)
    return np.concatenate([tp, fp, fn], axis=1)


def classification_statistic(k: int, class_names: Sequence[str]) -> tuple[list[str], Any]:
    names = ["macro_F1", "accuracy"] + [f"F1[{c}]" for c in class_names]

    def statistic(sums: np.ndarray) -> np.ndarray:
        tp, fp, fn = sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:]
        support = tp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support + tp + fp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12), 0.0)
            active = support > 0
            macro = np.where(active.any(1), np.where(active, f1, 0).sum(1) / np.maximum(active.sum(1), 1), np.nan)
            acc = tp.sum(1) / np.maximum(support.sum(1), 1e-12)
        per_class = np.where(active, f1, np.nan)
        return np.column_stack([macro, acc, per_class])

    return names, statistic


def compare_classifications(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    class_names: Sequence[str],
    images: Sequence[str] | None = None,
    cameras: Sequence[Any] | None = None,
    names: tuple[str, str] = ("A", "B"),
    n_resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap of two classifiers (or attribute heads) on the same labelled items.

    Args:
        y_true: ``(N,)`` int true class per item; pred_a / pred_b: ``(N,)`` int predicted class
            (arg-max) of each model, aligned with ``y_true``.
        class_names: ``K`` names.
        images: ``(N,)`` the frame of each item: items of one frame are resampled together
            (None = every item is its own unit).
        cameras: ``(N,)`` camera per item (constant within a frame), None when unknown.
    """
    y = np.asarray(y_true, np.int64)
    pa, pb = np.asarray(pred_a, np.int64), np.asarray(pred_b, np.int64)
    if not (y.shape == pa.shape == pb.shape) or y.ndim != 1:
        raise InputError(f"compare: labels {y.shape}, predictions {pa.shape} and {pb.shape} must be aligned (N,) arrays")
    k = len(class_names)
    if y.size == 0:
        raise InputError("compare: no labelled items in common")
    if images is None:
        unit, n_units, unit_cam = np.arange(y.size), y.size, cameras
    else:
        keys, unit = np.unique(np.asarray([str(i) for i in images], dtype=object), return_inverse=True)
        unit = unit.ravel()
        n_units = keys.size
        unit_cam = None
        if cameras is not None:
            first = np.zeros(n_units, np.int64)
            first[unit[::-1]] = np.arange(y.size)[::-1]
            unit_cam = [cameras[i] for i in first]
    names_q, statistic = classification_statistic(k, class_names)
    ta, tb = class_count_table(y, pa, unit, n_units, k), class_count_table(y, pb, unit, n_units, k)
    settings = {"items": int(y.size), "units": "images" if images is not None else "items", "class_names": list(class_names),
                "macro": "mean F1 over classes with support > 0 (in each resample)"}
    return run_comparison(kind="classification", names=names_q, primary="macro_F1", table_a=ta, table_b=tb,
                          statistic_a=statistic, statistic_b=statistic, cameras=unit_cam, model_names=names,
                          n_resamples=n_resamples, seed=seed, settings=settings)


def score_bins(scores: np.ndarray, max_bins: int) -> tuple[np.ndarray, int]:
    """Ascending bin per score: distinct scores when there are few (exact), else quantile bins."""
    uniq = np.unique(scores)
    edges = uniq if uniq.size <= max_bins else np.unique(np.quantile(scores, np.linspace(0, 1, max_bins + 1)))
    return np.clip(np.searchsorted(edges, scores, side="left"), 0, edges.size - 1), edges.size


def anomaly_statistic(n_bins: int, far: float) -> Any:
    def statistic(sums: np.ndarray) -> np.ndarray:
        neg, pos = sums[:, :n_bins], sums[:, n_bins:]  # ascending score bins
        n_neg, n_pos = neg.sum(1), pos.sum(1)
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = np.where((n_neg > 0) & (n_pos > 0), (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg), np.nan)
            # flagged at "score >= bin": counts from the top
            fpr = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1] / n_neg[:, None]
            tpr = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1] / n_pos[:, None]
        recall = np.where(fpr <= far + 1e-12, tpr, 0.0).max(axis=1)
        recall = np.where((n_neg > 0) & (n_pos > 0), recall, np.nan)
        return np.column_stack([auroc, recall])

    return statistic


def compare_anomaly(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    false_alarm_rate: float = 0.05,
    cameras: Sequence[Any] | None = None,
    names: tuple[str, str] = ("A", "B"),
    n_resamples: int = 2000,
    seed: int = 0,
    max_bins: int = 1024,
) -> Comparison:
    """Paired bootstrap of two anomaly scorers on the same labelled images.

    Args:
        labels: ``(N,)`` bool, True = anomalous; scores_a / scores_b: ``(N,)`` float, aligned.
        false_alarm_rate: the share of normal images that may be flagged for ``recall@FAR``.
        max_bins: distinct scores kept exactly up to this many per model, quantile bins beyond.
    """
    y = np.asarray(labels, bool)
    sa, sb = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    if not (y.shape == sa.shape == sb.shape) or y.ndim != 1:
        raise InputError(f"compare: labels {y.shape} and scores {sa.shape}, {sb.shape} must be aligned (N,) arrays")
    if not (y.any() and (~y).any()):
        raise InputError("compare anomaly: need both normal and anomalous labels")
    if not 0 < false_alarm_rate < 1:
        raise InputError(f"false-alarm rate must be in (0, 1), got {false_alarm_rate}")
    tables, stats = [], []
    for s in (sa, sb):
        if not np.all(np.isfinite(s)):
            raise InputError("compare anomaly: scores contain NaN or infinite values")
        b, n_bins = score_bins(s, max_bins)
        table = np.zeros((y.size, 2 * n_bins))
        table[np.arange(y.size), b + n_bins * y] = 1
        tables.append(table)
        stats.append(anomaly_statistic(n_bins, false_alarm_rate))
    metric = f"recall@FAR{false_alarm_rate:g}"
    settings = {"false_alarm_rate": false_alarm_rate, "anomalous": int(y.sum()), "normal": int((~y).sum()),
                "recall_at_far": "highest recall with at most that share of normal images flagged (score >= threshold)"}
    return run_comparison(kind="anomaly", names=["AUROC", metric], primary="AUROC", table_a=tables[0], table_b=tables[1],
                          statistic_a=stats[0], statistic_b=stats[1], cameras=cameras, model_names=names,
                          n_resamples=n_resamples, seed=seed, settings=settings)

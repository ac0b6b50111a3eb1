"""Anomaly metrics: image-level AUROC / AUPR / F1, thresholds, pixel-level AUROC.

Convention: a higher score means more anomalous, and an item is flagged when
``score >= threshold``. A threshold comes either from normal images only
(`threshold_from_normals`: a percentile of their scores, i.e. a target false-alarm rate) or from
labelled validation data (`best_f1_threshold`).

Example:
    >>> import numpy as np
    >>> from sitesight.evaluation.anomaly import anomaly_metrics
    >>> r = anomaly_metrics(np.array([False, False, True]), np.array([0.1, 0.4, 0.9]), threshold=0.5)
    >>> r.auroc, r.f1
    (1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.ranking import average_precision, roc_auc, threshold_counts

__all__ = ["AnomalyResult", "anomaly_metrics", "best_f1_threshold", "threshold_from_normals", "pixel_auroc"]


@dataclass(frozen=True)
class AnomalyResult:
    """Image-level anomaly metrics.

    Attributes:
        auroc: area under the ROC curve (NaN when one class is absent).
        aupr: average precision with "anomalous" as the positive class (NaN without anomalies).
        threshold: the score at or above which an item is flagged.
        threshold_source: ``"given"`` or ``"best_f1"`` (chosen on these labels: optimistic).
        precision, recall, f1: of the flagged set at ``threshold``.
        tp, fp, fn, tn: counts at ``threshold``.
    """

    auroc: float
    aupr: float
    threshold: float
    threshold_source: str
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n_anomalous(self) -> int:
        return self.tp + self.fn

    @property
    def n_normal(self) -> int:
        return self.fp + self.tn

    def to_dict(self) -> dict[str, Any]:
        return {
            "auroc": _json_float(self.auroc),
            "aupr": _json_float(self.aupr),
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "n_anomalous": self.n_anomalous,
            "n_normal": self.n_normal,
        }


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _validate(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise InputError(f"labels/scores: expected two (N,) arrays of equal length, got {y.shape} and {s.shape}")
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise InputError("labels: expected booleans (True = anomalous) or 0/1")
        y = y.astype(bool)
    if not np.all(np.isfinite(s)):
        raise InputError("scores: contains NaN or infinite values")
    return y, s


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The score threshold with the highest F1 on labelled data.

    Args:
        labels: ``(N,)`` bool, True = anomalous.
        scores: ``(N,)`` float anomaly scores.

    Returns:
        ``(threshold, f1)``; among equal F1 the highest threshold wins (fewest alarms). With no
        anomalies, ``(inf, 0.0)``: flag nothing.
    """
    y, s = _validate(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0 or s.size == 0:
        return float("inf"), 0.0
    thresholds, tp, fp = threshold_counts(y, s)
    f1 = 2 * tp / (tp + fp + n_pos)
    best = int(np.argmax(f1))  # thresholds decrease, so argmax's first hit is the highest threshold
    return float(thresholds[best]), float(f1[best])


def threshold_from_normals(
    normal_scores: np.ndarray,
    percentile: float | None = 99.0,
    *,
    false_alarm_rate: float | None = None,
) -> float:
    """A threshold from normal (defect-free) images only.

    Args:
        normal_scores: ``(N,)`` anomaly scores of normal items.
        percentile: the percentile of the normal scores (linear interpolation, as ``np.percentile``).
        false_alarm_rate: alternative to ``percentile``: the fraction of normal items allowed above the
            threshold; equals ``percentile = 100 * (1 - false_alarm_rate)``.

    Returns:
        The threshold (flag when ``score >= threshold``).
    """
    s = np.asarray(normal_scores, np.float64).ravel()
    if s.size == 0:
        raise InputError("normal_scores: need at least one normal score to set a threshold")
    if not np.all(np.isfinite(s)):
        raise InputError("normal_scores: contains NaN or infinite values")
    if false_alarm_rate is not None:
        if not 0.0 <= false_alarm_rate <= 1.0:
            raise InputError(f"false_alarm_rate: expected a value in [0, 1], got {false_alarm_rate}")
        percentile = 100.0 * (1.0 - false_alarm_rate)
    if percentile is None or not 0.0 <= percentile <= 100.0:
        raise InputError(f"percentile: expected a value in [0, 100], got {percentile}")
    return float(np.percentile(s, percentile))


def anomaly_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> AnomalyResult:
    """Image-level AUROC, AUPR and precision/recall/F1 at a threshold.

    Args:
        labels: ``(N,)`` bool, True = anomalous.
        scores: ``(N,)`` float anomaly scores, higher = more anomalous.
        threshold: flag items with ``score >= threshold``; ``None`` picks `best_f1_threshold` on these
            labels (reported as ``threshold_source="best_f1"``).

    Returns:
        `AnomalyResult`; AUROC/AUPR match ``sklearn.metrics.roc_auc_score`` / ``average_precision_score``.
    """
    y, s = _validate(labels, scores)
    source = "given"
    if threshold is None:
        threshold, _ = best_f1_threshold(y, s)
        source = "best_f1"
    flagged = s >= threshold
    tp = int(np.sum(flagged & y))
    fp = int(np.sum(flagged & ~y))
    fn = int(np.sum(~flagged & y))
    tn = int(np.sum(~flagged & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return AnomalyResult(
        auroc=roc_auc(y, s),
        aupr=average_precision(y, s),
        threshold=float(threshold),
        threshold_source=source,
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
    )


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """Pixel-level AUROC over all pixels of all images.

    Args:
        masks: ``(N, H, W)`` bool ground-truth defect masks (True = defective pixel).
        maps: ``(N, H, W)`` float anomaly maps at the same resolution.

    Returns:
        AUROC of ``maps`` against ``masks`` pooled over every pixel (NaN when one class is absent).
    """
    m = np.asarray(masks)
    a = np.asarray(maps, np.float64)
    if m.shape != a.shape:
        raise InputError(f"masks/maps: shapes differ: {m.shape} vs {a.shape}")
    return roc_auc(m.astype(bool).ravel(), a.ravel())

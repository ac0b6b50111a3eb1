"""Threshold-free ranking metrics shared by classification and anomaly evaluation.

`average_precision` follows scikit-learn's ``average_precision_score`` (step-wise sum over
distinct score thresholds, ties grouped, no interpolation); `roc_auc` equals
``roc_auc_score`` (Mann-Whitney U with ties counted as one half). Both are vectorised numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "roc_auc", "threshold_counts"]


def threshold_counts(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative counts at every distinct score, highest first.

    Args:
        positive: ``(N,)`` bool, the true label of each item.
        score: ``(N,)`` float, higher means more positive.

    Returns:
        ``(thresholds, tp, fp)``: ``(T,)`` distinct scores in decreasing order and ``(T,)`` int64
        counts of positives / negatives with ``score >= threshold``.
    """
    positive = np.asarray(positive, bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    p = positive[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1] if s.size else np.zeros(0, np.int64)
    tp = np.cumsum(p, dtype=np.int64)[last]
    fp = (last + 1) - tp
    return s[last], tp, fp


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the step-wise precision/recall curve, as ``sklearn.metrics.average_precision_score``.

    Returns NaN when there is no positive item (the metric is undefined; callers report it).
    """
    _, tp, fp = threshold_counts(positive, score)
    n_pos = int(np.asarray(positive, bool).sum())
    if n_pos == 0:
        return float("nan")
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score`` for binary labels).

    Computed from the tie-averaged rank sum of the positives. NaN when one class is absent.
    """
    positive = np.asarray(positive, bool).ravel()
    score = np.asarray(score, np.float64).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Trapezoidal area over the distinct thresholds equals the tie-averaged rank statistic.
    _, tp, fp = threshold_counts(positive, score)
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / n_neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))

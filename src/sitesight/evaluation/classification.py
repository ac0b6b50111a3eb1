"""Classification and attribute metrics: per-class AP, P/R/F1, accuracy, confusion, honest macros.

A class with no true samples in the evaluation set has undefined recall and AP. It is reported
with ``support == 0``, AP ``None`` and a warning, and it is left out of ``macro_active``. The
separately labelled ``macro_all`` averages over every class, counting undefined values as 0
(scikit-learn's ``zero_division=0`` convention), which is the number that drags a macro down when
a class is missing from the test set.

Example:
    >>> import numpy as np
    >>> from sitesight.evaluation.classification import classification_metrics
    >>> r = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ("a", "b"))
    >>> round(r.accuracy, 3), r.per_class["b"].support
    (0.667, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.ranking import average_precision

__all__ = ["ClassMetrics", "ClassificationResult", "classification_metrics", "confusion_counts"]


@dataclass(frozen=True)
class ClassMetrics:
    """One class's one-vs-rest metrics. ``ap`` is ``None`` when the class has no true sample."""

    ap: float | None
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ap": self.ap,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
            "predicted": self.predicted,
        }


@dataclass(frozen=True)
class ClassificationResult:
    """Metrics of a multi-class classifier.

    Attributes:
        class_names: ``(K,)`` names in index order.
        per_class: name → `ClassMetrics`.
        accuracy: fraction of samples whose arg-max class is the true class.
        confusion: ``(K, K)`` int64, row = true class, column = predicted (arg-max) class.
        macro_active: mean ``ap/precision/recall/f1`` over classes with support > 0.
        macro_all: mean over all K classes, undefined values counted as 0.
        warnings: human-readable notes (zero-support classes, ...).
    """

    class_names: tuple[str, ...]
    per_class: Mapping[str, ClassMetrics]
    accuracy: float
    confusion: np.ndarray
    macro_active: Mapping[str, float | None]
    macro_all: Mapping[str, float]
    n_samples: int
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "n_samples": self.n_samples,
            "accuracy": self.accuracy,
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "confusion": {
                "rows": "true class",
                "columns": "predicted class (arg-max of the probabilities)",
                "labels": list(self.class_names),
                "matrix": self.confusion.tolist(),
            },
            "macro_active": dict(self.macro_active),
            "macro_all": dict(self.macro_all),
            "macro_note": "macro_active averages over classes with support > 0; "
            "macro_all averages over every class, counting undefined values (no support) as 0",
            "warnings": list(self.warnings),
        }


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, row = true class, column = predicted class."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.zeros(np.broadcast(num, den).shape, np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _validate(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, np.float64)
    k = len(class_names)
    if y.ndim != 1:
        raise InputError(f"y_true: expected shape (N,), got {y.shape}")
    if p.ndim != 2 or p.shape != (y.shape[0], k):
        raise InputError(f"probs: expected shape ({y.shape[0]}, {k}), got {p.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"y_true: expected integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise InputError(f"y_true: class index outside 0..{k - 1}: {sorted(set(y[(y < 0) | (y >= k)].tolist()))[:5]}")
    if not np.all(np.isfinite(p)):
        raise InputError("probs: contains NaN or infinite values")
    return y, p


def classification_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
) -> ClassificationResult:
    """Per-class and averaged metrics of a K-class classifier.

    Args:
        y_true: ``(N,)`` int64 true class indices into ``class_names``.
        probs: ``(N, K)`` float scores (probabilities or logits; only their order matters for AP,
            the arg-max gives the predicted class).
        class_names: ``K`` class names.

    Returns:
        `ClassificationResult`. Per class: one-vs-rest AP (as ``sklearn.metrics.average_precision_score``
        on ``probs[:, k]``), precision/recall/F1 of the arg-max prediction (as
        ``precision_recall_fscore_support(zero_division=0)``), support.
    """
    names = tuple(str(c) for c in class_names)
    y, p = _validate(y_true, probs, names)
    k = len(names)
    y_pred = p.argmax(axis=1) if y.size else np.zeros(0, np.int64)
    confusion = confusion_counts(y, y_pred, k)
    tp = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * tp, support + predicted)
    ap = np.array([average_precision(y == c, p[:, c]) for c in range(k)], np.float64)

    warnings: list[str] = []
    per_class: dict[str, ClassMetrics] = {}
    for c, name in enumerate(names):
        if support[c] == 0:
            warnings.append(
                f"class {name!r} has no true samples: AP and recall are undefined; it is left out of macro_active"
            )
        per_class[name] = ClassMetrics(
            ap=None if support[c] == 0 else float(ap[c]),
            precision=float(precision[c]),
            recall=float(recall[c]),
            f1=float(f1[c]),
            support=int(support[c]),
            predicted=int(predicted[c]),
        )
    active = support > 0
    macro_active: dict[str, float | None] = {"classes": int(active.sum())}  # type: ignore[dict-item]
    for key, values in (("ap", ap), ("precision", precision), ("recall", recall), ("f1", f1)):
        macro_active[key] = float(values[active].mean()) if active.any() else None
    macro_all: dict[str, float] = {"classes": k}
    for key, values in (("ap", np.nan_to_num(ap, nan=0.0)), ("precision", precision), ("recall", recall), ("f1", f1)):
        macro_all[key] = float(values.mean()) if k else 0.0
    accuracy = float(tp.sum() / y.size) if y.size else 0.0
    return ClassificationResult(
        class_names=names,
        per_class=per_class,
        accuracy=accuracy,
        confusion=confusion,
        macro_active=macro_active,
        macro_all=macro_all,
        n_samples=int(y.size),
        warnings=tuple(warnings),
    )

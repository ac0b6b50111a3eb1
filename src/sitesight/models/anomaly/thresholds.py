"""Thresholds side by side: from normal images only (target false-alarm rates) and best-F1 from labels.

The normal-only thresholds are what a line without defect samples can set (the order statistic of
`sitesight.evaluation.anomaly.normal_threshold`, which keeps its false-alarm rate on unseen normals at
95 % confidence); the best-F1 threshold is chosen on the labelled test set itself (tuned on the test
labels: optimistic, marked so) and shows what the normal-only ones leave on the table. Each row says what that threshold would have caught on the test set. numpy only; the
thresholds and metrics come from `sitesight.evaluation.anomaly`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sitesight.evaluation.anomaly import anomaly_metrics, best_f1_threshold, normal_threshold

__all__ = ["ThresholdRow", "threshold_table"]


@dataclass(frozen=True)
class ThresholdRow:
    """One threshold and what it does on the test set.

    Attributes:
        name: e.g. ``"normals FAR 1%"`` or ``"best F1 (tuned on test labels)"``.
        source: ``"normals"`` (calibration normals only) or ``"labels"`` (chosen on the test labels).
        threshold: flag images with ``score >= threshold``.
        target_false_alarm_rate: the aim for ``"normals"`` rows, else None.
        false_alarm_rate: share of the test's normal images flagged.
        recall, precision, f1: on the test set at this threshold.
        caught: defect type → ``[caught, total]`` (``"anomalous"`` when types are unknown).
    """

    name: str
    source: str
    threshold: float
    target_false_alarm_rate: float | None
    false_alarm_rate: float
    recall: float
    precision: float
    f1: float
    caught: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["threshold"] = self.threshold if np.isfinite(self.threshold) else None
        return d


def threshold_table(
    calibration_scores: np.ndarray | None,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    defects: Sequence[str | None] | None = None,
    false_alarm_rates: Sequence[float] = (0.01, 0.05),
    confidence: float = 0.95,
) -> list[ThresholdRow]:
    """Rows for each target false-alarm rate (from ``calibration_scores``) and one best-F1 row.

    Args:
        calibration_scores: ``(M,)`` scores of held-out normal images not used to fit the model
            (``None`` or empty: no normal-only rows).
        scores: ``(N,)`` test scores.
        labels: ``(N,)`` bool, True = anomalous.
        defects: defect type per test image (``None`` for normal ones), for the per-type counts.
        false_alarm_rates: targets, each in (0, 1).
        confidence: of the normal-only thresholds' promise (`normal_threshold`).

    Returns:
        `ThresholdRow` list: normal-only rows in the order given, then ``"best F1 (tuned on test labels)"``.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    kinds = [("anomalous" if lab else None) for lab in y] if defects is None else list(defects)
    thresholds: list[tuple[str, str, float, float | None]] = []
    if calibration_scores is not None and len(calibration_scores):
        for rate in false_alarm_rates:
            t = normal_threshold(np.asarray(calibration_scores), false_alarm_rate=rate, confidence=confidence).value
            thresholds.append((f"normals FAR {100 * rate:g}%", "normals", t, float(rate)))
    t_best, _ = best_f1_threshold(y, s)
    thresholds.append(("best F1 (tuned on test labels)", "labels", t_best, None))
    rows = []
    for name, source, t, target in thresholds:
        m = anomaly_metrics(y, s, threshold=t)
        flagged = s >= t
        caught: dict[str, list[int]] = {}
        for kind, hit in zip(kinds, flagged, strict=True):
            if kind is not None:
                c = caught.setdefault(kind, [0, 0])
                c[0] += int(hit)
                c[1] += 1
        far = m.fp / (m.fp + m.tn) if m.fp + m.tn else 0.0
        rows.append(ThresholdRow(name, source, float(t), target, float(far), m.recall, m.precision, m.f1, caught))
    return rows

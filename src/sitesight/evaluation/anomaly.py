"""Anomaly metrics: image-level AUROC / AUPR / F1, thresholds, pixel-level AUROC.

Convention: a higher score means more anomalous, and an item is flagged when
``score >= threshold``. A threshold comes either from normal images only or from labelled
validation data (`best_f1_threshold`, chosen on the labels it is then scored on: optimistic).

From normal images only, `normal_threshold` keeps a promise: with ``n`` held-out normal scores and
the threshold at their ``k``-th smallest value, the share ``p`` of *unseen* normals at or above it
(for exchangeable, continuous scores) is ``Beta(n + 1 - k, k)``-distributed, whatever the score
distribution (the order-statistic / conformal argument). So ``k`` is the smallest rank with
``P(p > rate) <= 1 - confidence``, i.e. ``P(Binomial(n, rate) <= n - k) <= 1 - confidence``; it exists
only when ``(1 - rate)^n <= 1 - confidence``: `min_normals` (59 normals for 5 % at 95 %, 299 for 1 %).
On ``m`` unseen normals the number flagged is ``BetaBinomial(m, n + 1 - k, k)``
(`NormalThreshold.alarm_bound` gives its upper quantile, the bound an observed count is checked
against). `threshold_from_normals` (a plain percentile) keeps no such promise and is kept for
comparison.

Example:
    >>> import numpy as np
    >>> from sitesight.evaluation.anomaly import anomaly_metrics
    >>> r = anomaly_metrics(np.array([False, False, True]), np.array([0.1, 0.4, 0.9]), threshold=0.5)
    >>> r.auroc, r.f1
    (1.0, 1.0)
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.ranking import average_precision, roc_auc, threshold_counts

log = logging.getLogger(__name__)

__all__ = ["AnomalyResult", "NormalThreshold", "anomaly_metrics", "best_f1_threshold", "threshold_from_normals",
           "normal_threshold", "min_normals", "pixel_auroc", "read_mask"]


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


def _log_binom_pmf(n: int, p: float) -> np.ndarray:
    """``(n + 1,)`` log P(Binomial(n, p) = x), x = 0..n."""
    x = np.arange(n + 1, dtype=np.float64)
    log_choose = math.lgamma(n + 1) - np.array([math.lgamma(v + 1) + math.lgamma(n - v + 1) for v in x])
    with np.errstate(divide="ignore"):
        return log_choose + x * np.log(p) + (n - x) * np.log1p(-p)


def min_normals(false_alarm_rate: float, confidence: float = 0.95) -> int:
    """Fewest held-out normals for which a threshold can promise ``false_alarm_rate`` at ``confidence``:
    the smallest ``n`` with ``(1 - rate)^n <= 1 - confidence`` (then the threshold is their maximum)."""
    _check_rate(false_alarm_rate, confidence)
    return int(math.ceil(math.log(1 - confidence) / math.log1p(-false_alarm_rate) - 1e-12))


def _check_rate(false_alarm_rate: float, confidence: float) -> None:
    if not 0 < false_alarm_rate < 1:
        raise InputError(f"false_alarm_rate: expected a value in (0, 1), got {false_alarm_rate}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a value in (0, 1), got {confidence}")


@dataclass(frozen=True)
class NormalThreshold:
    """A threshold from held-out normals with a finite-sample promise (module notes).

    Attributes:
        value: flag ``score >= value`` (``inf`` when there are no normals).
        false_alarm_rate: the promised rate on unseen normals.
        confidence: probability (over the draw of the held-out normals) that the promise holds.
        achieved_confidence: what the rank actually used achieves (``< confidence`` when ``enough`` is False).
        n: held-out normals used.
        k: rank (1-based, ascending) of the normal score taken as the threshold.
        min_normals: normals the promise needs (`min_normals`).
        enough: ``n >= min_normals``.
    """

    value: float
    false_alarm_rate: float
    confidence: float
    achieved_confidence: float
    n: int
    k: int
    min_normals: int
    enough: bool

    def alarm_bound(self, m: int, level: float = 0.95) -> int:
        """Upper ``level`` quantile of how many of ``m`` unseen normals this threshold flags:
        ``BetaBinomial(m, n + 1 - k, k)`` (exact for exchangeable continuous scores)."""
        if m <= 0 or self.n == 0:
            return m
        a, b = self.n + 1 - self.k, self.k
        x = np.arange(m + 1, dtype=np.float64)
        lgamma = np.vectorize(math.lgamma)
        log_pmf = (math.lgamma(m + 1) - lgamma(x + 1) - lgamma(m - x + 1) + lgamma(x + a) + lgamma(m - x + b)
                   - math.lgamma(m + a + b) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
        cdf = np.cumsum(np.exp(log_pmf))
        return int(np.searchsorted(cdf, level - 1e-12))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = self.value if math.isfinite(self.value) else None
        return d


def normal_threshold(normal_scores: np.ndarray, *, false_alarm_rate: float, confidence: float = 0.95) -> NormalThreshold:
    """The order-statistic threshold that keeps ``false_alarm_rate`` on unseen normals at ``confidence``.

    With fewer than `min_normals` scores no rank keeps the promise: the threshold is the largest
    score and ``enough`` is False (``achieved_confidence`` says what it keeps); callers warn or refuse.

    Args:
        normal_scores: ``(n,)`` scores of held-out normal items (not used to fit the model).
        false_alarm_rate: the promised share of unseen normals flagged, in (0, 1).
        confidence: probability that the promise holds, in (0, 1).

    Example:
        >>> import numpy as np
        >>> t = normal_threshold(np.arange(100.0), false_alarm_rate=0.05)
        >>> t.k, t.value, t.enough
        (99, 98.0, True)
    """
    _check_rate(false_alarm_rate, confidence)
    s = np.sort(np.asarray(normal_scores, np.float64).ravel())
    if not np.all(np.isfinite(s)):
        raise InputError("normal_scores: contains NaN or infinite values")
    need = min_normals(false_alarm_rate, confidence)
    n = int(s.size)
    if n == 0:
        return NormalThreshold(float("inf"), false_alarm_rate, confidence, 0.0, 0, 0, need, False)
    # P(p > rate) for rank k is P(Binomial(n, rate) <= n - k): the binomial CDF read backwards
    cdf = np.cumsum(np.exp(_log_binom_pmf(n, false_alarm_rate)))  # cdf[j] = P(X <= j)
    ok = np.flatnonzero(cdf <= 1 - confidence)  # j = n - k values that keep the promise
    k = n - int(ok[-1]) if ok.size else n
    achieved = 1.0 - float(cdf[n - k])
    return NormalThreshold(float(s[k - 1]), false_alarm_rate, confidence, achieved, n, k, need, bool(ok.size))


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


def read_mask(path: Path | str, shape: tuple[int, int] | None = None, *, colour: tuple[int, ...] | None = None) -> np.ndarray:
    """A defect mask file as ``(H, W)`` bool: any non-zero pixel in any channel is a defect.

    Grey, palette, RGB and RGBA files are read alike (colour masks such as green ``(0, 255, 0)`` or
    cyan are defects, not "empty"); a non-constant alpha channel masks out transparent pixels. With
    ``colour``, only pixels of exactly that colour count (e.g. one defect type of a multi-colour mask).
    A mask that reads empty while the file is not blank is logged as a warning (a colour that does
    not occur, a mask stored inverted…).

    Args:
        path: the mask image.
        shape: expected ``(H, W)`` (the image's); a different size is an `InputError`.
        colour: RGB(A) values that mark a defect, or None for any non-zero pixel.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            a = np.asarray(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"unreadable mask ({exc})", path) from None
    if a.ndim == 2:
        a = a[..., None]
    alpha = None
    if a.shape[-1] in (2, 4):  # LA / RGBA: colour channels, alpha apart
        alpha, a = a[..., -1], a[..., :-1]
        if alpha.min() == alpha.max():
            alpha = None
    if colour is None:
        mask = (a != 0).any(axis=-1)
    else:
        want = np.asarray(colour, a.dtype).ravel()[: a.shape[-1]]
        if want.size != a.shape[-1]:
            want = np.resize(want, a.shape[-1])
        mask = (a == want).all(axis=-1)
    if alpha is not None:
        mask &= alpha > 0
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {shape[1]}x{shape[0]}", path)
    if not mask.any() and a.size and (a.min() != a.max() or a.max() != 0):
        log.warning("%s: the mask reads as empty (%s) although the file is not blank (values %s..%s)", path,
                    "no pixel of colour " + str(tuple(colour)) if colour is not None else "all zero", a.min(), a.max())
    return mask


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

"""Once the mined images are labelled: who wins each pair, a global ranking, and the "drop".

For each model pair ``(i, j)`` and its mined set ``S_ij`` (the labelled frames selected for that
pair), every image is scored per model by its detection errors ``FP + FN`` at one confidence and
IoU (`image_errors`, the pycocotools matching rules of `sitesight.evaluation.matching`); the model
with fewer errors wins the image, equal errors tie. Then:

* **winner** of the pair: the higher F1 on ``S_ij`` (pooled over its images); ties go to more wins.
* **aggressiveness** ``A[i, j]``: the share of ``S_ij`` that ``i`` wins, i.e. how often ``i`` was
  right where ``j`` failed (``A[i, j] + A[j, i] + ties = 1``).
* **resistance** ``R[i, j]``: ``F1_i(S_ij) / F1_i(control)``, how much of its quality ``i`` keeps on
  the images its disagreement with ``j`` exposed (1 = unaffected; lower = it breaks there).
* **global ranking**: a Bradley–Terry model fitted by maximum likelihood to the image wins of all
  pairs (a tie counts half a win each way; ``prior`` pseudo-wins each way regularise a pair that
  one model swept), by Hunter's (2004) MM iterations. MAD's own paper aggregates a normalised
  aggressiveness matrix instead; Bradley–Terry is used here because it is a proper likelihood
  over the same pairwise outcomes and handles any number of models and unequal set sizes.
* **drop**: each model's F1 on the union of its mined sets next to its F1 on a random control set
  of the same pool (`sitesight.mining.select.random_control`); the drop is
  ``F1(random) - F1(mined)``, positive when the mined frames are harder for the model.
* **intervals**: a percentile bootstrap over images (``n_boot`` resamples). The mined and the random
  set are independent samples, so each is resampled on its own (`bootstrap_f1_diff`); a pair's
  ``F1_a - F1_b`` on its mined set is paired (both models on the same resampled images: the paired
  bootstrap of `sitesight.compare.bootstrap.paired_bootstrap`). F1 is pooled over the resampled
  images, as the point estimate is.
* **warnings**: fewer than ``min_frames`` labelled frames in a mined or the random set ("too few
  labelled frames"), and a drop whose interval contains 0 (the sets do not support a conclusion).
  A drop is ``conclusive`` only with enough frames on both sides and an interval that excludes 0.

Example:
    >>> import numpy as np
    >>> from sitesight.mining.verdict import bradley_terry
    >>> s = bradley_terry(np.array([[0, 3], [1, 0]]), prior=0.0)
    >>> round(float(s[0] / s[1]), 6)
    3.0
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.matching import match_boxes, table_from_detections

__all__ = ["image_errors", "bradley_terry", "bootstrap_f1_diff", "PairVerdict", "Verdict", "verdict"]

log = logging.getLogger(__name__)


def image_errors(gts: Sequence[Detections], preds: Sequence[Detections], *, iou: float = 0.5, conf: float = 0.5) -> dict[str, np.ndarray]:
    """Per-image ``tp``, ``fp``, ``fn`` (``(n,)`` int64) of predictions with ``score >= conf``.

    Matching per image and class, highest score first, at ``iou`` (pycocotools' rules, no
    ``max_det`` cap); predictions matched to crowd ground truth count as neither TP nor FP.
    """
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth images but {len(preds)} prediction images")
    n = len(gts)
    gt = table_from_detections(gts, gt=True)
    pred = table_from_detections([p[p.score >= conf] for p in preds], gt=False)
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    image = pred.frame[m.pred_index]
    tp = np.bincount(image, m.pred_tp[0, 0], n).astype(np.int64)
    fp = np.bincount(image, m.pred_fp[0, 0], n).astype(np.int64)
    regular = np.bincount(gt.frame[~gt.crowd], minlength=n)
    return {"tp": tp, "fp": fp, "fn": regular - tp}


def _f1(err: Mapping[str, np.ndarray], rows: np.ndarray) -> float:
    tp, fp, fn = (int(err[k][rows].sum()) for k in ("tp", "fp", "fn"))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def _f1_of_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)


def bootstrap_f1_diff(
    err_x: Mapping[str, np.ndarray],
    rows_x: np.ndarray,
    err_y: Mapping[str, np.ndarray],
    rows_y: np.ndarray,
    *,
    paired: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``F1_x(rows_x) - F1_y(rows_y)`` (F1 pooled over images).

    Args:
        err_x, err_y: per-image ``tp``, ``fp``, ``fn`` arrays (`image_errors`).
        rows_x, rows_y: image indices of each set.
        paired: the two sets are the same images (``rows_x == rows_y``): resample them together.
        n_boot: resamples.
        level: coverage of the interval.
        seed: resampling seed.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when a set is empty.
    """
    rows_x, rows_y = np.asarray(rows_x, np.int64), np.asarray(rows_y, np.int64)
    if rows_x.size == 0 or rows_y.size == 0:
        return float("nan"), float("nan")
    if paired and not np.array_equal(rows_x, rows_y):
        raise ValueError("bootstrap_f1_diff: a paired bootstrap needs the same images on both sides")
    rng = np.random.default_rng(seed)

    def f1s(err: Mapping[str, np.ndarray], rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        tp, fp, fn = (weights @ err[k][rows].astype(np.float64) for k in ("tp", "fp", "fn"))
        return _f1_of_counts(tp, fp, fn)

    wx = rng.multinomial(rows_x.size, np.full(rows_x.size, 1 / rows_x.size), size=n_boot).astype(np.float64)
    wy = wx if paired else rng.multinomial(rows_y.size, np.full(rows_y.size, 1 / rows_y.size), size=n_boot).astype(np.float64)
    diff = f1s(err_x, rows_x, wx) - f1s(err_y, rows_y, wy)
    alpha = (1 - level) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha])
    return float(low), float(high)


def _paired_f1_ci(err_a: Mapping[str, np.ndarray], err_b: Mapping[str, np.ndarray], rows: np.ndarray, *, n_boot: int,
                  seed: int, level: float = 0.95) -> tuple[float, float]:
    """Interval of ``F1_a - F1_b`` on the same images ``rows`` (`sitesight.compare.bootstrap.paired_bootstrap`)."""
    from sitesight.compare.bootstrap import paired_bootstrap

    if rows.size == 0:
        return float("nan"), float("nan")

    def table(err: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([err[k][rows] for k in ("tp", "fp", "fn")], axis=1).astype(np.float32)

    def f1(sums: np.ndarray) -> np.ndarray:
        return _f1_of_counts(sums[:, 0], sums[:, 1], sums[:, 2])[:, None]

    _, _, deltas = paired_bootstrap(table(err_a), table(err_b), f1, f1, n_resamples=n_boot, seed=seed)
    low, high = np.quantile(-deltas[:, 0], [(1 - level) / 2, 1 - (1 - level) / 2])  # deltas are B - A
    return float(low), float(high)


def bradley_terry(wins: np.ndarray, *, prior: float = 0.5, max_iter: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """Bradley–Terry strengths from a ``(M, M)`` win matrix (``wins[i, j]`` = times ``i`` beat ``j``).

    ``P(i beats j) = p_i / (p_i + p_j)``; maximum likelihood by MM iterations (Hunter 2004).
    ``prior`` pseudo-wins are added each way to every pair that met. Returns ``(M,)`` float64
    strengths with geometric mean 1 (0 for a model that never won when ``prior`` is 0).
    """
    w = np.asarray(wins, np.float64).copy()
    np.fill_diagonal(w, 0)
    games = w + w.T
    w += prior * (games > 0)
    games = w + w.T
    total = w.sum(axis=1)
    p = np.ones(w.shape[0])
    for _ in range(max_iter):
        denom = (games / np.maximum(p[:, None] + p[None, :], 1e-300)).sum(axis=1)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), p)
        positive = new > 0
        new[positive] /= np.exp(np.log(new[positive]).mean())
        if np.max(np.abs(new - p)) < tol:
            return new
        p = new
    return p


@dataclass(frozen=True)
class PairVerdict:
    """The outcome of one pair on its labelled mined set."""

    a: str
    b: str
    n_images: int
    f1_a: float
    f1_b: float
    wins_a: int
    wins_b: int
    ties: int
    f1_a_minus_b_ci: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def winner(self) -> str | None:
        if self.n_images == 0:
            return None
        if self.f1_a != self.f1_b:
            return self.a if self.f1_a > self.f1_b else self.b
        return None if self.wins_a == self.wins_b else (self.a if self.wins_a > self.wins_b else self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"pair": f"{self.a}~{self.b}", "a": self.a, "b": self.b, "n_images": self.n_images, "f1_a": self.f1_a,
                "f1_b": self.f1_b, "f1_a_minus_b_ci": list(self.f1_a_minus_b_ci), "wins_a": self.wins_a,
                "wins_b": self.wins_b, "ties": self.ties, "winner": self.winner}


@dataclass(frozen=True)
class Verdict:
    """All pairs, the matrices (rows/columns in ``models`` order), the ranking and the drops."""

    models: tuple[str, ...]
    pairs: tuple[PairVerdict, ...]
    aggressiveness: np.ndarray
    resistance: np.ndarray
    strength: np.ndarray
    mined_f1: Mapping[str, float]
    control_f1: Mapping[str, float]
    conf: float
    iou: float
    drop_ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    mined_frames: Mapping[str, int] = field(default_factory=dict)
    control_frames: int = 0
    level: float = 0.95
    warnings: tuple[str, ...] = ()
    min_frames: int = 30

    @property
    def ranking(self) -> list[str]:
        """Model names, strongest first (Bradley–Terry)."""
        return [self.models[i] for i in np.argsort(-self.strength, kind="stable")]

    @property
    def drop(self) -> dict[str, float]:
        """``F1(random) - F1(mined)`` per model: positive when the mined frames are harder."""
        return {m: self.control_f1[m] - self.mined_f1[m] for m in self.models}

    @property
    def conclusive(self) -> dict[str, bool]:
        """Per model: the drop's interval excludes 0 and both sets hold at least ``min_frames`` labelled
        frames (a percentile bootstrap over a handful of images undercovers: one odd frame decides it)."""
        enough = {m: self.mined_frames.get(m, 0) >= self.min_frames and self.control_frames >= self.min_frames for m in self.models}
        return {m: bool(enough[m] and np.isfinite(lo) and (lo > 0 or hi < 0)) for m, (lo, hi) in self.drop_ci.items()}

    def to_dict(self) -> dict[str, Any]:
        def matrix(x: np.ndarray) -> list[list[float | None]]:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in x]

        return {"models": list(self.models), "ranking": self.ranking, "ranking_method": "bradley-terry (MM, image wins)",
                "strength": dict(zip(self.models, map(float, self.strength), strict=True)),
                "pairs": [p.to_dict() for p in self.pairs], "aggressiveness": matrix(self.aggressiveness),
                "resistance": matrix(self.resistance), "mined_f1": dict(self.mined_f1), "random_f1": dict(self.control_f1),
                "f1_random_minus_mined": self.drop,
                "f1_random_minus_mined_ci": {m: list(v) for m, v in self.drop_ci.items()}, "ci_level": self.level,
                "drop_reads": "F1 on the random set minus F1 on the mined set; > 0: the mined frames are harder",
                "conclusive": self.conclusive, "mined_frames": dict(self.mined_frames), "random_frames": self.control_frames,
                "warnings": list(self.warnings), "conf": self.conf, "iou": self.iou}


def verdict(
    gts: Sequence[Detections | None],
    preds: Mapping[str, Sequence[Detections]],
    pair_sets: Mapping[tuple[str, str], Sequence[int] | np.ndarray],
    control: Sequence[int] | np.ndarray,
    *,
    conf: float = 0.5,
    iou: float = 0.5,
    prior: float = 0.5,
    min_frames: int = 30,
    n_boot: int = 2000,
    seed: int = 0,
) -> Verdict:
    """Judge the models on their labelled mined sets (module notes).

    Args:
        gts: ground truth per frame of the pool (None: not labelled; such frames are left out).
        preds: model name → one `Detections` per frame, aligned with ``gts``.
        pair_sets: ``(a, b)`` → frame indices mined for that pair.
        control: frame indices of the random control set.
        conf, iou: the operating point images are judged at.
        prior: Bradley–Terry pseudo-wins (see `bradley_terry`).
        min_frames: fewer labelled frames than this in a mined or the random set is warned about.
        n_boot, seed: bootstrap resamples of the 95 % intervals and their seed (`bootstrap_f1_diff`).
    """
    models = tuple(preds)
    labelled = np.array([g is not None for g in gts], bool)
    used = np.flatnonzero(labelled)
    if used.size == 0:
        raise InputError("none of the mined or control frames has ground truth")
    sub = {int(f): k for k, f in enumerate(used)}
    gt_list = [gts[f] for f in used]
    errors = {m: image_errors(gt_list, [preds[m][f] for f in used], iou=iou, conf=conf) for m in models}

    def rows(frames: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
        frames = [int(f) for f in frames]
        missing = sum(1 for f in frames if f not in sub)
        if missing:
            log.warning("%s: %d of %d frames have no labels and are left out", what, missing, len(frames))
        return np.array([sub[f] for f in frames if f in sub], np.int64)

    control_rows = rows(control, "control set")
    control_f1 = {m: _f1(errors[m], control_rows) for m in models}
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    agg = np.full((k, k), np.nan)
    res = np.full((k, k), np.nan)
    wins = np.zeros((k, k))
    pairs = []
    mined_rows: dict[str, list[np.ndarray]] = {m: [] for m in models}
    for (a, b), frames in pair_sets.items():
        r = rows(frames, f"mined set {a}~{b}")
        ea = errors[a]["fp"][r] + errors[a]["fn"][r]
        eb = errors[b]["fp"][r] + errors[b]["fn"][r]
        wa, wb = int((ea < eb).sum()), int((eb < ea).sum())
        ties = int(r.size - wa - wb)
        ci = _paired_f1_ci(errors[a], errors[b], r, n_boot=n_boot, seed=seed)
        pv = PairVerdict(a, b, int(r.size), _f1(errors[a], r), _f1(errors[b], r), wa, wb, ties, ci)
        pairs.append(pv)
        i, j = index[a], index[b]
        wins[i, j] += wa + ties / 2
        wins[j, i] += wb + ties / 2
        if r.size:
            agg[i, j], agg[j, i] = wa / r.size, wb / r.size
            for x, y, f1 in ((i, j, pv.f1_a), (j, i, pv.f1_b)):
                c = control_f1[models[x]]
                res[x, y] = f1 / c if c > 0 else np.nan
        mined_rows[a].append(r)
        mined_rows[b].append(r)
    union = {m: np.unique(np.concatenate(mined_rows[m])) if mined_rows[m] else np.zeros(0, np.int64) for m in models}
    mined_f1 = {m: _f1(errors[m], union[m]) if union[m].size else float("nan") for m in models}
    drop_ci = {m: bootstrap_f1_diff(errors[m], control_rows, errors[m], union[m], n_boot=n_boot, seed=seed) for m in models}
    warnings = []
    small = {m: int(union[m].size) for m in models if union[m].size < min_frames}
    if small or control_rows.size < min_frames:
        warnings.append(f"too few labelled frames to judge: random set {control_rows.size}, mined "
                        + ", ".join(f"{m} {int(union[m].size)}" for m in models)
                        + f" (< {min_frames}); differences of this size are mostly chance")
    for m, (lo, hi) in drop_ci.items():
        if np.isfinite(lo) and lo <= 0 <= hi:
            warnings.append(f"{m}: F1 random - mined = {control_f1[m] - mined_f1[m]:+.3f}, 95 % interval [{lo:+.3f}, {hi:+.3f}] "
                            "contains 0: no evidence that the mined frames are harder (or easier) for it")
    for w in warnings:
        log.warning("%s", w)
    strength = bradley_terry(wins, prior=prior)
    return Verdict(models, tuple(pairs), agg, res, strength, mined_f1, control_f1, float(conf), float(iou), drop_ci,
                   {m: int(union[m].size) for m in models}, int(control_rows.size), 0.95, tuple(warnings), int(min_frames))

"""IoU-aware re-ranking of stored predictions: the alpha sweep, the oracle, and IoU calibration (numpy only).

A detector that predicts the IoU of its own boxes (the IoU-aware RetinaNet, or any detector after
post-hoc rescoring) stores, per raw box, the class probability ``cls_score`` = p and the predicted
IoU ``iou_pred``. For each alpha the boxes are rescored ``S = p^alpha * IoU^(1 - alpha)``, merged
per frame with S (`sitesight.sliced.border.postprocess_frame`: slice-border rule and class-wise NMS by
default) and evaluated with `sitesight.evaluation.coco.evaluate_coco` (AP, AP50, AP75). The
*oracle* does the same with the true IoU of each raw box against the ground truth (the best IoU
with a ground-truth box of its class) in place of ``iou_pred``: the headroom a perfect IoU
predictor would give. No model runs.

Caveat: the boxes a detector stored already passed its own in-model NMS at the alpha it ran with;
re-ranking them reproduces re-running the model at another alpha only where that NMS removed
nothing that mattered (store with a loose in-model NMS to be safe).

Example:
    >>> import numpy as np
    >>> from sitesight.evaluation.iou_aware import rescore, spearman
    >>> [round(float(v), 3) for v in rescore(np.array([0.81]), np.array([0.25]), 0.5)]
    [0.45]
    >>> spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20]))
    0.5
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.boxes import pairwise_iou
from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = [
    "AlphaRow",
    "AlphaSweep",
    "Calibration",
    "rescore",
    "true_iou",
    "spearman",
    "iou_calibration",
    "alpha_sweep",
    "alpha_sweep_run",
    "tune_alpha_per_class",
]

CLS_SCORE = "cls_score"
IOU_PRED = "iou_pred"


def rescore(cls_score: np.ndarray, iou: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """``(N,)`` float32 ``S = p^alpha * IoU^(1 - alpha)``; ``alpha`` scalar or ``(N,)`` per box; alpha 1 gives p exactly."""
    p = np.asarray(cls_score, np.float64)
    q = np.clip(np.asarray(iou, np.float64), 0.0, 1.0)
    a = np.broadcast_to(np.asarray(alpha, np.float64), p.shape)
    out = np.where(a >= 1.0, p, np.power(p, a) * np.power(q, 1.0 - a))
    return out.astype(np.float32)


def true_iou(pred: Detections, gt: Detections) -> np.ndarray:
    """``(N,)`` float32: each predicted box's best IoU with a ground-truth box of the same class (0 if none)."""
    out = np.zeros(len(pred), np.float32)
    if len(pred) == 0 or len(gt) == 0:
        return out
    iou = pairwise_iou(pred.xyxy, gt.xyxy)
    iou[pred.class_id[:, None] != gt.class_id[None, :]] = 0.0
    return iou.max(axis=1)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy's ``rankdata``)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two ``(N,)`` arrays (ties averaged); nan when either is constant or N < 2."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes differ, {a.shape} vs {b.shape}")
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a) - (len(a) + 1) / 2.0, _ranks(b) - (len(b) + 1) / 2.0
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class Calibration:
    """Predicted vs true IoU in equal-width bins of the prediction.

    Args:
        edges: ``(B + 1,)`` bin edges over ``[0, 1]``.
        count: ``(B,)`` boxes per bin.
        mean_pred / mean_true: ``(B,)`` means per bin (nan where empty).
        ece: count-weighted mean of ``|mean_pred - mean_true|`` over bins (expected calibration error).
        spearman / pearson: correlation of predicted and true IoU over all boxes.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_pred: np.ndarray
    mean_true: np.ndarray
    ece: float
    spearman: float
    pearson: float

    def to_dict(self) -> dict[str, Any]:
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else float(v) for v in a]

        return {"edges": clean(self.edges), "count": [int(c) for c in self.count], "mean_pred": clean(self.mean_pred),
                "mean_true": clean(self.mean_true), "ece": self.ece, "spearman": self.spearman, "pearson": self.pearson}


def iou_calibration(pred_iou: np.ndarray, true: np.ndarray, *, bins: int = 10) -> Calibration:
    """Bin ``(N,)`` predicted IoUs into ``bins`` equal bins of ``[0, 1]`` and compare with the ``(N,)`` true IoUs."""
    p = np.clip(np.asarray(pred_iou, np.float64).ravel(), 0.0, 1.0)
    t = np.asarray(true, np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"iou_calibration: {p.shape} predictions for {t.shape} true values")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(which, p, minlength=bins) / count
        mean_true = np.bincount(which, t, minlength=bins) / count
    used = count > 0
    ece = float((count[used] * np.abs(mean_pred[used] - mean_true[used])).sum() / max(1, count.sum()))
    pearson = float(np.corrcoef(p, t)[0, 1]) if len(p) > 1 and p.std() > 0 and t.std() > 0 else float("nan")
    return Calibration(edges, count, mean_pred, mean_true, ece, spearman(p, t), pearson)


@dataclass(frozen=True)
class AlphaRow:
    """One alpha: COCO AP, AP50, AP75 after rescoring and merging; ``oracle`` rows use the true IoU."""

    alpha: float
    oracle: bool
    AP: float
    AP50: float
    AP75: float


@dataclass(frozen=True)
class AlphaSweep:
    """Rows for every alpha (predicted IoU), then, when asked, every alpha again with the oracle."""

    rows: tuple[AlphaRow, ...]
    frames: int
    boxes: int

    def best(self, *, oracle: bool = False, key: str = "AP") -> AlphaRow:
        """The row with the highest ``key`` among predicted (or oracle) rows; ties go to the larger alpha."""
        rows = [r for r in self.rows if r.oracle == oracle]
        if not rows:
            raise ValueError("no rows of that kind")
        return max(rows, key=lambda r: (round(getattr(r, key), 9), r.alpha))

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "boxes": self.boxes, "rows": [asdict(r) for r in self.rows],
                "best": asdict(self.best()), **({"best_oracle": asdict(self.best(oracle=True))} if any(r.oracle for r in self.rows) else {})}

    def save_csv(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["alpha", "oracle", "AP", "AP50", "AP75"])
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.rows)
        return path


def _check_attributes(raws: Sequence[Detections]) -> None:
    for i, raw in enumerate(raws):
        if len(raw) and (CLS_SCORE not in raw.attributes or IOU_PRED not in raw.attributes):
            raise InputError(f"frame {i}: stored boxes lack {CLS_SCORE!r} / {IOU_PRED!r} attributes "
                             "(run an IoU-aware detector, or rescore the run with an IoU head first)", where=f"frame {i}")


def alpha_sweep(
    raws: Sequence[Detections],
    gts: Sequence[Detections],
    alphas: Sequence[float],
    *,
    class_names: Sequence[str] | None = None,
    slices: Sequence[np.ndarray] | None = None,
    image_wh: Sequence[tuple[int, int]] | None = None,
    merge_spec: Any = None,
    oracle: bool = True,
) -> AlphaSweep:
    """Re-rank stored raw boxes for each alpha, merge per frame, and score with COCO AP / AP50 / AP75.

    Args:
        raws: raw boxes per frame with ``cls_score`` and ``iou_pred`` attributes (``source`` optional).
        gts: ground truth per frame, aligned with ``raws``.
        alphas: values in ``[0, 1]`` (1 = class score only, 0 = predicted IoU only).
        class_names: the classes (default ``c0…``).
        slices / image_wh: per-frame slice windows and frame sizes for the border rule of a sliced
            run (`sitesight.sliced.border.slices_of`); None = no slices (merge only).
        merge_spec: `sitesight.sliced.border.MergeSpec`; default class-wise NMS at IoU 0.5.
        oracle: also evaluate every alpha with the true IoU in place of the prediction.
    """
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.sliced.border import MergeSpec, postprocess_frame

    if len(raws) != len(gts):
        raise InputError(f"alpha_sweep: {len(raws)} frames of predictions for {len(gts)} ground truths")
    bad = [a for a in alphas if not 0.0 <= float(a) <= 1.0]
    if bad or not alphas:
        raise InputError(f"alphas must be a non-empty list in [0, 1], got {list(alphas)}", where="alpha")
    _check_attributes(raws)
    spec = merge_spec or MergeSpec("nms", "iou", 0.5)
    n = len(raws)
    frame_slices = list(slices) if slices is not None else [np.zeros((0, 4), np.int64)] * n
    whs = list(image_wh) if image_wh is not None else [(1 << 20, 1 << 20)] * n
    truths = [true_iou(r, g) for r, g in zip(raws, gts, strict=True)] if oracle else []
    rows = []
    for use_oracle in ([False, True] if oracle else [False]):
        for alpha in alphas:
            preds = []
            for i, raw in enumerate(raws):
                if len(raw) == 0:
                    preds.append(raw)
                    continue
                iou = truths[i] if use_oracle else raw.attributes[IOU_PRED]
                scored = raw.replace(score=rescore(raw.attributes[CLS_SCORE], iou, float(alpha)))
                merged, _ = postprocess_frame(scored, frame_slices[i], whs[i], conf=0.0, merge_spec=spec, border=len(frame_slices[i]) > 0)
                preds.append(merged)
            named = evaluate_coco(list(gts), preds, class_names=class_names).named
            rows.append(AlphaRow(round(float(alpha), 6), use_oracle, float(named["AP"]), float(named["AP50"]), float(named["AP75"])))
    return AlphaSweep(tuple(rows), n, int(sum(len(r) for r in raws)))


def tune_alpha_per_class(
    preds: Sequence[Detections],
    gts: Sequence[Detections],
    alphas: Sequence[float],
    *,
    num_classes: int,
    merge_spec: Any = None,
) -> np.ndarray:
    """The alpha with the best COCO AP for each class on validation frames: ``(num_classes,)`` float64.

    ``preds`` are raw boxes with ``cls_score`` and ``iou_pred``; a class without ground truth keeps
    alpha 1 (class score only). Ties go to the larger alpha (closer to the detector's own score).
    """
    best = np.ones(num_classes, np.float64)
    names = [f"c{k}" for k in range(num_classes)]
    scores = np.full((len(alphas), num_classes), -np.inf)
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.sliced.border import MergeSpec, postprocess_frame

    _check_attributes(preds)
    spec = merge_spec or MergeSpec("nms", "iou", 0.5)
    for a, alpha in enumerate(alphas):
        merged = []
        for raw in preds:
            if len(raw) == 0:
                merged.append(raw)
                continue
            scored = raw.replace(score=rescore(raw.attributes[CLS_SCORE], raw.attributes[IOU_PRED], float(alpha)))
            merged.append(postprocess_frame(scored, np.zeros((0, 4), np.int64), (1 << 20, 1 << 20), conf=0.0, merge_spec=spec, border=False)[0])
        result = evaluate_coco(list(gts), merged, class_names=names)
        for k, name in enumerate(names):
            ap = result.per_class.get(name, {}).get("AP")
            if ap is not None and ap >= 0:
                scores[a, k] = ap
    for k in range(num_classes):
        if np.isfinite(scores[:, k]).any():
            top = scores[:, k].max()
            best[k] = max(float(alphas[a]) for a in range(len(alphas)) if scores[a, k] >= top - 1e-12)
    return best


def alpha_sweep_run(
    run_dir: Path | str,
    dataset: Any,
    alphas: Sequence[float],
    *,
    merge_spec: Any = None,
    border: bool = True,
    oracle: bool = True,
) -> AlphaSweep:
    """`alpha_sweep` over a stored run (`sitesight.sliced.store`) against a `Dataset`'s ground truth.

    Frames are matched to ground truth by path (`sitesight.sliced.sweep.align_gt`); frames without ground
    truth are left out. With ``border`` the slice-border rule of the run's slice grid applies before merging.

    Raises:
        InputError: no frame with ground truth, or stored boxes without ``cls_score`` / ``iou_pred``.
    """
    from sitesight.sliced.border import slices_of
    from sitesight.sliced.store import load_run
    from sitesight.sliced.sweep import align_gt

    run = load_run(run_dir)
    gts = align_gt(run, dataset)
    used = [i for i, g in enumerate(gts) if g is not None]
    if not used:
        raise InputError("no processed frame of the run has ground truth", run.run_dir)
    whs = [run.frames[i].image_wh for i in used]
    slices = [slices_of(wh, run.parameters) if border else np.zeros((0, 4), np.int64) for wh in whs]
    return alpha_sweep([run.raw[i] for i in used], [gts[i] for i in used], alphas, class_names=dataset.class_names,
                       slices=slices, image_wh=whs, merge_spec=merge_spec, oracle=oracle)

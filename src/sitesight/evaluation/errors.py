"""Error breakdown of false positives and misses (TIDE-like), with the AP each error type costs.

Every prediction is first matched by the one engine (`match_boxes`, IoU ``iou``). Each false
positive then gets exactly one type, tested in this order (TIDE's):

* ``localisation``: overlaps a ground truth of its class with ``background_iou ≤ IoU < iou``;
* ``class``: overlaps a ground truth of another class with IoU ≥ ``iou``;
* ``duplicate``: overlaps a ground truth of its class with IoU ≥ ``iou`` that a higher-scored
  prediction already took. When predictions carry ``attributes["source"]`` (slice index, -1 = full
  frame), duplicates whose source differs from the source of the prediction that took the ground
  truth are also counted as ``duplicate_cross_slice`` (a subset of ``duplicate``): boxes split or
  repeated across slice borders;
* ``background``: IoU < ``background_iou`` with every ground truth;
* ``both``: everything else (wrong class and poorly localised).

``missed``: regular ground truth that no prediction took and that no localisation or class error
points at. ``delta_ap[type]``: AP@``iou`` (COCO 101-point, mean over classes with ground truth)
after an oracle fixes all errors of that type (localisation/class: the box or class is corrected
when its ground truth is still free, otherwise the prediction is removed; the others: removed;
missed: the ground truth is removed) minus the AP without fixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.boxtable import class_names_for
from sitesight.evaluation.coco import evaluate_tables
from sitesight.evaluation.matching import BoxTable, match_boxes, pair_ious, table_from_detections

__all__ = ["ERROR_TYPES", "ErrorBreakdown", "ErrorLabels", "error_breakdown", "label_errors"]

ERROR_TYPES = ("localisation", "class", "duplicate", "background", "both", "missed")


@dataclass(frozen=True)
class ErrorBreakdown:
    """Counts per error type, ``duplicate_cross_slice``, and the AP each type would recover."""

    counts: dict[str, int]
    duplicate_cross_slice: int
    delta_ap: dict[str, float]
    ap: float
    iou: float
    background_iou: float
    conf: float
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "duplicate_cross_slice": self.duplicate_cross_slice,
            "delta_ap": dict(self.delta_ap),
            "ap": self.ap,
            "iou": self.iou,
            "background_iou": self.background_iou,
            "conf": self.conf,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "note": "each false positive has one type (TIDE order: localisation, class, duplicate, background, both); "
            "duplicate_cross_slice is the subset of duplicates from another slice than the matched box; "
            "delta_ap is AP after fixing that type minus AP",
        }


def _image_pairs(gt: BoxTable, pred: BoxTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (prediction row, gt row, IoU) pairs within the same image for the prediction ``rows``."""
    n_images = int(max(gt.frame.max(initial=-1), pred.frame.max(initial=-1))) + 1
    g_order = np.argsort(gt.frame, kind="stable")
    g_count = np.bincount(gt.frame, minlength=n_images)
    g_start = np.cumsum(g_count) - g_count
    img = pred.frame[rows]
    per = g_count[img]
    pair_pred = np.repeat(rows, per)
    within = np.arange(pair_pred.size) - np.repeat(np.cumsum(per) - per, per)
    pair_gt = g_order[np.repeat(g_start[img], per) + within]
    iou = pair_ious(pred.xyxy[pair_pred], pred.area[pair_pred], gt.xyxy[pair_gt], gt.area[pair_gt], np.zeros(pair_gt.size, bool))
    return pair_pred, pair_gt, iou


def _best(pair_pred: np.ndarray, pair_gt: np.ndarray, iou: np.ndarray, mask: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    """Per prediction row: highest IoU among ``mask`` pairs (0 if none) and its gt row (-1)."""
    best_iou = np.zeros(n_pred)
    best_gt = np.full(n_pred, -1, np.int64)
    p, g, u = pair_pred[mask], pair_gt[mask], iou[mask]
    order = np.lexsort((u, p))  # per prediction, highest IoU last
    p, g, u = p[order], g[order], u[order]
    last = np.r_[p[1:] != p[:-1], True] if p.size else np.zeros(0, bool)
    best_iou[p[last]] = u[last]
    best_gt[p[last]] = g[last]
    return best_iou, best_gt


@dataclass(frozen=True, eq=False)
class ErrorLabels:
    """Per-box error types of one matching, indexed by the rows of the tables `label_errors` got.

    Attributes:
        pred_type: ``(P,)`` object, the type of each false positive (one of ``ERROR_TYPES[:-1]``);
            ``""`` for true positives and predictions matched to crowd ground truth.
        pred_gt: ``(P,)`` int64 ground-truth row a false positive points at, -1 for none: the
            same-class best for localisation and duplicate, the other-class best for class, the
            higher of the two for both, -1 for background.
        cross_slice: ``(P,)`` bool, duplicates whose ``source`` differs from the source of the
            prediction that took their ground truth.
        fp_rows: ``(F,)`` int64 false-positive rows in matching order (per image, by score).
        gt_taken: ``(G,)`` bool, ground truth matched by a prediction.
        missed: ``(G,)`` bool, regular ground truth not taken and not claimed by a localisation or
            class error.
    """

    pred_type: np.ndarray
    pred_gt: np.ndarray
    cross_slice: np.ndarray
    fp_rows: np.ndarray
    gt_taken: np.ndarray
    missed: np.ndarray


def label_errors(gt: BoxTable, pred: BoxTable, *, iou: float = 0.5, background_iou: float = 0.1) -> ErrorLabels:
    """Match ``pred`` to ``gt`` at ``iou`` and give every false positive and miss its type (module notes).

    The one classification behind `error_breakdown` (counts) and
    `sitesight.report.error_examples.classify_errors` (examples).

    Args:
        gt, pred: ground-truth and prediction tables (`table_from_detections`), already filtered
            by confidence.
        iou: foreground IoU (a match); background_iou: below it a box overlaps nothing.
    """
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    rows = m.pred_index
    matched_gt = m.pred_gt[0, 0]
    ignored = m.pred_ignored[0, 0]
    fp_rows = rows[(matched_gt < 0) & ~ignored]
    taker_source = np.full(len(gt), -2, np.int64)  # source of the prediction that took each gt
    tp = matched_gt >= 0
    taker_source[matched_gt[tp]] = pred.source[rows[tp]]
    gt_taken = taker_source > -2

    regular = ~gt.crowd
    pp, pg, pu = _image_pairs(gt, pred, fp_rows)
    keep = regular[pg]
    pp, pg, pu = pp[keep], pg[keep], pu[keep]
    same = gt.class_id[pg] == pred.class_id[pp]
    n = len(pred)
    same_iou, same_gt = _best(pp, pg, pu, same, n)
    other_iou, other_gt = _best(pp, pg, pu, ~same, n)
    any_iou = np.maximum(same_iou, other_iou)

    kind = np.full(n, "", object)
    target = np.full(n, -1, np.int64)
    f = fp_rows
    # A box with no ground truth of a kind in its image has no target of that kind, whatever
    # background_iou says (with background_iou=0 an IoU of 0 would otherwise count as overlap).
    has_same, has_other = same_gt[f] >= 0, other_gt[f] >= 0
    loc = has_same & (same_iou[f] >= background_iou) & (same_iou[f] < iou)
    cls = ~loc & has_other & (other_iou[f] >= iou)
    dup = ~loc & ~cls & has_same & (same_iou[f] >= iou)
    bg = ~loc & ~cls & ~dup & ((any_iou[f] < background_iou) | ~(has_same | has_other))
    both = ~(loc | cls | dup | bg)
    for name, mask in (("localisation", loc), ("class", cls), ("duplicate", dup), ("background", bg), ("both", both)):
        kind[f[mask]] = name
    target[f[loc | dup]] = same_gt[f[loc | dup]]
    target[f[cls]] = other_gt[f[cls]]
    fb = f[both]
    prefer_same = (same_gt[fb] >= 0) & ((same_iou[fb] >= other_iou[fb]) | (other_gt[fb] < 0))
    target[fb] = np.where(prefer_same, same_gt[fb], other_gt[fb])
    cross = np.zeros(n, bool)
    dup_rows = f[dup]
    cross[dup_rows] = pred.source[dup_rows] != taker_source[same_gt[dup_rows]]

    claimed = np.zeros(len(gt), bool)
    claimed[same_gt[f[loc]]] = True
    claimed[other_gt[f[cls]]] = True
    missed = regular & ~gt_taken & ~claimed
    return ErrorLabels(kind, target, cross, fp_rows, gt_taken, missed)


def _ap(gt: BoxTable, pred: BoxTable, n_images: int, class_names: Sequence[str], iou: float) -> float:
    r = evaluate_tables(gt, pred, n_images=n_images, class_names=class_names, iou_thresholds=[iou],
                        max_dets=(max(len(pred), 1),), area_ranges={"all": (0.0, np.inf)}, honour_max_dets=True)
    return max(float(r.stats[0]), 0.0)


def error_breakdown(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    iou: float = 0.5,
    background_iou: float = 0.1,
    conf: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> ErrorBreakdown:
    """Classify every false positive and miss at ``score >= conf`` (see the module notes).

    Args:
        gts, preds: equal-length lists of `Detections`, one per image.
        iou: foreground IoU (a match); background_iou: below it a box overlaps nothing.
        conf: only predictions with ``score >= conf`` are considered (0 = all, as TIDE).
        class_names: the ``K`` classes (default: up to the largest id).
    """
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth images but {len(preds)} prediction images")
    gt = table_from_detections(gts, gt=True)
    pred = table_from_detections(preds, gt=False)
    pred = pred.take(pred.score >= conf)
    class_names = class_names_for(gt, pred, class_names=class_names)
    n_images = len(gts)
    labels = label_errors(gt, pred, iou=iou, background_iou=background_iou)
    kind, missed, gt_taken = labels.pred_type, labels.missed, labels.gt_taken
    cross = int(labels.cross_slice.sum())

    counts = {name: int(np.sum(kind == name)) for name in ERROR_TYPES[:-1]}
    counts["missed"] = int(missed.sum())
    per_class: dict[str, dict[str, int]] = {}
    for k, cname in enumerate(class_names):
        row = {name: int(np.sum((kind == name) & (pred.class_id == k))) for name in ERROR_TYPES[:-1]}
        row["missed"] = int(np.sum(missed & (gt.class_id == k)))
        per_class[cname] = row

    base = _ap(gt, pred, n_images, class_names, iou)
    delta: dict[str, float] = {}
    for name in ERROR_TYPES[:-1]:
        sel = kind == name
        if name in ("localisation", "class"):
            target = np.where(sel, labels.pred_gt, -1)
            fixed = _fix(pred, gt, sel, target, gt_taken, box=name == "localisation")
        else:
            fixed = pred.take(~sel)
        delta[name] = _ap(gt, fixed, n_images, class_names, iou) - base
    delta["missed"] = _ap(gt.take(~missed), pred, n_images, class_names, iou) - base
    return ErrorBreakdown(
        counts=counts,
        duplicate_cross_slice=cross,
        delta_ap=delta,
        ap=base,
        iou=float(iou),
        background_iou=float(background_iou),
        conf=float(conf),
        per_class=per_class,
    )


def _fix(pred: BoxTable, gt: BoxTable, sel: np.ndarray, target: np.ndarray, gt_taken: np.ndarray, *, box: bool) -> BoxTable:
    """Oracle fix: the highest-scored error per free gt takes its box (or class); the rest are removed."""
    rows = np.flatnonzero(sel)
    rows = rows[np.argsort(-pred.score[rows], kind="stable")]
    tg = target[rows]
    first = np.zeros(rows.size, bool)
    _, idx = np.unique(tg, return_index=True)
    first[idx] = True
    winners = rows[first & ~gt_taken[tg]]
    losers = np.setdiff1d(rows, winners)
    xyxy = pred.xyxy.copy()
    area = pred.area.copy()
    class_id = pred.class_id.copy()
    if box:
        xyxy[winners] = gt.xyxy[target[winners]]
        area[winners] = gt.area[target[winners]]
    else:
        class_id[winners] = gt.class_id[target[winners]]
    fixed = pred.with_columns(xyxy=xyxy, area=area, range_area=area, class_id=class_id)
    keep = np.ones(len(pred), bool)
    keep[losers] = False
    return fixed.take(keep)

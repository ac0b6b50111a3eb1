"""Hard samples when there is only one model: where it is confidently wrong against ground truth.

Per frame, with predictions matched to ground truth at ``iou`` over every prediction with
``score >= conf_lo`` (pycocotools' greedy rules, `sitesight.evaluation.matching`):

* **confident false positive**: an unmatched prediction with ``score >= conf_hi``;
* **confident miss**: a (non-crowd) ground-truth box that no prediction with ``score >= conf_lo``
  matches, i.e. the model did not even consider it;
* **low-margin attribute**: a matched prediction whose attribute probabilities (``probs_name``)
  have top-1 minus top-2 below ``margin``.

``score = fp + miss + attribute_weight * low_margin``; `single_model_hard` returns the counts and
per-box flags, `rank_hard_frames` the frames by descending score.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.mining.single import single_model_hard
    >>> gt = [Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60]])]
    >>> pred = [Detections(xyxy=[[0, 0, 10, 10], [100, 100, 120, 120]], score=[0.9, 0.95])]
    >>> r = single_model_hard(gt, pred)
    >>> r.fp.tolist(), r.miss.tolist()
    ([1], [1])
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.matching import match_boxes, table_from_detections
from sitesight.mining.mined import align_gt
from sitesight.mining.pool import load_flat_run

__all__ = ["SingleHard", "single_model_hard", "rank_hard_frames", "mine_single_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SingleHard:
    """Per-frame counts (``(F,)`` int64 / float64) and per-box flags of one model against ground truth.

    Attributes:
        fp, miss, low_margin: ``(F,)`` int64 counts.
        score: ``(F,)`` float64 combined hardness.
        pred_fp: per frame, ``(n_pred,)`` bool confident false positives.
        gt_miss: per frame, ``(n_gt,)`` bool confident misses.
        pred_low_margin: per frame, ``(n_pred,)`` bool low-margin attribute predictions.
    """

    fp: np.ndarray
    miss: np.ndarray
    low_margin: np.ndarray
    score: np.ndarray
    pred_fp: tuple[np.ndarray, ...]
    gt_miss: tuple[np.ndarray, ...]
    pred_low_margin: tuple[np.ndarray, ...]


def _split(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.split(values, np.cumsum(counts)[:-1])) if counts.size else ()


def single_model_hard(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    iou: float = 0.5,
    conf_hi: float = 0.6,
    conf_lo: float = 0.3,
    probs_name: str = "safety_rope_probs",
    margin: float = 0.2,
    attribute_weight: float = 0.5,
) -> SingleHard:
    """Confident FPs, confident misses and low-margin attributes per frame (module notes).

    Args:
        gts, preds: equal-length lists of `Detections`, one per frame.
        iou: IoU of a match.
        conf_hi: a prediction at least this confident that matches nothing is a confident FP.
        conf_lo: predictions below this are not considered at all (a GT left unmatched is missed).
        probs_name: attribute holding ``(n, K)`` probabilities (absent: no attribute term).
        margin: top-1 minus top-2 below this is a low-margin attribute prediction.
        attribute_weight: weight of a low-margin attribute in ``score``.
    """
    if len(gts) != len(preds):
        raise InputError(f"{len(gts)} ground-truth frames but {len(preds)} prediction frames")
    n = len(gts)
    considered = [p.score >= conf_lo for p in preds]
    gt = table_from_detections(gts, gt=True)
    pred = table_from_detections([p[k] for p, k in zip(preds, considered, strict=True)], gt=False)
    # Not `sitesight.evaluation.errors.label_errors` on purpose: mining wants every unmatched
    # box (any TIDE type, a miss even when a poorly placed box points at it), not the breakdown.
    m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
    matched_gt = np.zeros(len(gt), bool)
    hit = m.pred_gt[0, 0] >= 0
    matched_gt[m.pred_gt[0, 0][hit]] = True
    pred_unmatched = np.zeros(len(pred), bool)
    pred_unmatched[m.pred_index] = m.pred_fp[0, 0]
    conf_fp_rows = pred_unmatched & (pred.score >= conf_hi)
    miss_rows = ~matched_gt & ~gt.crowd
    pred_matched = np.zeros(len(pred), bool)
    pred_matched[m.pred_index] = m.pred_tp[0, 0]
    # back to each frame's full prediction list (predictions below conf_lo are never flagged)
    pred_fp, pred_low, start = [], [], 0
    for p, keep in zip(preds, considered, strict=True):
        k = int(keep.sum())
        fp_flags = np.zeros(len(p), bool)
        fp_flags[keep] = conf_fp_rows[start : start + k]
        low = np.zeros(len(p), bool)
        probs = p.attributes.get(probs_name)
        if probs is not None and len(p):
            probs = np.asarray(probs, np.float64)
            top2 = -np.sort(-np.nan_to_num(probs, nan=-1.0), axis=1)[:, :2]
            valid = ~np.isnan(probs).any(axis=1) & (probs.shape[1] >= 2)
            low_any = valid & (top2[:, 0] - top2[:, -1] < margin)
            matched = np.zeros(len(p), bool)
            matched[keep] = pred_matched[start : start + k]
            low = low_any & matched
        pred_fp.append(fp_flags)
        pred_low.append(low)
        start += k
    gt_miss = _split(miss_rows, np.array([len(g) for g in gts], np.int64))
    fp = np.array([int(f.sum()) for f in pred_fp], np.int64)
    miss = np.bincount(gt.frame[miss_rows], minlength=n).astype(np.int64)
    low_margin = np.array([int(f.sum()) for f in pred_low], np.int64)
    score = fp + miss + attribute_weight * low_margin
    return SingleHard(fp, miss, low_margin, score.astype(np.float64), tuple(pred_fp), gt_miss, tuple(pred_low))


def rank_hard_frames(result: SingleHard, *, top_k: int | None = None) -> np.ndarray:
    """Frame indices by descending hardness (ties by index), frames with score 0 left out."""
    order = np.argsort(-result.score, kind="stable")
    order = order[result.score[order] > 0]
    return order if top_k is None else order[:top_k]


def mine_single_run(
    run_dir: Path | str,
    gt: Dataset,
    out_csv: Path | str,
    *,
    top_k: int | None = 300,
    conf_hi: float = 0.6,
    conf_lo: float = 0.3,
) -> SingleHard:
    """One stored run against labels: write the hardest frames as a ranking CSV (the report's mining layout).

    Frames of the run without labels (matched by path, else file name) are left out and logged.
    Columns: ``rank, image, score, confident_fp, confident_miss, low_margin``.
    """
    keys, _, flat = load_flat_run(run_dir, conf=min(conf_lo, 0.05))
    gts = align_gt(keys.tolist(), gt, ())
    used = [i for i, g in enumerate(gts) if g is not None]
    if not used:
        raise InputError("no frame of the run has labels (matched by path or file name)", run_dir)
    if len(used) < len(gts):
        log.warning("%d of %d frames have no labels and are left out", len(gts) - len(used), len(gts))
    preds = [flat.frame_detections(i, probs_name="safety_rope_probs") for i in used]
    result = single_model_hard([gts[i] for i in used], preds, conf_hi=conf_hi, conf_lo=conf_lo)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic.open_atomic(out_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "image", "score", "confident_fp", "confident_miss", "low_margin"])
        for rank, k in enumerate(rank_hard_frames(result, top_k=top_k).tolist(), 1):
            writer.writerow([rank, keys[used[k]], float(result.score[k]), int(result.fp[k]), int(result.miss[k]), int(result.low_margin[k])])
    return result

"""Pascal VOC average precision, as the VOC devkit (``voc_eval.py``) and the mAP tools that follow it
compute it: 11-point (VOC2007) or all-point (VOC2010+) interpolation, optional ``+1`` pixel boxes.

Matching, per class: detections in one global order; each takes the ground-truth box of its image
with the highest IoU (matched or not); IoU strictly above the threshold and that box unmatched →
true positive (the box is now matched), already matched → false positive, a ``difficult`` box →
ignored (neither), IoU at or below the threshold → false positive. Difficult boxes (the VOC
``difficult`` flag, or COCO ``iscrowd``) do not count towards recall.

Tie-break (the devkit's order depends on the order of its input lists; this one does not):
detections by score descending, then by image key (the sample path, compared as text), then by
box ``x1, y1, x2, y2`` ascending; a detection's highest-IoU ground truth, among equal IoUs, is the
one with the smallest ``x1, y1, x2, y2``. Shuffling images or boxes never changes a number.

Example:
    >>> from sitesight import Detections
    >>> gt = [Detections(xyxy=[[0, 0, 10, 10]])]
    >>> pred = [Detections(xyxy=[[0, 0, 10, 10], [20, 20, 30, 30]], score=[0.9, 0.8])]
    >>> voc_average_precision(gt, pred, class_names=["worker"]).per_class["worker"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sitesight.boxes import pairwise_iou_devkit
from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = ["AP_METHODS", "VOC_METHODS", "VocResult", "average_precision", "voc_average_precision", "interpolated_ap"]

VOC_METHODS = ("voc07", "voc12")
_TRUE = {"1", "true", "yes"}


@dataclass(frozen=True)
class VocResult:
    """Per-class VOC AP (``None`` for a class without non-difficult ground truth) and its mean."""

    per_class: dict[str, float | None]
    map: float | None
    method: str
    iou: float
    pixel_inclusive: bool
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # class → gt, tp, fp

    def to_pandas(self) -> Any:
        """Per-class table (index ``class``; ``ap``, ``gt``, ``tp``, ``fp``); needs pandas."""
        from sitesight.interop import records_frame

        return records_frame({k: {"ap": self.per_class[k], **self.counts.get(k, {})} for k in self.per_class}, index_name="class")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "iou": self.iou, "pixel_inclusive": self.pixel_inclusive,
                "map": self.map, "per_class": dict(self.per_class), "counts": dict(self.counts)}  # fmt: skip


def interpolated_ap(recall: np.ndarray, precision: np.ndarray, method: str) -> float:
    """AP from the ``(D,)`` recall/precision curve of detections in rank order.

    ``voc07``: mean over recall 0, 0.1, …, 1 of the best precision at recall ≥ that point.
    ``voc12``: area under the monotone precision envelope, summed where recall changes.
    """
    if method == "voc07":
        return float(sum(precision[recall >= t].max() if (recall >= t).any() else 0.0
                         for t in np.arange(0.0, 1.1, 0.1)) / 11.0)  # fmt: skip
    if method == "voc12":
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
        step = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))
    raise InputError(f"unknown VOC AP method {method!r}; choose one of {', '.join(VOC_METHODS)}")


def _difficult(gt: Detections) -> np.ndarray:
    flag = np.zeros(len(gt), bool)
    if "difficult" in gt.attributes:
        flag |= np.array([str(v).strip().lower() in _TRUE for v in gt.attributes["difficult"]], bool)
    if "iscrowd" in gt.attributes:
        flag |= np.asarray(gt.attributes["iscrowd"]).astype(np.int64) > 0
    return flag


def voc_average_precision(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    class_names: Sequence[str],
    iou: float = 0.5,
    method: str = "voc12",
    pixel_inclusive: bool = False,
    image_keys: Sequence[str] | None = None,
) -> VocResult:
    """VOC AP per class (see the module doc for the matching and the tie-break).

    Args:
        gts: one ground-truth `Detections` per image (``difficult`` / ``iscrowd`` attributes honoured).
        preds: one prediction `Detections` per image, aligned with ``gts`` (every box counts).
        class_names: the ``K`` class names; ``class_id`` indexes them.
        iou: a detection matches when its IoU is strictly above this.
        method: ``voc07`` (11-point) or ``voc12`` (all-point).
        pixel_inclusive: the devkit's ``+1`` convention for widths and heights.
        image_keys: ``(I,)`` names that order tied detections; default the image index as text
            (pass the sample paths for a result that does not depend on the image order).

    Returns:
        `VocResult`; ``map`` is the mean over classes with ground truth.
    """
    if method not in VOC_METHODS:
        raise InputError(f"unknown VOC AP method {method!r}; choose one of {', '.join(VOC_METHODS)}")
    if len(gts) != len(preds):
        raise InputError(f"voc_average_precision: {len(gts)} ground-truth images but {len(preds)} prediction images")
    keys = [f"{i:012d}" for i in range(len(gts))] if image_keys is None else [str(k) for k in image_keys]
    if len(keys) != len(gts):
        raise InputError(f"image_keys: expected {len(gts)} keys, got {len(keys)}")
    key_rank = np.empty(len(keys), np.int64)
    key_rank[np.argsort(np.array(keys, dtype=object), kind="stable")] = np.arange(len(keys))
    per_class: dict[str, float | None] = {}
    counts: dict[str, dict[str, int]] = {}
    # Per detection of every image: its class, score, box, image rank, best IoU and best GT (global id).
    cls, score, box, rank, ovmax, jmax = [], [], [], [], [], []
    gt_cls, gt_difficult = [], []
    offset = 0
    for i, (g, p) in enumerate(zip(gts, preds, strict=True)):
        diff = _difficult(g)
        gxyxy = np.asarray(g.xyxy, np.float64)
        order_g = np.lexsort(gxyxy.T[::-1]) if len(g) else np.zeros(0, np.int64)  # ties → smallest x1, y1, x2, y2
        pxyxy = np.asarray(p.xyxy, np.float64)
        best = np.full(len(p), -np.inf)
        which = np.full(len(p), -1, np.int64)
        for k in np.unique(p.class_id):
            pk = np.flatnonzero(p.class_id == k)
            gk = order_g[g.class_id[order_g] == k]
            if len(gk):
                ov = pairwise_iou_devkit(pxyxy[pk], gxyxy[gk], pixel_inclusive=pixel_inclusive)
                arg = np.argmax(ov, axis=1)
                best[pk] = ov[np.arange(len(pk)), arg]
                which[pk] = offset + gk[arg]
        cls.append(np.asarray(p.class_id, np.int64))
        score.append(np.asarray(p.score, np.float64))
        box.append(pxyxy.reshape(-1, 4))
        rank.append(np.full(len(p), key_rank[i], np.int64))
        ovmax.append(best)
        jmax.append(which)
        gt_cls.append(np.asarray(g.class_id, np.int64))
        gt_difficult.append(diff)
        offset += len(g)
    cls_a, score_a, box_a, rank_a = (np.concatenate(x) if x else np.zeros(0) for x in (cls, score, box, rank))
    ovmax_a, jmax_a = np.concatenate(ovmax) if ovmax else np.zeros(0), np.concatenate(jmax) if jmax else np.zeros(0, np.int64)
    gcls = np.concatenate(gt_cls) if gt_cls else np.zeros(0, np.int64)
    gdiff = np.concatenate(gt_difficult) if gt_difficult else np.zeros(0, bool)
    box_a = box_a.reshape(-1, 4)
    order = np.lexsort((box_a[:, 3], box_a[:, 2], box_a[:, 1], box_a[:, 0], rank_a, -score_a))
    aps = []
    for k, name in enumerate(class_names):
        npos = int(np.sum((gcls == k) & ~gdiff))
        sel = order[cls_a[order] == k]
        hit = ovmax_a[sel] > iou
        target = jmax_a[sel]
        ignored = hit & gdiff[np.maximum(target, 0)] if len(gdiff) else np.zeros(len(sel), bool)
        matchable = hit & ~ignored
        tp = np.zeros(len(sel), bool)
        idx = np.flatnonzero(matchable)
        _, first = np.unique(target[idx], return_index=True)  # the first detection (in rank order) per GT box
        tp[idx[first]] = True
        fp = ~tp & ~ignored
        counts[name] = {"gt": npos, "tp": int(tp.sum()), "fp": int(fp.sum())}
        if npos == 0:
            per_class[name] = None
            continue
        keep = tp | fp  # the devkit's cumulative sums step over ignored detections without a change
        tps = np.cumsum(tp[keep], dtype=np.float64)
        fps = np.cumsum(fp[keep], dtype=np.float64)
        recall = tps / npos
        precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
        per_class[name] = interpolated_ap(recall, precision, method)
        aps.append(per_class[name])
    return VocResult(per_class=per_class, map=float(np.mean(aps)) if aps else None, method=method, iou=float(iou),
                     pixel_inclusive=pixel_inclusive, counts=counts)  # fmt: skip


AP_METHODS = ("coco", "voc07", "voc12")


def average_precision(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    class_names: Sequence[str],
    iou: float = 0.5,
    method: str = "coco",
    pixel_inclusive: bool = False,
    image_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """AP per class at one IoU by one of `AP_METHODS`, as its reference tool computes it.

    ``coco``: pycocotools' matching (IoU ≥ t, best unmatched GT, crowd ignored) and 101-point
    interpolation, every prediction counted; ``voc07`` / ``voc12``: `voc_average_precision`.
    ``pixel_inclusive`` applies to the VOC methods only (COCO has no +1 convention).

    Returns:
        ``{"method", "iou", "pixel_inclusive", "map", "per_class": {name: AP or None}}``.
    """
    if method not in AP_METHODS:
        raise InputError(f"unknown AP method {method!r}; choose one of {', '.join(AP_METHODS)}")
    if method != "coco":
        return voc_average_precision(gts, preds, class_names=class_names, iou=iou, method=method,
                                     pixel_inclusive=pixel_inclusive, image_keys=image_keys).to_dict()  # fmt: skip
    if pixel_inclusive:
        raise InputError("--pixel-inclusive is the VOC devkit's convention; use it with --ap voc07 or voc12")
    from sitesight.evaluation.coco import evaluate_coco

    every = max(1, max((len(p) for p in preds), default=1))
    result = evaluate_coco(gts, preds, class_names=class_names, iou_thresholds=[iou], max_dets=(every,),
                           area_ranges={"all": (0.0, 1e10)}, honour_max_dets=True)  # fmt: skip
    per_class = {name: (None if row.get("AP") is None or row["AP"] < 0 else float(row["AP"]))
                 for name, row in result.per_class.items()}  # fmt: skip
    defined = [v for v in per_class.values() if v is not None]
    return {"method": "coco", "iou": float(iou), "pixel_inclusive": False,
            "map": float(np.mean(defined)) if defined else None, "per_class": per_class}  # fmt: skip

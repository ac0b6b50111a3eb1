"""The one matching engine: every detection metric in sitesight derives from `match_boxes`.

Rules (exactly those of pycocotools' ``COCOeval.evaluateImg``, vectorised over all images,
classes, IoU thresholds and area ranges at once):

* per image and class, predictions are taken highest score first (stable on ties: input order),
  keeping at most ``max_det`` of them;
* each prediction takes the still-unmatched ground truth with the highest IoU ≥ t (ties: the later
  ground truth); regular (not ignored) ground truth is preferred over ignored ground truth;
* crowd ground truth is ignored, never used up, and its IoU is intersection over the prediction's
  area; a prediction matched to ignored ground truth is ignored (neither TP nor FP);
* ground truth outside an area range is ignored for that range; an unmatched prediction outside
  the range is ignored too.

Inputs are columnar `BoxTable` values (one row per box over all images), built from per-image
`Detections` by `table_from_detections` or straight from COCO JSON by `sitesight.evaluation.coco`.
Boxes are float64 absolute-pixel xyxy; ``area`` is the box area used by IoU (``w * h``) and
``range_area`` the area compared with area ranges (COCO's ``"area"`` field for ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections

__all__ = ["BoxTable", "Matches", "table_from_detections", "match_boxes", "pair_ious"]


@dataclass(frozen=True)
class BoxTable:
    """Boxes of many images as aligned columns.

    Attributes:
        image: ``(N,)`` int64 image index (position in the evaluated image list).
        class_id: ``(N,)`` int64 class index.
        xyxy: ``(N, 4)`` float64 absolute-pixel boxes.
        area: ``(N,)`` float64 box area ``w * h`` used by IoU.
        range_area: ``(N,)`` float64 area compared with area ranges.
        score: ``(N,)`` float64 confidence (ones for ground truth).
        crowd: ``(N,)`` bool COCO ``iscrowd`` (ground truth only).
        zero_id: ``(N,)`` bool, ground truth whose COCO annotation id is 0 (pycocotools counts a
            prediction matched to it as unmatched; kept for exact parity, all False otherwise).
        source: ``(N,)`` int64 slice index that produced a prediction (-1 = full frame or unknown).
    """

    image: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    area: np.ndarray
    range_area: np.ndarray
    score: np.ndarray
    crowd: np.ndarray
    zero_id: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def build(
        cls,
        image: np.ndarray,
        class_id: np.ndarray,
        xyxy: np.ndarray,
        *,
        score: np.ndarray | None = None,
        area: np.ndarray | None = None,
        range_area: np.ndarray | None = None,
        crowd: np.ndarray | None = None,
        zero_id: np.ndarray | None = None,
    ) -> BoxTable:
        """A table with defaults: area from the boxes, score 1, not crowd, source -1."""
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        n = xyxy.shape[0]
        if area is None:
            area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        area = np.asarray(area, np.float64)
        return cls(
            image=np.asarray(image, np.int64).reshape(n),
            class_id=np.asarray(class_id, np.int64).reshape(n),
            xyxy=xyxy,
            area=area,
            range_area=area if range_area is None else np.asarray(range_area, np.float64),
            score=np.ones(n) if score is None else np.asarray(score, np.float64),
            crowd=np.zeros(n, bool) if crowd is None else np.asarray(crowd, bool),
            zero_id=np.zeros(n, bool) if zero_id is None else np.asarray(zero_id, bool),
            source=np.full(n, -1, np.int64),
        )

    def take(self, index: np.ndarray) -> BoxTable:
        """Rows by index or mask."""
        return BoxTable(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    def with_columns(self, **columns: np.ndarray) -> BoxTable:
        """A copy with some columns replaced (same length)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(columns)
        return BoxTable(**values)


def table_from_detections(per_image: Sequence[Detections], *, gt: bool) -> BoxTable:
    """Flatten one `Detections` per image into a `BoxTable`.

    Args:
        per_image: one `Detections` per image, in image order.
        gt: True for ground truth: scores are ignored, ``attributes["iscrowd"]`` marks crowd boxes and
            ``attributes["area"]`` (when present, e.g. from COCO) is the area compared with ranges.
            For predictions ``attributes["source"]`` (slice index, -1 = full frame) is kept.
    """
    counts = np.fromiter((d.xyxy.shape[0] for d in per_image), np.int64, count=len(per_image))
    image = np.repeat(np.arange(len(per_image), dtype=np.int64), counts)
    if counts.sum() == 0:
        return BoxTable.build(image, np.zeros(0), np.zeros((0, 4)))
    parts = [d for d, n in zip(per_image, counts.tolist(), strict=True) if n]
    xyxy = np.concatenate([d.xyxy for d in parts]).astype(np.float64)
    class_id = np.concatenate([d.class_id for d in parts])
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    if gt:
        crowd = _column(parts, "iscrowd", 0).astype(np.int64) != 0
        range_area = _column(parts, "area", np.nan).astype(np.float64)
        range_area = np.where(np.isnan(range_area), area, range_area)
        return BoxTable.build(image, class_id, xyxy, area=area, range_area=range_area, crowd=crowd)
    score = np.concatenate([d.score for d in parts]).astype(np.float64)
    table = BoxTable.build(image, class_id, xyxy, score=score, area=area)
    return table.with_columns(source=_column(parts, "source", -1).astype(np.int64))


def _column(parts: Sequence[Detections], key: str, default: float) -> np.ndarray:
    """One attribute over all parts; ``default`` where a part lacks it or holds None."""
    if not any(key in d.attributes for d in parts):
        return np.full(sum(d.xyxy.shape[0] for d in parts), default)
    chunks = []
    for d in parts:
        values = d.attributes.get(key)
        if values is None:
            values = np.full(len(d), default)
        elif values.dtype == object:
            values = np.array([default if v is None else v for v in values], np.float64)
        chunks.append(np.asarray(values, np.float64))
    return np.concatenate(chunks)


@dataclass(frozen=True)
class Matches:
    """Result of `match_boxes`.

    Attributes:
        pred_index: ``(D,)`` rows of the prediction table that were evaluated (after ``max_det``),
            ordered by (image, class, score descending).
        pred_rank: ``(D,)`` rank of each of them within its image and class (0 = highest score).
        pred_gt: ``(A, T, D)`` int32 (int64 beyond 2**31 boxes) row of the matched ground truth, -1 when unmatched.
        pred_ignored: ``(A, T, D)`` bool, neither TP nor FP.
        gt_ignored: ``(A, G)`` bool ground truth ignored for each area range (crowd or out of range).
        iou_thresholds: ``(T,)`` float64.
    """

    pred_index: np.ndarray
    pred_rank: np.ndarray
    pred_gt: np.ndarray
    pred_ignored: np.ndarray
    gt_ignored: np.ndarray
    iou_thresholds: np.ndarray

    @property
    def pred_tp(self) -> np.ndarray:
        """``(A, T, D)`` bool true positives."""
        return (self.pred_gt >= 0) & ~self.pred_ignored

    @property
    def pred_fp(self) -> np.ndarray:
        """``(A, T, D)`` bool false positives."""
        return (self.pred_gt < 0) & ~self.pred_ignored


def pair_ious(pred_xyxy: np.ndarray, pred_area: np.ndarray, gt_xyxy: np.ndarray, gt_area: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Element-wise IoU of ``(P, 4)`` prediction/ground-truth pairs, float64, as pycocotools' ``bbIou``.

    For crowd ground truth the union is the prediction's area. Touching boxes have IoU 0.
    """
    w = np.minimum(pred_xyxy[:, 2], gt_xyxy[:, 2]) - np.maximum(pred_xyxy[:, 0], gt_xyxy[:, 0])
    h = np.minimum(pred_xyxy[:, 3], gt_xyxy[:, 3]) - np.maximum(pred_xyxy[:, 1], gt_xyxy[:, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = np.where(crowd, pred_area, pred_area + gt_area - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(inter > 0, iou, 0.0)


def _group_order(image: np.ndarray, class_id: np.ndarray, num_classes: int, score: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    group = image * num_classes + class_id
    if score is None:
        order = np.argsort(group, kind="stable")
    else:
        order = np.lexsort((-score, group))  # stable: ties keep input order, like pycocotools' mergesort
    return order, group[order]


def match_boxes(
    gt: BoxTable,
    pred: BoxTable,
    *,
    iou_thresholds: Sequence[float] | np.ndarray = (0.5,),
    area_lo: np.ndarray | None = None,
    area_hi: np.ndarray | None = None,
    max_det: int | None = 100,
) -> Matches:
    """Match predictions to ground truth per image and class for several IoU thresholds and area ranges.

    Args:
        gt: ground-truth table.
        pred: prediction table (same image and class indexing).
        iou_thresholds: ``T`` thresholds; a match needs IoU ≥ ``min(t, 1 - 1e-10)``.
        area_lo, area_hi: ``(A, n_images)`` float64 inclusive area bounds per range and image (so
            ranges may be relative to each frame); default one range ``[0, inf]``.
        max_det: keep at most this many predictions per image and class (None = all).

    Returns:
        `Matches`.
    """
    thr = np.minimum(np.asarray(iou_thresholds, np.float64), 1 - 1e-10)
    n_images = int(max(gt.image.max(initial=-1), pred.image.max(initial=-1))) + 1
    if area_lo is None or area_hi is None:
        area_lo = np.zeros((1, n_images))
        area_hi = np.full((1, n_images), np.inf)
    area_lo = np.asarray(area_lo, np.float64)
    area_hi = np.asarray(area_hi, np.float64)
    n_ranges, n_thr = area_lo.shape[0], thr.size
    num_classes = int(max(gt.class_id.max(initial=-1), pred.class_id.max(initial=-1))) + 1

    # Ground truth grouped by (image, class), input order kept inside a group.
    g_order, g_group = _group_order(gt.image, gt.class_id, num_classes, None)
    n_groups = n_images * num_classes
    g_count = np.bincount(g_group, minlength=n_groups)
    g_start = np.cumsum(g_count) - g_count

    # Predictions grouped the same way, highest score first, truncated to max_det.
    p_order, p_group = _group_order(pred.image, pred.class_id, num_classes, pred.score)
    p_count_all = np.bincount(p_group, minlength=n_groups)
    p_rank = np.arange(p_order.size) - np.repeat(np.cumsum(p_count_all) - p_count_all, p_count_all)
    keep = p_rank < max_det if max_det is not None else np.ones(p_order.size, bool)
    p_order, p_group, p_rank = p_order[keep], p_group[keep], p_rank[keep]
    n_pred = p_order.size

    gt_range_area = gt.range_area
    gt_ignored = gt.crowd[None, :] | (gt_range_area[None, :] < area_lo[:, gt.image]) | (gt_range_area[None, :] > area_hi[:, gt.image])

    # Every (prediction, ground truth) pair of the same group; keep those that can ever match.
    per_pred = g_count[p_group]
    pair_pred = np.repeat(np.arange(n_pred), per_pred)
    within = np.arange(pair_pred.size) - np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    pair_gt = g_order[g_start[p_group][pair_pred] + within]
    pi = p_order[pair_pred]
    iou = pair_ious(pred.xyxy[pi], pred.area[pi], gt.xyxy[pair_gt], gt.area[pair_gt], gt.crowd[pair_gt])
    if n_thr:
        possible = iou >= thr.min()
        pair_pred, pair_gt, iou = pair_pred[possible], pair_gt[possible], iou[possible]

    pred_gt = np.full((n_ranges, n_thr, n_pred), -1, np.int64 if len(gt) >= 2**31 else np.int32)
    if pair_pred.size and n_thr:
        _greedy(pred_gt, pair_pred, pair_gt, iou, p_rank, thr, gt_ignored, gt.crowd, len(gt))

    # Ignore flags, touching only the matched entries (most predictions match nothing).
    p_area = pred.area[p_order]
    p_img = pred.image[p_order]
    out_of_range = (p_area[None, :] < area_lo[:, p_img]) | (p_area[None, :] > area_hi[:, p_img])
    pred_ignored = np.repeat(out_of_range[:, None, :], n_thr, axis=1)
    cols = np.unique(pair_pred)  # only predictions with a candidate can hold a match
    a, t, d = np.nonzero(pred_gt[:, :, cols] >= 0)
    d = cols[d]
    if a.size:
        g = pred_gt[a, t, d]
        zero = gt.zero_id[g]
        # matched to ignored GT → ignored; matched to a regular GT → counted, unless its id is 0
        # (pycocotools then sees "no match" and applies the area test to the prediction).
        pred_ignored[a, t, d] = gt_ignored[a, g] | (zero & out_of_range[a, d])
        pred_gt[a[zero], t[zero], d[zero]] = -1
    return Matches(
        pred_index=p_order,
        pred_rank=p_rank,
        pred_gt=pred_gt,
        pred_ignored=pred_ignored,
        gt_ignored=gt_ignored,
        iou_thresholds=np.asarray(iou_thresholds, np.float64),
    )


def _greedy(
    pred_gt: np.ndarray,
    pair_pred: np.ndarray,
    pair_gt: np.ndarray,
    iou: np.ndarray,
    p_rank: np.ndarray,
    thr: np.ndarray,
    gt_ignored: np.ndarray,
    crowd: np.ndarray,
    n_gt: int,
) -> None:
    """Fill ``pred_gt (A, T, D)`` in place: one step per score rank, all groups/ranges/thresholds at once.

    Predictions of equal rank belong to different groups, so they never compete for one ground truth.
    """
    n_ranges, n_thr, _ = pred_gt.shape
    # Fast path: a ground truth whose candidate predictions have no other candidate is simply
    # taken by the first of them (by score rank) that clears each threshold; crowd by all of them.
    multi = np.bincount(pair_pred, minlength=pred_gt.shape[2])[pair_pred] > 1
    contested = np.zeros(n_gt, bool)
    contested[pair_gt[multi]] = True
    simple = ~contested[pair_gt]
    if simple.any():
        _resolve_simple(pred_gt, pair_pred[simple], pair_gt[simple], iou[simple], p_rank, thr, crowd)
        pair_pred, pair_gt, iou = pair_pred[~simple], pair_gt[~simple], iou[~simple]
        if pair_pred.size == 0:
            return
    used = np.zeros((n_ranges, n_thr, n_gt), bool)
    rank = p_rank[pair_pred]
    order = np.argsort(rank, kind="stable")  # pairs stay ordered by prediction, then ground truth
    pair_pred, pair_gt, iou, rank = pair_pred[order], pair_gt[order], iou[order], rank[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(rank)) + 1, rank.size]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        pp, gg, uu = pair_pred[lo:hi], pair_gt[lo:hi], iou[lo:hi]
        starts = np.r_[0, np.flatnonzero(np.diff(pp)) + 1]
        seg = np.cumsum(np.r_[0, np.diff(pp) != 0])
        valid = (uu[None, None, :] >= thr[None, :, None]) & (crowd[gg][None, None, :] | ~used[:, :, gg])
        ign = gt_ignored[:, gg][:, None, :]
        pick = _segment_best(valid & ~ign, uu, starts, seg)
        pick2 = _segment_best(valid & ign, uu, starts, seg)
        pick = np.where(pick >= 0, pick, pick2)
        a, t, s = np.nonzero(pick >= 0)
        if a.size == 0:
            continue
        chosen = pick[a, t, s]
        g = gg[chosen]
        used[a, t, g] = True
        pred_gt[a, t, pp[starts[s]]] = g


def _resolve_simple(
    pred_gt: np.ndarray, pair_pred: np.ndarray, pair_gt: np.ndarray, iou: np.ndarray, p_rank: np.ndarray, thr: np.ndarray, crowd: np.ndarray
) -> None:
    """Pairs whose predictions have exactly one candidate and whose GT only such predictions."""
    order = np.lexsort((p_rank[pair_pred], pair_gt))
    pp, gg, uu = pair_pred[order], pair_gt[order], iou[order]
    valid = uu[None, :] >= thr[:, None]  # (T, S)
    start = np.r_[True, gg[1:] != gg[:-1]]
    seg_start = np.flatnonzero(start)
    cum = np.cumsum(valid, axis=1)
    before = np.where(seg_start > 0, cum[:, np.maximum(seg_start - 1, 0)], 0)  # (T, segments)
    within = cum - np.repeat(before, np.diff(np.r_[seg_start, gg.size]), axis=1)
    take = valid & (crowd[gg][None, :] | (within == 1))
    t, i = np.nonzero(take)
    pred_gt[:, t, pp[i]] = gg[i]


def _segment_best(mask: np.ndarray, iou: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Per segment, the position of the highest IoU among ``mask`` (ties: the last); -1 if none.

    ``mask`` is ``(A, T, P)``; returns ``(A, T, S)`` positions into ``P``.
    """
    value = np.where(mask, iou[None, None, :], -1.0)
    best = np.maximum.reduceat(value, starts, axis=2)
    is_best = mask & (value == best[:, :, seg])
    pos = np.where(is_best, np.arange(iou.size)[None, None, :], -1)
    return np.maximum.reduceat(pos, starts, axis=2)

"""Box merging for sliced inference: NMS, NMM and greedy NMM over IoU or IoS, as SAHI does them.

`merge` gives the same boxes, scores and classes as SAHI 0.12.8's ``NMSPostprocess``,
``NMMPostprocess`` and ``GreedyNMMPostprocess`` (``match_metric`` = ``metric``, ``match_threshold``
= ``threshold``); the parity is tested on thousands of random inputs. SAHI's rules, kept exactly:

- Boxes are visited by score, highest first; equal scores by ``x1, y1, x2, y2`` ascending, then
  input order. Overlaps for grouping are computed in float32 and match when ``>= threshold``.
- ``nms``: a box is dropped when it matches a box kept before it.
- ``greedy_nmm``: the keepers are NMS's; each other box joins the first keeper that matches it.
- ``nmm``: a box is claimed by the first box (keeper or not) that matches it and scores higher (or
  is its exact duplicate with the same score); it joins that box's group, so groups are chains.
- A group becomes one box: its members are folded into the keeper in order, each merged only if it
  still matches the growing union (float64); merged box = union, score = the keeper's (the
  maximum), class = the keeper's unless a merged member has the same score (then the last such
  member's). Members that no longer match the union are dropped. Attributes are the keeper's.

Nothing here builds an ``N x N`` matrix: matching pairs come from a sweep over horizontal strips,
keepers from rounds of vectorised relaxation over those pairs (`sitesight.sliced.grouping`), and
groups are folded step by step across all groups at once (`sitesight.sliced.folding`).

Example:
    >>> import numpy as np
    >>> from sitesight import Detections, merge
    >>> d = Detections(xyxy=[[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], score=[0.9, 0.8, 0.7])
    >>> merge(d, method="greedy_nmm", metric="iou", threshold=0.5).xyxy.tolist()
    [[0.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections
from sitesight.sliced.folding import fold_groups
from sitesight.sliced.grouping import group_boxes, score_order

__all__ = ["METHODS", "METRICS", "MergeGroups", "merge", "merge_groups"]

METHODS = ("nms", "nmm", "greedy_nmm")
METRICS = ("iou", "ios")


@dataclass(frozen=True)
class MergeGroups:
    """How the input boxes were grouped by `merge_groups`.

    Attributes:
        keep: ``(K,)`` int64 input rows of the keepers, in output order (score descending).
        group: ``(N,)`` int64 output row (index into ``keep``) of the keeper that claimed each
            input box; a keeper's is its own row.
        merged: ``(N,)`` bool, True where the box is part of its output box: keepers, and for
            ``nmm``/``greedy_nmm`` the members that still matched the growing union.
    """

    keep: np.ndarray
    group: np.ndarray
    merged: np.ndarray


def _check(detections: Detections, method: str, metric: str, threshold: float) -> tuple[str, str, float]:
    if not isinstance(detections, Detections):
        raise TypeError(f"merge: expected Detections, got {type(detections).__name__}")
    method, metric = str(method).lower(), str(metric).lower()
    if method not in METHODS:
        raise ValueError(f"merge: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if metric not in METRICS:
        raise ValueError(f"merge: unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not math.isfinite(threshold):
        raise ValueError(f"merge: threshold must be a finite number, got {threshold!r}")
    bad = ~(np.isfinite(detections.xyxy).all(axis=1) & np.isfinite(detections.score))
    if bad.any():
        raise ValueError(f"merge: non-finite box or score in rows {np.flatnonzero(bad)[:10].tolist()}")
    return method, metric, float(threshold)


def _buckets(class_id: np.ndarray, class_agnostic: bool, partition: np.ndarray | None) -> np.ndarray:
    """``(N,)`` int64 group key: boxes merge only within one (class unless agnostic, partition)."""
    n = len(class_id)
    bucket = np.zeros(n, np.int64) if class_agnostic else np.asarray(class_id, np.int64)
    if partition is None:
        return bucket
    partition = np.asarray(partition, np.int64).reshape(-1)
    if partition.shape != (n,):
        raise ValueError(f"merge: partition must have shape ({n},), got {partition.shape}")
    if not n:
        return bucket
    bucket = bucket - bucket.min()
    return (partition - partition.min()) * (int(bucket.max()) + 1) + bucket


def _merge(
    detections: Detections, method: str, metric: str, threshold: float, class_agnostic: bool,
    partition: np.ndarray | None = None,
) -> tuple[MergeGroups, np.ndarray, np.ndarray]:
    """Groups, union boxes ``(K, 4)`` float64 and classes ``(K,)`` of the merged output."""
    method, metric, threshold = _check(detections, method, metric, threshold)
    iou = metric == "iou"
    xyxy, score, class_id = detections.xyxy, detections.score, detections.class_id
    n = len(detections)
    rank = np.empty(n, np.int64)
    rank[score_order(xyxy, score)] = np.arange(n)
    bucket = _buckets(class_id, class_agnostic, partition)
    # Visiting order restricted to one bucket is that bucket's own order, so one pass serves all.
    found = group_boxes(xyxy, score, bucket, rank, iou, threshold, method)
    if found is None:
        owner, claimer = np.arange(n), np.arange(n)
        by_class = np.argsort(bucket, kind="stable")
        for rows in np.split(by_class, np.flatnonzero(np.diff(bucket[by_class])) + 1):
            sub_rank = np.argsort(np.argsort(rank[rows]))
            own, claim = group_boxes(xyxy[rows], score[rows], bucket[rows], sub_rank, iou, threshold, method)
            owner[rows], claimer[rows] = rows[own], rows[claim]
    else:
        owner, claimer = found
    # Members join in the order SAHI lists them: by their claimer's turn, then by row (nmm);
    # by their own turn (greedy_nmm).
    member_key = rank[claimer] if method == "nmm" else rank
    is_keeper = owner == np.arange(n)
    keepers = np.flatnonzero(is_keeper)
    keep = keepers[np.argsort(rank[keepers])]
    out_row = np.empty(n, np.int64)
    out_row[keep] = np.arange(len(keep))
    group = out_row[owner]
    if method == "nms":
        groups = MergeGroups(keep=keep, group=group, merged=is_keeper)
        return groups, xyxy[keep].astype(np.float64), class_id[keep]
    others = np.flatnonzero(~is_keeper)
    members = others[np.lexsort((others, member_key[others], group[others]))]
    lengths = np.bincount(group[members], minlength=len(keep))
    union, cls, member_merged = fold_groups(xyxy, score, class_id, members, lengths, keep, iou, threshold)
    merged = is_keeper.copy()
    merged[members] = member_merged
    return MergeGroups(keep=keep, group=group, merged=merged), union, cls


def merge_groups(
    detections: Detections,
    *,
    method: str = "greedy_nmm",
    metric: str = "ios",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    partition: np.ndarray | None = None,
) -> MergeGroups:
    """Which boxes `merge` keeps and which group every box joins; arguments as for `merge`.

    Useful to carry per-box information (slice index, scores of the members) into the merged
    boxes, e.g. for score fusion across overlapping slices.
    """
    return _merge(detections, method, metric, threshold, class_agnostic, partition)[0]


def merge(
    detections: Detections,
    *,
    method: str = "greedy_nmm",
    metric: str = "ios",
    threshold: float = 0.5,
    class_agnostic: bool = False,
    partition: np.ndarray | None = None,
) -> Detections:
    """Merge overlapping boxes (e.g. raw sliced-inference output) the way SAHI does.

    Args:
        detections: ``N`` boxes, absolute-pixel ``xyxy`` in one frame; not modified.
        method: ``"nms"`` (drop overlapping lower-scored boxes), ``"greedy_nmm"`` (merge them into
            the keeper that matches them first) or ``"nmm"`` (merge transitively along chains).
            The defaults are SAHI's ``get_sliced_prediction`` defaults.
        metric: ``"iou"`` (intersection over union) or ``"ios"`` (intersection over the smaller box).
        threshold: overlap at or above which two boxes match; ``<= 0`` matches every pair.
        class_agnostic: merge across classes; otherwise each class is merged on its own.
        partition: ``(N,)`` int group of each box (e.g. its frame when many frames are merged in
            one call); boxes of different groups never merge, exactly as if merged apart.

    Returns:
        ``K <= N`` boxes, score descending (ties by ``x1, y1, x2, y2``): for ``nms`` the kept
        input boxes; otherwise each keeper's group folded into the union box (float32), with the
        keeper's score, SAHI's class rule and the keeper's attributes. Empty in, empty out.

    Raises:
        ValueError: unknown method or metric (the message lists the choices), a non-finite
            threshold, or non-finite boxes or scores.
    """
    groups, union, cls = _merge(detections, method, metric, threshold, class_agnostic, partition)
    keep = groups.keep
    return Detections(
        xyxy=union.astype(np.float32),
        score=detections.score[keep],
        class_id=cls,
        attributes={name: values[keep] for name, values in detections.attributes.items()},
    )

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
keepers from rounds of vectorised relaxation over those pairs, and groups are folded step by step
across all groups at once.

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

__all__ = ["METHODS", "METRICS", "MergeGroups", "merge", "merge_groups"]

METHODS = ("nms", "nmm", "greedy_nmm")
METRICS = ("iou", "ios")

# Candidate pairs examined per vectorised chunk, and in all; past the total the crowding is so
# high that answering one row at a time (few keepers claim almost everything) is cheaper.
_PAIR_CHUNK = 1 << 21
_PAIR_BUDGET = 1 << 24
# Up to this many boxes every pair is simply examined.
_SMALL = 192
# Relaxation rounds before the keepers still undecided are settled one by one.
_MAX_ROUNDS = 48
# Below this many groups still folding, a plain Python loop beats one numpy call per step.
_MIN_VECTOR_GROUPS = 16


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


def _score_order(xyxy: np.ndarray, score: np.ndarray) -> np.ndarray:
    """SAHI's visiting order: score descending, then x1, y1, x2, y2 ascending, then row."""
    return np.lexsort((xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))


def _overlap(xyxy: np.ndarray, area: np.ndarray, a: np.ndarray | int, b: np.ndarray, iou: bool) -> np.ndarray:
    """float32 IoU or IoS of boxes ``a`` against boxes ``b``, with SAHI's exact arithmetic."""
    w = np.maximum(0, np.minimum(xyxy[a, 2], xyxy[b, 2]) - np.maximum(xyxy[a, 0], xyxy[b, 0]))
    h = np.maximum(0, np.minimum(xyxy[a, 3], xyxy[b, 3]) - np.maximum(xyxy[a, 1], xyxy[b, 1]))
    inter = w * h
    denom = area[a] + area[b] - inter if iou else np.minimum(area[a], area[b])
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


def _match_pairs(
    xyxy: np.ndarray, area: np.ndarray, bucket: np.ndarray, iou: bool, threshold: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Every unordered pair of boxes in the same ``bucket`` whose overlap is ``>= threshold > 0``.

    Each pair comes once. Boxes are registered in the horizontal strips they cross; inside a strip a sweep along x
    pairs each box with the boxes that start before it ends. A pair is examined only in the
    strip holding the top of its intersection, so it is seen once. Returns None when the boxes
    are so crowded that more than ``_PAIR_BUDGET`` candidates would have to be examined.
    """
    n = len(xyxy)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty
    if n <= _SMALL:
        i, j = np.triu_indices(n, 1)
        same = bucket[i] == bucket[j]
        i, j = i[same], j[same]
        hit = _overlap(xyxy, area, i, j, iou) >= threshold
        return i[hit], j[hit]
    x64 = xyxy.astype(np.float64)
    y_min = float(x64[:, 1].min())
    # Strips of about two typical box heights: most boxes sit in one or two (measured best).
    strip = max(2 * float(np.median(x64[:, 3] - x64[:, 1])), (float(x64[:, 3].max()) - y_min) / 4096, 1e-6)
    first = np.floor((x64[:, 1] - y_min) / strip).astype(np.int64)
    last = np.maximum(np.floor((x64[:, 3] - y_min) / strip).astype(np.int64), first)
    spans = last - first + 1
    # Each bucket gets its own run of bands, so pairs never cross buckets.
    offset = np.unique(bucket, return_inverse=True)[1].ravel() * (int(last.max()) + 1)
    first, last = first + offset, last + offset
    box = np.repeat(np.arange(n), spans)
    band = first[box] + (np.arange(len(box)) - np.repeat(np.cumsum(spans) - spans, spans))
    # x positions as integer ranks, so that one int64 key orders entries by (band, x1) exactly.
    _, x_rank = np.unique(x64[:, [0, 2]].ravel(), return_inverse=True)
    stride = int(x_rank.max()) + 2
    key = band * stride + x_rank[0::2][box]
    order = np.argsort(key, kind="stable")
    box, band, key = box[order], band[order], key[order]
    end = np.searchsorted(key, band * stride + x_rank[1::2][box], side="left")
    counts = np.maximum(end - np.arange(len(box)) - 1, 0)
    cum = np.cumsum(counts)
    if len(cum) == 0 or cum[-1] > _PAIR_BUDGET:
        return None if len(cum) else (empty, empty)
    firsts, seconds = [empty], [empty]
    start = 0
    while start < len(box):
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right")), start + 1)
        c = counts[start:stop]
        src = np.repeat(np.arange(start, stop), c)
        dst = src + 1 + np.arange(len(src)) - np.repeat(np.cumsum(c) - c, c)
        i, j = box[src], box[dst]
        own = band[src] == np.maximum(first[i], first[j])
        i, j = i[own], j[own]
        hit = _overlap(xyxy, area, i, j, iou) >= threshold
        firsts.append(i[hit])
        seconds.append(j[hit])
        start = stop
    return np.concatenate(firsts), np.concatenate(seconds)


def _nms_keepers(n: int, src: np.ndarray, dst: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Greedy NMS keepers from matching pairs oriented earlier → later; ``(n,)`` bool.

    Each round keeps the boxes whose earlier neighbours are all dropped and drops those with a
    kept earlier neighbour; the first undecided box is always settled, and on sliced-detection
    output a handful of rounds settles everything. Long chains are finished one box at a time.
    """
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 dropped
    for _ in range(_MAX_ROUNDS):
        hit = np.zeros(n, bool)
        hit[dst[state[src] == 1]] = True
        state[hit & (state == 0)] = 2
        waiting = np.zeros(n, bool)
        waiting[dst[state[src] == 0]] = True
        state[(state == 0) & ~waiting] = 1
        live = (state[dst] == 0) & (state[src] != 2)
        src, dst = src[live], dst[live]
        if not live.any():
            break
    undecided = np.flatnonzero(state == 0)
    if len(undecided):
        by_dst = np.argsort(dst, kind="stable")
        src, dst = src[by_dst], dst[by_dst]
        lo, hi = np.searchsorted(dst, undecided, "left"), np.searchsorted(dst, undecided, "right")
        for k in np.argsort(rank[undecided]):
            state[undecided[k]] = 2 if (state[src[lo[k] : hi[k]]] == 1).any() else 1
    return state == 1


def _groups_from_pairs(
    xyxy: np.ndarray, score: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], rank: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, claimer)`` per box from its matching pairs; keepers own and claim themselves."""
    n = len(xyxy)
    i, j = pairs
    swap = rank[i] > rank[j]
    src, dst = np.where(swap, j, i), np.where(swap, i, j)
    first_claim = np.full(n, n, np.int64)
    order = np.argsort(rank)
    if method == "nmm":
        # Earlier boxes score at least as high; equal scores claim only exact duplicates.
        claims = (score[src] > score[dst]) | (xyxy[src] == xyxy[dst]).all(axis=1)
        np.minimum.at(first_claim, dst[claims], rank[src[claims]])
        claimer = np.where(first_claim < n, order[np.minimum(first_claim, n - 1)], np.arange(n))
        owner = claimer.copy()
        while True:  # follow claim chains to their keeper; claimers come earlier, so it ends
            nxt = owner[owner]
            if np.array_equal(nxt, owner):
                return owner, claimer
            owner = nxt
    kept = _nms_keepers(n, src, dst, rank)
    by_keeper = kept[src] & ~kept[dst]
    np.minimum.at(first_claim, dst[by_keeper], rank[src[by_keeper]])
    owner = np.where(kept, np.arange(n), order[np.minimum(first_claim, n - 1)])
    return owner, owner


def _group(
    xyxy: np.ndarray, score: np.ndarray, bucket: np.ndarray, rank: np.ndarray, iou: bool, threshold: float, method: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(owner, claimer)`` rows of every box, matching only within a bucket; ``rank`` is the
    visiting position. None when pairs cannot be listed (crowded, or threshold <= 0) and the
    boxes span several buckets; a single bucket then goes row by row."""
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    pairs = _match_pairs(xyxy, area, bucket, iou, threshold) if threshold > 0 else None
    if pairs is not None:
        return _groups_from_pairs(xyxy, score, pairs, rank, method)
    if len(xyxy) and (bucket != bucket[0]).any():
        return None
    return _groups_by_rows(xyxy, score, area, iou, threshold, method)


def _groups_by_rows(
    xyxy: np.ndarray, score: np.ndarray, area: np.ndarray, iou: bool, threshold: float, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Same as `_groups_from_pairs`, answering one box's matches at a time against the unclaimed.

    Used for crowded inputs and thresholds <= 0 (where every pair matches); cheap there because
    a few boxes claim nearly all the others.
    """
    n = len(xyxy)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if threshold <= 0 and method == "nmm":
        # SAHI answers "every pair matches" with its own rule: the top box claims every lower
        # score and its exact duplicates; boxes tied with it stay alone, duplicates among them too.
        top = _score_order(xyxy, score)[0]
        claimed = (score < score[top]) | (xyxy == xyxy[top]).all(axis=1)
        claimed[top] = False
        owner = np.where(claimed, top, np.arange(n))
        return owner, owner
    owner = np.full(n, -1, np.int64)
    claimer = np.full(n, -1, np.int64)
    free = np.ones(n, bool)
    for i in _score_order(xyxy, score):
        if method != "nmm" and not free[i]:
            continue
        if free[i]:
            owner[i] = claimer[i] = i
            free[i] = False
        rest = np.flatnonzero(free)
        if len(rest) == 0:
            break
        hit = rest[_overlap(xyxy, area, int(i), rest, iou) >= threshold]
        if method == "nmm":
            hit = hit[(score[i] > score[hit]) | (xyxy[hit] == xyxy[i]).all(axis=1)]
        owner[hit], claimer[hit] = owner[i], i
        free[hit] = False
    return owner, claimer


def _fold_matches(u: np.ndarray, b: np.ndarray, iou: bool, threshold: float) -> np.ndarray:
    """SAHI's re-check of member boxes ``b`` against growing unions ``u`` (both ``(G, 4)`` float64)."""
    area_u = (u[:, 2] - u[:, 0]) * (u[:, 3] - u[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (np.minimum(u[:, 2:], b[:, 2:]) - np.maximum(u[:, :2], b[:, :2])).clip(min=0)
    inter = wh[:, 0] * wh[:, 1]
    denom = area_u + area_b - inter if iou else np.minimum(area_u, area_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom >= threshold


def _fold_one(u: list[float], b: list[float], iou: bool, threshold: float) -> bool:
    """`_fold_matches` for one pair in Python floats (the same IEEE double arithmetic)."""
    area_u = (u[2] - u[0]) * (u[3] - u[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    inter = max(min(u[2], b[2]) - max(u[0], b[0]), 0.0) * max(min(u[3], b[3]) - max(u[1], b[1]), 0.0)
    denom = area_u + area_b - inter if iou else min(area_u, area_b)
    if denom == 0:
        return inter > 0
    return inter / denom >= threshold


def _fold(
    xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, members: np.ndarray, lengths: np.ndarray,
    keepers: np.ndarray, iou: bool, threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold each group's members, in order, into its keeper.

    ``members`` lists every group's members back to back (``lengths`` per group, groups in the
    order of ``keepers``). Returns union boxes ``(G, 4)`` float64, classes ``(G,)`` and a
    ``merged`` flag per entry of ``members``.
    """
    union = xyxy[keepers].astype(np.float64)
    cls = class_id[keepers].copy()
    top = score[keepers]
    merged = np.zeros(len(members), bool)
    offsets = np.cumsum(lengths) - lengths
    order = np.argsort(-lengths, kind="stable")
    step = 0
    while True:
        active = order[: np.searchsorted(-lengths[order], -step, side="left")]
        if len(active) < _MIN_VECTOR_GROUPS:
            break
        entry = offsets[active] + step
        row = members[entry]
        box = xyxy[row].astype(np.float64)
        ok = _fold_matches(union[active], box, iou, threshold)
        g, row, box = active[ok], row[ok], box[ok]
        union[g, :2] = np.minimum(union[g, :2], box[:, :2])
        union[g, 2:] = np.maximum(union[g, 2:], box[:, 2:])
        tie = score[row] == top[g]
        cls[g[tie]] = class_id[row[tie]]
        merged[entry[ok]] = True
        step += 1
    # The few groups still folding finish in plain Python over lists gathered in one go.
    count = lengths[active] - step
    entries = np.repeat(offsets[active] + step - np.cumsum(count) + count, count) + np.arange(count.sum())
    rows = members[entries]
    boxes = xyxy[rows].astype(np.float64).tolist()
    tied = (score[rows] == np.repeat(top[active], count)).tolist()
    row_cls, done = class_id[rows].tolist(), []
    k = 0
    for g, c in zip(active.tolist(), count.tolist(), strict=True):
        u, cg = union[g].tolist(), cls[g]
        for b in boxes[k : k + c]:
            ok = _fold_one(u, b, iou, threshold)
            if ok:
                u = [min(u[0], b[0]), min(u[1], b[1]), max(u[2], b[2]), max(u[3], b[3])]
                cg = row_cls[k] if tied[k] else cg
            done.append(ok)
            k += 1
        union[g], cls[g] = u, cg
    merged[entries] = done
    return union, cls, merged


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
    rank[_score_order(xyxy, score)] = np.arange(n)
    bucket = _buckets(class_id, class_agnostic, partition)
    # Visiting order restricted to one bucket is that bucket's own order, so one pass serves all.
    found = _group(xyxy, score, bucket, rank, iou, threshold, method)
    if found is None:
        owner, claimer = np.arange(n), np.arange(n)
        by_class = np.argsort(bucket, kind="stable")
        for rows in np.split(by_class, np.flatnonzero(np.diff(bucket[by_class])) + 1):
            sub_rank = np.argsort(np.argsort(rank[rows]))
            own, claim = _group(xyxy[rows], score[rows], bucket[rows], sub_rank, iou, threshold, method)
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
    union, cls, member_merged = _fold(xyxy, score, class_id, members, lengths, keep, iou, threshold)
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

"""Which boxes merge with which: matching pairs, keepers and groups, SAHI's visiting order.

`sitesight.sliced.merge` calls `group_boxes` once for all boxes: every pair of boxes in one bucket
(class, frame) whose overlap (float32 IoU or IoS, SAHI's arithmetic) is ``>= threshold`` comes
from a sweep over horizontal strips, never an ``N x N`` matrix; NMS keepers come from rounds of
vectorised relaxation over those pairs; each box gets its owner (the keeper of its group) and its
claimer (the box that took it: the keeper, or for ``nmm`` the previous link of the chain).
Crowded inputs, where listing pairs would cost more than answering one keeper at a time, go row
by row (`groups_by_rows`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["score_order", "group_boxes", "groups_by_rows"]

# Candidate pairs examined per vectorised chunk, and in all; past the total the crowding is so
# high that answering one row at a time (few keepers claim almost everything) is cheaper.
_PAIR_CHUNK = 1 << 21
_PAIR_BUDGET = 1 << 24
# Up to this many boxes every pair is simply examined.
_SMALL = 192
# Relaxation rounds before the keepers still undecided are settled one by one.
_MAX_ROUNDS = 48


def score_order(xyxy: np.ndarray, score: np.ndarray) -> np.ndarray:
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


def group_boxes(
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
    return groups_by_rows(xyxy, score, area, iou, threshold, method)


def groups_by_rows(
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
        top = score_order(xyxy, score)[0]
        claimed = (score < score[top]) | (xyxy == xyxy[top]).all(axis=1)
        claimed[top] = False
        owner = np.where(claimed, top, np.arange(n))
        return owner, owner
    owner = np.full(n, -1, np.int64)
    claimer = np.full(n, -1, np.int64)
    free = np.ones(n, bool)
    for i in score_order(xyxy, score):
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

"""Which boxes of two models are the same object: pairs of boxes in the same frame, chunked over a
whole pool, and one-to-one greedy matching (`sitesight.mining.discrepancy` scores what is left).

Frames are laid out densely in chunks of similar box counts (``(C, Ka, 4)`` against ``(C, Kb, 4)``,
NaN padding) so a pair test runs on broadcast arrays for tens of thousands of frames at once.

Example:
    >>> import numpy as np
    >>> from sitesight.mining.pairing import greedy_match
    >>> greedy_match(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.5, 0.8]), 2, 2).tolist()
    [0, -1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sitesight.boxes import aligned_iou
from sitesight.mining.pool import FlatDetections

__all__ = ["frame_pair_hits", "greedy_match", "iou_test", "pair_iou", "match_runs"]

_MAX_CELLS = 1 << 21  # box pairs laid out per chunk (a few tens of MB of float32 temporaries)


def frame_pair_hits(
    off_a: np.ndarray,
    xyxy_a: np.ndarray,
    off_b: np.ndarray,
    xyxy_b: np.ndarray,
    test: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    max_cells: int = _MAX_CELLS,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ``(row of A, row of B)`` pairs of the same frame that pass ``test``, with its value.

    Frames are sorted by box count and processed in chunks laid out densely (``(C, Ka, 4)`` against
    ``(C, Kb, 4)``, NaN padding), so ``test`` runs on broadcast arrays without gathering pairs.

    Args:
        off_a, off_b: ``(F + 1,)`` offsets of two flat box sets over the same frames.
        xyxy_a, xyxy_b: ``(Na, 4)`` / ``(Nb, 4)`` float32 boxes.
        test: ``(A (C, Ka, 1, 4), B (C, 1, Kb, 4)) -> (mask (C, Ka, Kb) bool, value (C, Ka, Kb))``;
            padding entries are NaN and must fail the mask.
        max_cells: about this many ``Ka * Kb`` cells per chunk.

    Yields:
        ``(ia, ib, value)`` of the pairs whose mask is True.
    """
    na, nb = np.diff(off_a), np.diff(off_b)
    frames = np.flatnonzero((na > 0) & (nb > 0))
    cap = np.maximum(na, nb)[frames]
    order = np.argsort(cap, kind="stable")
    frames, cap = frames[order], cap[order]
    i = 0
    while i < frames.size:
        j = min(frames.size, i + max(1, max_cells // int(cap[i]) ** 2))
        while j - i > 1 and (j - i) * int(cap[j - 1]) ** 2 > max_cells:
            j = i + max(1, max_cells // int(cap[j - 1]) ** 2)
        chunk = frames[i:j]
        pad_a, rows_a = _dense(off_a, xyxy_a, chunk)
        pad_b, rows_b = _dense(off_b, xyxy_b, chunk)
        mask, value = test(pad_a[:, :, None, :], pad_b[:, None, :, :])
        c, p, q = np.nonzero(mask)
        yield rows_a[c, p], rows_b[c, q], np.broadcast_to(value, mask.shape)[c, p, q]
        i = j


def _dense(offsets: np.ndarray, xyxy: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, K, 4)`` float32 boxes (NaN padding) and ``(C, K)`` int64 rows (-1 padding) of ``frames``."""
    counts = offsets[frames + 1] - offsets[frames]
    k = int(counts.max())
    local = np.repeat(np.arange(frames.size), counts)
    within = np.arange(local.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = offsets[frames][local] + within
    pad = np.full((frames.size, k, 4), np.nan, np.float32)
    pad[local, within] = xyxy[rows]
    index = np.full((frames.size, k), -1, np.int64)
    index[local, within] = rows
    return pad, index


def iou_test(thr: float) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def test(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        iou = aligned_iou(a, b)  # padding rows (NaN boxes) come out 0
        return iou >= thr, iou

    return test


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return aligned_iou(np.asarray(a, np.float32), np.asarray(b, np.float32))


def greedy_match(ia: np.ndarray, ib: np.ndarray, weight: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """One-to-one matching, greedy by descending ``weight`` (ties: lower ``ia``, then lower ``ib``).

    Solved in rounds: every pair that is the best remaining pair of both its ends is taken at once
    (a locally dominant edge), which gives exactly the sequential greedy result with unique ranks.

    Args:
        ia, ib: ``(P,)`` candidate pairs (rows of A and of B).
        weight: ``(P,)`` pair weights (higher first).
        n_a, n_b: numbers of rows.

    Returns:
        ``(n_a,)`` int64 matched B row per A row, -1 when unmatched.
    """
    match = np.full(n_a, -1, np.int64)
    if ia.size == 0:
        return match
    order = np.lexsort((ib, ia, -np.asarray(weight, np.float64)))
    ia, ib = ia[order], ib[order]
    rank = np.arange(ia.size)
    big = ia.size
    while ia.size:
        best_a = np.full(n_a, big, np.int64)
        best_b = np.full(n_b, big, np.int64)
        np.minimum.at(best_a, ia, rank)
        np.minimum.at(best_b, ib, rank)
        take = (best_a[ia] == rank) & (best_b[ib] == rank)
        match[ia[take]] = ib[take]
        used_a = np.zeros(n_a, bool)
        used_b = np.zeros(n_b, bool)
        used_a[ia[take]] = True
        used_b[ib[take]] = True
        alive = ~(used_a[ia] | used_b[ib])
        ia, ib, rank = ia[alive], ib[alive], rank[alive]
    return match


def match_runs(a: FlatDetections, b: FlatDetections, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """``(a_match, a_iou)``: greedy class-preferring IoU matching of A rows to B rows per frame."""
    hits = list(frame_pair_hits(a.offsets, a.xyxy, b.offsets, b.xyxy, iou_test(max(iou, 1e-6))))
    ia = np.concatenate([h[0] for h in hits]) if hits else np.zeros(0, np.int64)
    ib = np.concatenate([h[1] for h in hits]) if hits else np.zeros(0, np.int64)
    v = np.concatenate([h[2] for h in hits]).astype(np.float32) if hits else np.zeros(0, np.float32)
    a_match = greedy_match(ia, ib, v + (a.class_id[ia] == b.class_id[ib]), len(a), len(b))
    a_iou = np.zeros(len(a), np.float32)
    matched = np.flatnonzero(a_match >= 0)
    a_iou[matched] = pair_iou(a.xyxy[matched], b.xyxy[a_match[matched]])
    return a_match, a_iou

"""Folding a merge group into one box, SAHI's way: each member, in order, joins the growing union
only if it still matches it (float64); the class follows the last member tied with the keeper's score.

`fold_groups` folds all groups at once, one member per step across every group still folding,
and finishes the few long groups in plain Python (the same IEEE double arithmetic).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fold_groups"]

# Below this many groups still folding, a plain Python loop beats one numpy call per step.
_MIN_VECTOR_GROUPS = 16


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


def fold_groups(
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

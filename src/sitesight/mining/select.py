"""Which frames to label: top-k by discrepancy under a budget, spread over cameras and time.

`select_top` walks the frames by descending score and takes a frame unless

* it is not eligible (e.g. MAD's both-confident filter: no dispute both models are sure about),
* its score is not above ``min_score`` (nothing to learn from a frame both models agree on),
* its camera already gave ``max_per_window`` frames in the same time window (fixed windows of
  ``window_s`` seconds from the epoch; frames with an unknown camera or time are not capped),
* it is a near duplicate of a frame already taken: 64-bit perceptual hashes (e.g.
  `sitesight.curation.dedup.phash_file`) within ``max_hamming`` bits,

until ``budget`` frames are taken. `random_control` draws the random set of the same size from the
rest of the pool that the verdict compares the mined set with.

Example:
    >>> import numpy as np
    >>> from sitesight.mining.select import Diversity, select_top
    >>> scores = np.array([5.0, 4.0, 3.0, 2.0])
    >>> cams = np.array(["c1", "c1", "c2", "c1"], object)
    >>> ts = np.array([0.0, 10.0, 0.0, 7200.0])
    >>> select_top(scores, budget=3, camera=cams, timestamp=ts, diversity=Diversity(max_per_window=1)).frames.tolist()
    [0, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sitesight.errors import InputError

__all__ = ["Diversity", "Selection", "select_top", "random_control"]


@dataclass(frozen=True)
class Diversity:
    """Diversity constraints: at most ``max_per_window`` frames per camera and ``window_s`` window,
    no two frames within ``max_hamming`` bits of perceptual hash (when hashes are given)."""

    window_s: float = 3600.0
    max_per_window: int = 3
    max_hamming: int = 6

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.max_per_window < 1 or self.max_hamming < 0:
            raise InputError(f"diversity needs window_s > 0, max_per_window >= 1, max_hamming >= 0; got {self}")


@dataclass(frozen=True)
class Selection:
    """Selected frames (indices into the pool, best first) and why the others above them were passed over."""

    frames: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)


def _popcount64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)


def select_top(
    scores: np.ndarray,
    *,
    budget: int,
    camera: np.ndarray | None = None,
    timestamp: np.ndarray | None = None,
    diversity: Diversity = Diversity(),
    hashes: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    min_score: float = 0.0,
) -> Selection:
    """Top ``budget`` frames by ``scores`` under the diversity rules (module notes).

    Args:
        scores: ``(F,)`` float discrepancy per frame (higher = harder).
        budget: frames to take at most.
        camera: ``(F,)`` camera ids (None entries: unknown).
        timestamp: ``(F,)`` float seconds (NaN: unknown).
        diversity: window and near-duplicate settings.
        hashes: ``(F,)`` uint64 perceptual hashes, or None to skip near-duplicate suppression.
        eligible: ``(F,)`` bool, frames allowed at all (e.g. ``confident > 0``).
        min_score: frames must score strictly above this.

    Returns:
        `Selection` with ``frames`` in the order taken (descending score, ties by index).
    """
    scores = np.asarray(scores, np.float64)
    n = scores.size
    if budget < 0:
        raise InputError(f"budget must be >= 0, got {budget}", where="budget")
    ok = scores > min_score
    skipped = {"not_above_min_score": int((~ok).sum()), "not_eligible": 0, "window_cap": 0, "near_duplicate": 0}
    if eligible is not None:
        eligible = np.asarray(eligible, bool)
        skipped["not_eligible"] = int((ok & ~eligible).sum())
        ok &= eligible
    order = np.flatnonzero(ok)
    order = order[np.argsort(-scores[order], kind="stable")]
    camera = np.full(n, None, object) if camera is None else np.asarray(camera, object)
    timestamp = np.full(n, np.nan) if timestamp is None else np.asarray(timestamp, np.float64)
    window = np.floor(timestamp / diversity.window_s)
    hashes = None if hashes is None else np.asarray(hashes, np.uint64)
    taken: list[int] = []
    per_window: dict[tuple[str, float], int] = {}
    taken_hashes = np.zeros(0, np.uint64)
    for f in order.tolist():
        if len(taken) >= budget:
            break
        key = None
        if camera[f] is not None and not np.isnan(window[f]):
            key = (str(camera[f]), float(window[f]))
            if per_window.get(key, 0) >= diversity.max_per_window:
                skipped["window_cap"] += 1
                continue
        if hashes is not None and taken_hashes.size:
            if _popcount64(taken_hashes ^ hashes[f]).min() <= diversity.max_hamming:
                skipped["near_duplicate"] += 1
                continue
        taken.append(f)
        if key is not None:
            per_window[key] = per_window.get(key, 0) + 1
        if hashes is not None:
            taken_hashes = np.append(taken_hashes, hashes[f])
    return Selection(np.array(taken, np.int64), skipped)


def random_control(n_frames: int, size: int, *, exclude: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """``size`` frame indices drawn uniformly without replacement from the frames not in ``exclude``.

    Returns fewer when the rest of the pool is smaller; sorted ascending.
    """
    rest = np.setdiff1d(np.arange(n_frames), np.asarray([] if exclude is None else exclude, np.int64))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rest, size=min(size, rest.size), replace=False)).astype(np.int64)

"""Train/val/test splits that do not leak: whole groups go to one subset, classes stay balanced.

Groups say which images must stay together. They come from any mix of:

* ``camera`` — every frame of one camera;
* ``time`` — frames of one camera less than ``time_window_s`` apart, chained (a frame joins the
  group of the previous frame of its camera when the gap is below the window), so two frames
  closer than the window can never straddle subsets; frames without a timestamp stand alone;
* ``source`` — augmented copies of one photo, by a file-stem rule: ``source_pattern`` is matched
  (case-insensitively) against the stem and its ``source`` group names the original, compared
  case-insensitively (the default strips Roboflow's ``_jpg.rf.<hash>`` / ``_JPG.rf.<hash>`` and
  suffixes such as ``_aug3``, ``_flip``, ``-rot90``, ``_copy``);
* ``phash`` — the same picture by content: images whose perceptual hashes are within
  ``hash_distance`` bits under any of the 8 flips/quarter-turns (flipped, rotated, re-encoded,
  resized or re-lit copies), linked transitively.

Several keys combine as a union: two images are together when any key puts them together. A key
that no image carries (``camera`` with neither `Sample.camera_id` nor a file name the capture
pattern reads) is an error that says so, never a silent single group; images that lack it while
others have it stand alone and are counted in `SplitPlan.missing`.

The assignment generalises scikit-learn's ``StratifiedGroupKFold`` greedy to unequal fractions and
to detection labels (boxes per class, plus the image count as one more column): groups, shuffled by
``seed`` and then ordered by the largest share of any column they hold, each go to the subset whose
per-column shares move closest (least squares) to its target fraction. Then single-group moves that
lower the same squared error are made, best first, until none is left, so that fractions by image
and by every class land within about one group of their targets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.curation.captures import CAPTURE_NAME_PATTERN, Capture, captures_from_dataset
from sitesight.dataset import Dataset
from sitesight.errors import InputError

__all__ = [
    "SplitPlan",
    "plan_split",
    "content_hashes",
    "SOURCE_STEM_PATTERN",
    "GROUP_KEYS",
    "groups_by_camera",
    "groups_by_time_window",
    "groups_by_source_stem",
    "groups_by_phash",
    "combine_groups",
    "stratified_group_split",
    "split_dataset",
]

SOURCE_STEM_PATTERN = (
    r"^(?P<source>.+?)(?:_(?:jpe?g|png|bmp))?(?:\.rf\.[0-9a-fA-F]+)?"
    r"(?:[_-](?:aug|augmented|copy|flip|hflip|vflip|rot|rot90|rot180|rot270|crop|bright|dark|blur|noise|mosaic)\d*)*$"
)
GROUP_KEYS = ("camera", "time", "source", "phash")


def _labels(keys: Sequence[object]) -> np.ndarray:
    index: dict[object, int] = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], np.int64)


def groups_by_camera(captures: Sequence[Capture]) -> np.ndarray:
    """``(N,)`` int64 group id per capture: one group per camera."""
    return _labels([c.camera_id for c in captures])


def groups_by_time_window(captures: Sequence[Capture], window_s: float) -> np.ndarray:
    """``(N,)`` int64 group ids chaining frames of one camera less than ``window_s`` seconds apart."""
    groups = np.empty(len(captures), np.int64)
    next_id = 0
    by_camera: dict[str, list[int]] = {}
    for i, c in enumerate(captures):
        by_camera.setdefault(c.camera_id, []).append(i)
    for members in by_camera.values():
        timed = sorted((i for i in members if captures[i].timestamp is not None), key=lambda i: captures[i].timestamp)
        previous: float | None = None
        for i in timed:
            ts = float(captures[i].timestamp)  # type: ignore[arg-type]
            if previous is None or ts - previous >= window_s:
                next_id += 1
            groups[i] = next_id
            previous = ts
        for i in members:
            if captures[i].timestamp is None:
                next_id += 1
                groups[i] = next_id
    return _labels(groups.tolist())


def groups_by_source_stem(paths: Sequence[Path | str], pattern: str = SOURCE_STEM_PATTERN) -> np.ndarray:
    """``(N,)`` int64 group ids by the original photo's name (see module doc); folders are ignored."""
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise InputError(f"invalid source pattern {pattern!r}: {exc}") from None
    keys = []
    for p in paths:
        stem = Path(p).stem
        match = regex.match(stem)
        keys.append((match.group("source") if match and match.groupdict().get("source") else stem).casefold())
    return _labels(keys)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def content_hashes(path: Path | str) -> np.ndarray:
    """``(8,)`` uint64 perceptual hashes of an image under the 8 flips/quarter-turns (the first is
    the picture as it is; imagehash's ``phash`` of the 32x32 grey thumbnail)."""
    from PIL import Image

    from sitesight.curation.dedup import phash_array
    from sitesight.images import read_image_gray_small

    grey = read_image_gray_small(path, 256)
    small = np.asarray(Image.fromarray(grey).resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    views = [np.rot90(small, k) for k in range(4)] + [np.rot90(small[:, ::-1], k) for k in range(4)]
    return np.array([phash_array(v) for v in views], np.uint64)


def groups_by_phash(hashes: Sequence[int] | np.ndarray, max_distance: int = 4) -> np.ndarray:
    """``(N,)`` int64 group ids linking images whose 64-bit hashes differ in <= ``max_distance`` bits.

    ``hashes`` is ``(N,)``, or ``(N, T)`` with each image's hashes under T transforms (see
    `content_hashes`): two images are then close when the first hash of one is within the
    distance of any hash of the other (so a mirrored or rotated copy links to its original).
    """
    table = np.array([[int(v) for v in np.atleast_1d(row)] for row in hashes], np.uint64).reshape(len(hashes), -1)
    h = table[:, 0]
    parent = np.arange(len(h))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    rows = max(1, (1 << 22) // max(len(h) * table.shape[1], 1))
    for r in range(0, len(h), rows):
        close = (_popcount(h[r : r + rows, None, None] ^ table[None, :, :]) <= max_distance).any(axis=2)
        for a, b in zip(*np.nonzero(close), strict=True):
            ra, rb = find(int(a) + r), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return _labels([find(i) for i in range(len(h))])


def combine_groups(*labelings: np.ndarray) -> np.ndarray:
    """Union of several groupings: images sharing a label in any of them end in one group."""
    if not labelings:
        raise ValueError("combine_groups: need at least one grouping")
    n = len(labelings[0])
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for labels in labelings:
        first: dict[int, int] = {}
        for i, g in enumerate(np.asarray(labels).tolist()):
            j = first.setdefault(g, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return _labels([find(i) for i in range(n)])


def stratified_group_split(
    class_counts: np.ndarray, groups: np.ndarray, fractions: Sequence[float], *, seed: int = 0
) -> np.ndarray:
    """Assign every image to a subset so that no group is split and class shares follow ``fractions``.

    Args:
        class_counts: ``(N, C)`` boxes (or labels) of each class per image.
        groups: ``(N,)`` group id per image.
        fractions: ``(K,)`` target share of each subset, positive, normalised to sum 1.
        seed: shuffles groups before the (stable) ordering, as ``StratifiedGroupKFold(shuffle=True)``.

    Returns:
        ``(N,)`` int64 subset index per image.
    """
    counts = np.asarray(class_counts, np.float64).reshape(len(groups), -1)
    frac = np.asarray(fractions, np.float64)
    if frac.ndim != 1 or len(frac) == 0 or np.any(frac <= 0):
        raise InputError(f"split fractions must be positive, got {list(fractions)}")
    frac = frac / frac.sum()
    group_ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    columns = np.concatenate([counts, np.ones((len(groups), 1))], axis=1)  # image count is one more column
    per_group = np.zeros((len(group_ids), columns.shape[1]))
    np.add.at(per_group, inverse, columns)
    totals = per_group.sum(axis=0)
    share = per_group[:, totals > 0] / totals[totals > 0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(group_ids))
    order = order[np.argsort(-share[order].max(axis=1), kind="stable")]
    current = np.zeros((len(frac), share.shape[1]))
    assign = np.empty(len(group_ids), np.int64)
    for g in order:
        before = ((current - frac[:, None]) ** 2).sum(axis=1)
        after = ((current + share[g] - frac[:, None]) ** 2).sum(axis=1)
        delta = after - before
        best = np.flatnonzero(np.isclose(delta, delta.min(), rtol=0, atol=1e-12))
        # ties: the subset furthest below its image-count target
        k = best[np.argmax(frac[best] - current[best, -1])]
        assign[g] = k
        current[k] += share[g]
    _improve(assign, share, current, frac)
    return assign[inverse]


def _improve(assign: np.ndarray, share: np.ndarray, current: np.ndarray, frac: np.ndarray, max_moves: int = 100_000) -> None:
    """Move single groups to another subset while that lowers Σ (share − target)², best move first
    (in place). Moving g from a to b changes the error by Σ_c 2·s_gc·(dev_bc − dev_ac + s_gc)."""
    rows = np.arange(len(assign))
    square = 2 * (share**2).sum(axis=1)
    for _ in range(max_moves):
        dev = current - frac[:, None]  # (K, C)
        along = share @ dev.T  # (G, K): Σ_c s_gc·dev_kc
        delta = 2 * (along - along[rows, assign][:, None]) + square[:, None]
        delta[rows, assign] = np.inf
        g, k = np.unravel_index(np.argmin(delta), delta.shape)
        if not delta[g, k] < -1e-12:
            return
        current[assign[g]] -= share[g]
        current[k] += share[g]
        assign[g] = k


@dataclass(frozen=True)
class SplitPlan:
    """Where every image goes, and why.

    Args:
        names: subset names in order.
        fractions: ``(K,)`` target shares (normalised).
        assign: ``(N,)`` subset index per image.
        groups: ``(N,)`` group id per image (images that must stay together share one).
        n_groups: number of groups.
        missing: group key → images that lacked it (they stand alone).
        shares: ``(K, 1 + C)`` share of the images (column 0) and of each class's boxes per subset.
    """

    names: tuple[str, ...]
    fractions: np.ndarray
    assign: np.ndarray
    groups: np.ndarray
    n_groups: int
    missing: dict[str, int] = field(default_factory=dict)
    shares: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def summary(self, class_names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: groups, missing keys, and per subset images, boxes per class and the shares."""
        counts = np.bincount(self.assign, minlength=len(self.names))
        subsets = {}
        for k, name in enumerate(self.names):
            subsets[name] = {"images": int(counts[k]), "target": round(float(self.fractions[k]), 6),
                             "image_share": round(float(self.shares[k, 0]), 6),
                             "class_share": {c: round(float(v), 6) for c, v in zip(class_names, self.shares[k, 1:], strict=True)}}  # fmt: skip
        return {"groups": self.n_groups, "missing": dict(self.missing), "subsets": subsets}


def _camera_missing(dataset: Dataset, name_pattern: str | None) -> np.ndarray:
    """``(N,)`` True where neither the sample nor its file name gives a camera id."""
    from sitesight.curation.captures import parse_capture_name

    out = np.zeros(len(dataset), bool)
    for i, s in enumerate(dataset.samples):
        if s.camera_id is None:
            out[i] = name_pattern is None or parse_capture_name(str(s.path), name_pattern)[0] is None
    return out


def plan_split(
    dataset: Dataset,
    *,
    fractions: Mapping[str, float] | None = None,
    group_by: Sequence[str] = ("camera",),
    time_window_s: float = 60.0,
    source_pattern: str = SOURCE_STEM_PATTERN,
    hash_distance: int = 4,
    name_pattern: str | None = CAPTURE_NAME_PATTERN,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SplitPlan:
    """Plan a split without leaking groups (see module doc); `split_dataset` applies it.

    Args:
        dataset: the labelled set.
        fractions: subset name → share; default ``{"train": 0.8, "val": 0.1, "test": 0.1}``.
        group_by: any of `GROUP_KEYS`; empty = every image is its own group.
        time_window_s: the ``time`` key's window.
        source_pattern: the ``source`` key's stem regex (named group ``source``; case-insensitive).
        hash_distance: the ``phash`` key's bit distance (of 64).
        name_pattern: file-name regex for camera and time when samples do not carry them.
        seed: shuffling seed.
        progress: called with 1 per image hashed (``phash``).

    Raises:
        InputError: an unknown key, bad fractions, or a key that no image carries.
    """
    fractions = dict(fractions or {"train": 0.8, "val": 0.1, "test": 0.1})
    unknown = sorted(set(group_by) - set(GROUP_KEYS))
    if unknown:
        raise InputError(f"split: unknown group keys {unknown}; choose from {list(GROUP_KEYS)}")
    captures = captures_from_dataset(dataset, pattern=name_pattern, use_mtime="time" in group_by)
    labelings = [np.arange(len(dataset))]
    missing: dict[str, int] = {}
    if "camera" in group_by or "time" in group_by:
        lacking = _camera_missing(dataset, name_pattern)
        if len(dataset) and lacking.all():
            raise InputError(f"--group-by {'camera' if 'camera' in group_by else 'time'}: none of the {len(dataset)} images "
                             "has a camera id (no Sample.camera_id, and no file name matches the capture pattern "
                             "camera_YYYYmmddTHHMMSS); use --group-by source, phash or none")  # fmt: skip
        if lacking.any():
            missing["camera"] = int(lacking.sum())
        own = np.flatnonzero(lacking)  # frames without a camera stand alone, not in their folder's group
        if "camera" in group_by:
            cam = groups_by_camera(captures)
            cam[own] = cam.max(initial=0) + 1 + np.arange(len(own))
            labelings.append(cam)
        if "time" in group_by:
            tw = groups_by_time_window(captures, time_window_s)
            tw[own] = tw.max(initial=0) + 1 + np.arange(len(own))
            labelings.append(tw)
    if "source" in group_by:
        labelings.append(groups_by_source_stem([c.path for c in captures], source_pattern))
    if "phash" in group_by:
        hashes = []
        for c in captures:
            hashes.append(content_hashes(c.path))
            if progress is not None:
                progress(1)
        labelings.append(groups_by_phash(np.array(hashes, np.uint64).reshape(len(captures), 8), hash_distance))
    groups = combine_groups(*labelings)
    counts = np.stack([np.bincount(s.gt.class_id, minlength=len(dataset.class_names)) for s in dataset.samples]) \
        if len(dataset) else np.zeros((0, len(dataset.class_names)))
    assign = stratified_group_split(counts, groups, list(fractions.values()), seed=seed)
    frac = np.asarray(list(fractions.values()), np.float64)
    columns = np.concatenate([np.ones((len(dataset), 1)), counts], axis=1)
    totals = np.maximum(columns.sum(axis=0), 1)
    shares = np.stack([columns[assign == k].sum(axis=0) / totals for k in range(len(frac))])
    return SplitPlan(names=tuple(fractions), fractions=frac / frac.sum(), assign=assign, groups=groups,
                     n_groups=int(groups.max(initial=-1)) + 1, missing=missing, shares=shares)  # fmt: skip


def split_dataset(
    dataset: Dataset,
    *,
    fractions: Mapping[str, float] | None = None,
    group_by: Sequence[str] = ("camera",),
    time_window_s: float = 60.0,
    source_pattern: str = SOURCE_STEM_PATTERN,
    hash_distance: int = 4,
    name_pattern: str | None = CAPTURE_NAME_PATTERN,
    seed: int = 0,
    plan: SplitPlan | None = None,
) -> dict[str, Dataset]:
    """Split a dataset into named subsets without leaking groups (see module doc and `plan_split`).

    Returns:
        Subset name → `Dataset` whose samples have ``subset`` set, in the original order.
    """
    if plan is None:
        plan = plan_split(dataset, fractions=fractions, group_by=group_by, time_window_s=time_window_s,
                          source_pattern=source_pattern, hash_distance=hash_distance, name_pattern=name_pattern, seed=seed)  # fmt: skip
    return {
        name: dataset.with_samples([s.replace(subset=name) for s, a in zip(dataset.samples, plan.assign, strict=True) if a == k])
        for k, name in enumerate(plan.names)
    }

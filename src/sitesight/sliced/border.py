"""From raw sliced boxes to final detections: border-cut rule, merge, score fusion, gate.

Two things SAHI-style merging misses, done here on top of `sitesight.sliced.merge`:

* **Slice-border cuts.** A slice cuts a worker who stands across its edge; the detector answers
  with a box that touches the slice's border (within ``tol`` px) on a side where the slice border
  is not the frame's border. When a neighbouring slice or the full-frame pass saw the same object
  uncut (an uncut box of the same class that contains the cut box with intersection-over-smaller
  ``>= twin_ios``), the cut box loses: it is dropped before merging, so it can neither survive NMS
  as a duplicate nor drag an NMM union off the object. A cut box with no uncut twin is kept.
* **Score fusion** (optional). An object inside the overlap of several slices is seen several
  times; when they agree the score rises: ``s + weight * (1 - s) * (k - 1) / (m - 1)`` where ``k``
  sources (slices or the full frame) found a matching raw box and ``m`` sources could have seen
  it (slices containing the box, plus the full frame). A box only one source could see keeps ``s``.

`postprocess_frame` chains confidence filter → border rule → merge → fusion → gate for one frame:
the per-frame reference of `sitesight.sliced.postprocess.postprocess`, which runs the same stages
over every frame of a run at once (and is what every command calls).

Example:
    >>> from sitesight import Detections
    >>> from sitesight.sliced.border import border_cut_mask
    >>> import numpy as np
    >>> slices = np.array([[0, 0, 640, 640], [512, 0, 1152, 640]])
    >>> raw = Detections(xyxy=[[600, 10, 640, 90], [600, 10, 660, 90]], attributes={"source": [0, 1]})
    >>> border_cut_mask(raw, slices, (1152, 640)).tolist()
    [True, False]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sitesight.boxes import pairwise_ios, pairwise_iou
from sitesight.detections import Detections
from sitesight.sliced.gate import GateParams, gate_mask

__all__ = [
    "MergeSpec",
    "border_cut_mask",
    "annotate_border",
    "drop_cut_twins",
    "fuse_scores",
    "merge_by_confidence",
    "postprocess_frame",
    "slices_of",
]

_HELPER_ATTRIBUTES = ("border_cut", "twin_score")


@dataclass(frozen=True)
class MergeSpec:
    """One merge setting: ``method`` (nms, nmm, greedy_nmm), ``metric`` (iou, ios), ``threshold``."""

    method: str = "greedy_nmm"
    metric: str = "ios"
    threshold: float = 0.5
    class_agnostic: bool = False

    def __str__(self) -> str:
        return f"{self.method}/{self.metric}@{self.threshold:g}" + ("/agnostic" if self.class_agnostic else "")


def slices_of(image_wh: tuple[int, int], parameters: Mapping[str, Any]) -> np.ndarray:
    """``(K, 4)`` int64 slice windows of a frame, rebuilt from a run's manifest ``parameters``."""
    from sitesight.sliced.slicing import slice_grid

    if "slice_wh" not in parameters:
        return np.zeros((0, 4), np.int64)
    return slice_grid(tuple(image_wh), slice_wh=tuple(parameters["slice_wh"]), overlap_ratio=tuple(parameters["overlap_ratio"]))


def _source(raw: Detections) -> np.ndarray:
    return np.asarray(raw.attributes.get("source", np.full(len(raw), -1)), np.int64)


def border_cut_mask(raw: Detections, slices: np.ndarray, image_wh: tuple[int, int], *, tol: float = 2.0) -> np.ndarray:
    """``(N,)`` bool: raw boxes touching their slice's border where that border is inside the frame.

    Args:
        raw: raw boxes in frame pixels with ``attributes["source"]`` (slice index, -1 = full frame).
        slices: ``(K, 4)`` slice windows the sources index into.
        image_wh: frame ``(width, height)``.
        tol: a box side within ``tol`` pixels of the slice side counts as touching it.
    """
    source = _source(raw)
    cut = np.zeros(len(raw), bool)
    from_slice = (source >= 0) & (source < len(slices))
    if not from_slice.any():
        return cut
    s = np.asarray(slices, np.float32)[source[from_slice]]
    b = raw.xyxy[from_slice]
    w, h = image_wh
    cut[from_slice] = (
        ((b[:, 0] <= s[:, 0] + tol) & (s[:, 0] > 0))
        | ((b[:, 1] <= s[:, 1] + tol) & (s[:, 1] > 0))
        | ((b[:, 2] >= s[:, 2] - tol) & (s[:, 2] < w))
        | ((b[:, 3] >= s[:, 3] - tol) & (s[:, 3] < h))
    )
    return cut


def annotate_border(
    raw: Detections,
    slices: np.ndarray,
    image_wh: tuple[int, int],
    *,
    tol: float = 2.0,
    twin_ios: float = 0.6,
    class_agnostic: bool = False,
) -> Detections:
    """Raw boxes with ``border_cut`` (bool) and ``twin_score`` (float32) attributes added.

    ``twin_score`` is the best score of an uncut box from another source that contains the cut box
    (intersection over smaller ``>= twin_ios``, same class unless agnostic), -1 when there is none
    or the box is not cut. A cut box loses at confidence ``c`` exactly when ``twin_score >= c``,
    so the pairing is done once and every confidence of a sweep reuses it.
    """
    cut = border_cut_mask(raw, slices, image_wh, tol=tol)
    twin = np.full(len(raw), -1.0, np.float32)
    if cut.any() and (~cut).any():
        source = _source(raw)
        ci, ui = np.flatnonzero(cut), np.flatnonzero(~cut)
        match = pairwise_ios(raw.xyxy[ci], raw.xyxy[ui]) >= twin_ios
        match &= source[ci][:, None] != source[ui][None, :]
        if not class_agnostic:
            match &= raw.class_id[ci][:, None] == raw.class_id[ui][None, :]
        scores = np.where(match, raw.score[ui][None, :], -1.0)
        twin[ci] = scores.max(axis=1)
    return raw.with_attributes(border_cut=cut, twin_score=twin)


def drop_cut_twins(annotated: Detections, conf: float) -> Detections:
    """Boxes with ``score >= conf``, minus cut boxes whose uncut twin also passes ``conf``."""
    keep = annotated.score >= conf
    if "twin_score" in annotated.attributes:
        keep &= ~(annotated.attributes["border_cut"] & (annotated.attributes["twin_score"] >= conf))
    return annotated[keep]


def merge_by_confidence(
    annotated: Detections, confs: Sequence[float], merge_spec: MergeSpec = MergeSpec()
) -> list[Detections]:
    """`drop_cut_twins` then `sitesight.sliced.merge.merge` at every confidence, grouping once where that is exact.

    NMS and greedy NMM visit boxes by score, and a box's fate (kept, or the keeper it joins)
    depends only on boxes visited before it, which score at least as high; a group's members fold
    into its union in visiting order, so the members that pass a higher ``c`` fold exactly as they
    did at the lowest confidence. So where the input at ``c`` is the lowest confidence's input
    filtered by score, the result at ``c`` is the lowest confidence's grouping restricted to scores
    ``>= c``, with unions rebuilt from the members left: one grouping serves every confidence. The
    border rule can break that premise (a cut box whose uncut twin scores between the lowest
    confidence and ``c`` is back at ``c``); frames holding such a box are merged again at ``c``.
    ``nmm`` chains fold in claim order, not score order: it is merged once per confidence.

    Args:
        annotated: raw boxes of one or many frames with an int ``attributes["frame"]`` (frames are
            merged apart: boxes of different frames never merge) and, for the border rule, the
            `annotate_border` attributes; an int ``attributes["row"]`` is carried through too.
        confs: confidence thresholds.
        merge_spec: merge method, metric, threshold, class-awareness.

    Returns:
        Per confidence, what ``merge(drop_cut_twins(annotated, conf))`` returns per frame, with only
        the ``frame`` (and ``row``: the keeper's) attributes; boxes of one frame are in `merge`'s
        order, frames may come in any order.
    """
    from sitesight.sliced.merge import merge, merge_groups

    spec = merge_spec
    if "frame" not in annotated.attributes:
        raise ValueError("merge_by_confidence: annotated needs a 'frame' attribute (zeros for a single frame)")
    frame = annotated.attributes["frame"]
    carried = [k for k in ("frame", "row") if k in annotated.attributes]

    def plain(det: Detections) -> Detections:
        return det.replace(attributes={k: det.attributes[k] for k in carried})

    def merged_at(det: Detections, conf: float) -> Detections:
        det = plain(drop_cut_twins(det, conf))
        return merge(det, method=spec.method, metric=spec.metric, threshold=spec.threshold,
                     class_agnostic=spec.class_agnostic, partition=det.attributes["frame"])

    if spec.method == "nmm" or len(confs) == 0:
        return [merged_at(annotated, c) for c in confs]
    low = min(confs)
    base = plain(drop_cut_twins(annotated, low))
    groups = merge_groups(base, method=spec.method, metric=spec.metric, threshold=spec.threshold,
                          class_agnostic=spec.class_agnostic, partition=base.attributes["frame"])
    out = []
    for conf in confs:
        det = _restrict_groups(base, groups, conf, spec.method)
        if "twin_score" in annotated.attributes:
            twin = annotated.attributes["twin_score"]
            back = annotated.attributes["border_cut"] & (annotated.score >= conf) & (twin >= low) & ~(twin >= conf)
            if back.any():
                redo = np.unique(frame[back])
                det = Detections.concat([det[~np.isin(det.attributes["frame"], redo)],
                                         merged_at(annotated[np.isin(frame, redo)], conf)])
        out.append(det)
    return out


def _restrict_groups(base: Detections, groups: Any, conf: float, method: str) -> Detections:
    """The merge of ``base[base.score >= conf]`` from the grouping of all of ``base`` (see
    `merge_by_confidence`); ``method`` is ``nms`` or ``greedy_nmm``."""
    passed = base.score >= conf
    keep = groups.keep[passed[groups.keep]]
    if method == "nms" or len(keep) == 0:
        return base[keep]
    new_group = np.full(len(groups.keep), -1, np.int64)
    new_group[passed[groups.keep]] = np.arange(len(keep))
    group = new_group[groups.group]
    rows = np.flatnonzero(groups.merged & passed & (group >= 0))
    g = group[rows]
    union = base.xyxy[keep].copy()
    for col, reduce in ((0, np.minimum), (1, np.minimum), (2, np.maximum), (3, np.maximum)):
        reduce.at(union[:, col], g, base.xyxy[rows, col])
    class_id = base.class_id[keep].copy()
    # SAHI's class rule: the last merged member (in visiting order) tied with its keeper's score
    tied = rows[(base.score[rows] == base.score[keep][g]) & ~np.isin(rows, keep)]
    if len(tied):
        b = base.xyxy[tied]
        tied = tied[np.lexsort((tied, b[:, 3], b[:, 2], b[:, 1], b[:, 0], group[tied]))]
        last = np.r_[group[tied][1:] != group[tied][:-1], True]
        class_id[group[tied][last]] = base.class_id[tied][last]
    return Detections(xyxy=union, score=base.score[keep], class_id=class_id,
                      attributes={k: v[keep] for k, v in base.attributes.items()})


def fuse_scores(
    merged: Detections,
    raw: Detections,
    slices: np.ndarray,
    *,
    metric: str = "ios",
    threshold: float = 0.5,
    weight: float = 0.5,
    full_frame: bool = True,
    class_agnostic: bool = False,
) -> Detections:
    """Raise the scores of merged boxes that several slices agree on (formula in the module doc).

    Args:
        merged: merged boxes of one frame.
        raw: the raw boxes they were merged from, with ``attributes["source"]``.
        slices: ``(K, 4)`` slice windows of the frame.
        metric, threshold: how a raw box must overlap a merged box to count as agreeing.
        weight: 0 leaves scores unchanged; 1 lifts a box all sources agree on to score 1.
        full_frame: the run had a full-frame pass (it counts as one more source).
    """
    if len(merged) == 0 or len(raw) == 0 or weight == 0:
        return merged
    overlap = (pairwise_ios if metric == "ios" else pairwise_iou)(merged.xyxy, raw.xyxy) >= threshold
    if not class_agnostic:
        overlap &= merged.class_id[:, None] == raw.class_id[None, :]
    source = _source(raw)
    sources = np.unique(source)
    k = np.stack([(overlap & (source == s)[None, :]).any(axis=1) for s in sources], axis=1).sum(axis=1)
    s = np.asarray(slices, np.float32).reshape(-1, 4)
    b = merged.xyxy
    inside = (b[:, None, 0] >= s[None, :, 0]) & (b[:, None, 1] >= s[None, :, 1])
    inside &= (b[:, None, 2] <= s[None, :, 2]) & (b[:, None, 3] <= s[None, :, 3])
    m = inside.sum(axis=1) + int(full_frame)
    k = np.minimum(k, m)
    agreement = np.where(m >= 2, (k - 1) / np.maximum(m - 1, 1), 0.0).clip(0, 1)
    score = merged.score + weight * (1 - merged.score) * agreement
    return merged.replace(score=score.astype(np.float32))


def postprocess_frame(
    raw: Detections,
    slices: np.ndarray,
    image_wh: tuple[int, int],
    *,
    conf: float,
    merge_spec: MergeSpec = MergeSpec(),
    border: bool = True,
    fuse_weight: float = 0.0,
    gate: GateParams | None = None,
) -> tuple[Detections, int]:
    """Raw boxes of one frame → final detections, and how many boxes the gate removed.

    Args:
        raw: raw boxes (``source`` attribute) or the output of `annotate_border` (reused as is).
        slices: ``(K, 4)`` slice windows of the frame (`slices_of`).
        image_wh: frame ``(width, height)``.
        conf: confidence threshold applied to raw boxes before merging (as SAHI does).
        merge_spec: merge method, metric, threshold, class-awareness.
        border: apply the slice-border-cut rule.
        fuse_weight: score fusion weight (0 = off).
        gate: full-image gate settings, or None for no gate.

    Returns:
        ``(detections, gate_removed)``; detections keep the detector's attributes and ``source``.
    """
    from sitesight.sliced.merge import merge

    if border and "twin_score" not in raw.attributes:
        raw = annotate_border(raw, slices, image_wh, class_agnostic=merge_spec.class_agnostic)
    kept = drop_cut_twins(raw, conf) if border else raw[raw.score >= conf]
    kept = kept.replace(attributes={k: v for k, v in kept.attributes.items() if k not in _HELPER_ATTRIBUTES})
    merged = merge(kept, method=merge_spec.method, metric=merge_spec.metric, threshold=merge_spec.threshold,
                   class_agnostic=merge_spec.class_agnostic)
    if fuse_weight:
        merged = fuse_scores(merged, kept, slices, metric=merge_spec.metric, threshold=merge_spec.threshold,
                             weight=fuse_weight, full_frame=bool((_source(raw) < 0).any()),
                             class_agnostic=merge_spec.class_agnostic)
    if gate is None:
        return merged, 0
    full = raw[_source(raw) < 0]
    keep = gate_mask(merged, full, r=gate.r, conf=gate.conf, ios=gate.ios, class_agnostic=gate.class_agnostic,
                     min_size=gate.min_size, max_size=gate.max_size, image_wh=image_wh)
    return merged[keep], int((~keep).sum())

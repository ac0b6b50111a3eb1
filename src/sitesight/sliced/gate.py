"""Full-image gate: keep a sliced detection only where the full-frame pass saw something too.

Slices show a detector small crops out of context, and it answers with false positives that the
same model run on the whole frame does not produce even at a low confidence. The gate keeps a box
only if some full-frame candidate (a full-frame box with ``score >= conf``, a confidence lower than
the operating threshold) is near it: the two centres lie within ``r`` pixels, or the box lies
inside the candidate (intersection over the smaller box ``>= ios``). Class-aware unless
``class_agnostic``.

**Object size.** The full-frame pass cannot see what is small in the whole frame (a 25 px worker in
a 4K frame): gating such boxes removes real objects that only the slices found. ``min_size`` and
``max_size`` bound where the gate applies: a box's size is its longer side, in pixels, or — for a
bound below 1 — as a fraction of the frame's longer side; boxes outside ``[min_size, max_size)``
pass the gate untouched. `size_bucket` sorts boxes into the fixed pixel buckets the sweep reports
the gate's effect in (TP removed / FP removed per bucket).

Example:
    >>> from sitesight import Detections
    >>> from sitesight.sliced.gate import gate
    >>> sliced = Detections(xyxy=[[100, 100, 120, 150], [900, 50, 920, 90]], score=[0.8, 0.7])
    >>> full = Detections(xyxy=[[98, 95, 125, 155]], score=[0.25])
    >>> result = gate(sliced, full, r=40, conf=0.2)
    >>> len(result.kept), result.removed
    (1, 1)
    >>> gate(sliced, full, r=40, conf=0.2, min_size=48).removed  # the 20x40 box is below 48 px: not judged
    0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sitesight.boxes import aligned_ios, box_area, pairwise_ios
from sitesight.detections import Detections
from sitesight.frametable import FrameTable

__all__ = ["GateParams", "GateResult", "GateCandidates", "gate", "gate_mask", "gate_candidates", "gate_mask_frames",
           "parse_gate", "size_exempt", "size_bucket", "SIZE_BUCKETS", "size_bucket_names"]

SIZE_BUCKETS = (16.0, 32.0, 64.0, 128.0)  # px, longer box side: <16, 16-32, 32-64, 64-128, >=128


@dataclass(frozen=True)
class GateParams:
    """Gate settings: centre radius ``r`` in pixels, candidate confidence ``conf``, ``ios``, and the
    box sizes it applies to, ``[min_size, max_size)`` (longer side; pixels, or below 1 a fraction of
    the frame's longer side)."""

    r: float = 40.0
    conf: float = 0.2
    ios: float = 0.5
    class_agnostic: bool = False
    min_size: float = 0.0
    max_size: float = math.inf

    def __post_init__(self) -> None:
        if self.min_size < 0 or self.max_size <= 0:
            raise ValueError(f"gate: min_size must be >= 0 and max_size > 0, got {self.min_size:g}, {self.max_size:g}")

    @property
    def size_bounded(self) -> bool:
        return self.min_size > 0 or math.isfinite(self.max_size)

    def __str__(self) -> str:
        size = (f",min={self.min_size:g}" if self.min_size > 0 else "") + (f",max={self.max_size:g}" if math.isfinite(self.max_size) else "")
        return f"r={self.r:g},conf={self.conf:g},ios={self.ios:g}" + size + (",agnostic" if self.class_agnostic else "")


def _bound_px(bound: float, long_side: np.ndarray | float | None) -> np.ndarray | float:
    if bound >= 1 or bound == 0 or math.isinf(bound):
        return bound
    if long_side is None:
        raise ValueError(f"gate: a relative size bound ({bound:g}) needs the frame size")
    return bound * np.asarray(long_side, np.float64)


def size_exempt(xyxy: np.ndarray, min_size: float, max_size: float, long_side: np.ndarray | float | None = None) -> np.ndarray:
    """``(N,)`` bool: boxes outside ``[min_size, max_size)`` (longer side), which the gate does not judge.

    Args:
        xyxy: ``(N, 4)`` boxes, frame pixels.
        min_size, max_size: bounds in pixels, or below 1 fractions of the frame's longer side.
        long_side: the frame's longer side, one number or ``(N,)`` per box (needed for relative bounds).
    """
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if min_size <= 0 and math.isinf(max_size):
        return np.zeros(len(xyxy), bool)
    size = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
    return (size < _bound_px(min_size, long_side)) | (size >= _bound_px(max_size, long_side))


def size_bucket(xyxy: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 index into `size_bucket_names` of each box's longer side (`SIZE_BUCKETS`)."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.searchsorted(SIZE_BUCKETS, np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]), side="right").astype(np.int64)


def size_bucket_names() -> list[str]:
    """Names of the `size_bucket` buckets, e.g. ``"<16 px"``, ``"16-32 px"``, ``">=128 px"``."""
    edges = [f"{e:g}" for e in SIZE_BUCKETS]
    return [f"<{edges[0]} px", *(f"{a}-{b} px" for a, b in zip(edges[:-1], edges[1:], strict=True)), f">={edges[-1]} px"]


@dataclass(frozen=True)
class GateResult:
    """Boxes the gate kept, and how many it removed."""

    kept: Detections
    removed: int


def gate_mask(
    detections: Detections,
    full_frame: Detections,
    *,
    r: float = 40.0,
    conf: float = 0.2,
    ios: float = 0.5,
    class_agnostic: bool = False,
    min_size: float = 0.0,
    max_size: float = math.inf,
    image_wh: tuple[int, int] | None = None,
) -> np.ndarray:
    """``(N,)`` bool: which of ``detections`` the gate keeps (see `gate`)."""
    exempt = size_exempt(detections.xyxy, min_size, max_size, None if image_wh is None else max(image_wh))
    return exempt | _near_mask(detections, full_frame, r=r, conf=conf, ios=ios, class_agnostic=class_agnostic)


def _near_mask(detections: Detections, full_frame: Detections, *, r: float, conf: float, ios: float, class_agnostic: bool) -> np.ndarray:
    candidates = full_frame[full_frame.score >= conf]
    if len(detections) == 0 or len(candidates) == 0:
        return np.zeros(len(detections), bool)
    d = detections.center[:, None, :] - candidates.center[None, :, :]
    near = (d[..., 0] ** 2 + d[..., 1] ** 2) <= r * r
    near |= pairwise_ios(detections.xyxy, candidates.xyxy) >= ios
    if not class_agnostic:
        near &= detections.class_id[:, None] == candidates.class_id[None, :]
    return near.any(axis=1)


@dataclass(frozen=True, eq=False)
class GateCandidates:
    """The gate's search index over a `FrameTable` of full-frame boxes: the candidate rows
    (``score >= params.conf``) as a `FrameTable`, sorted once for `gate_mask_frames`.

    Attributes:
        table: the candidates, ordered by ``key`` (frame ascending, then ``x1``), each in its own
            frame's pixels (``xyxy`` float32, as stored).
        key: ``(M,)`` float64 ascending ``frame * cell + x1``.
        cell: spacing of frames on the key line (wider than any frame's span of candidate ``x``).
        wmax: widest candidate box.
        params: the gate settings the candidates were chosen with.
        center: ``(M, 2)`` float32 box centres.
        area: ``(M,)`` float32 box areas.
    """

    table: FrameTable
    key: np.ndarray
    cell: float
    wmax: float
    params: GateParams
    center: np.ndarray
    area: np.ndarray

    @property
    def xyxy(self) -> np.ndarray:
        return self.table.boxes.xyxy

    @property
    def class_id(self) -> np.ndarray:
        return self.table.boxes.class_id

    @property
    def frame(self) -> np.ndarray:
        return self.table.frame


def _center_area(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and areas exactly as `gate_mask` computes them (float32 in, float32 out)."""
    return (xyxy[:, :2] + xyxy[:, 2:]) / 2, box_area(xyxy)


def gate_candidates(full_frame: FrameTable, params: GateParams) -> GateCandidates:
    """The candidates (``score >= params.conf``) of the full-frame boxes of many frames.

    Args:
        full_frame: the full-frame boxes (``source == -1``) of all frames, each in its own frame's pixels.
        params: gate settings.
    """
    ok = full_frame.boxes.score >= params.conf
    xyxy, frame = full_frame.boxes.xyxy[ok], full_frame.frame[ok]
    wmax = float((xyxy[:, 2] - xyxy[:, 0]).max()) if len(xyxy) else 0.0
    span = float(xyxy[:, 2].max() - min(float(xyxy[:, 0].min()), 0.0)) if len(xyxy) else 0.0
    cell = span + 2 * abs(params.r) + wmax + 1.0
    key = frame * cell + xyxy[:, 0].astype(np.float64)
    order = np.argsort(key, kind="stable")
    rows = np.flatnonzero(ok)[order]
    assert (np.diff(full_frame.frame[rows]) >= 0).all(), "cell exceeds every x1's spread: key order is frame order"
    table = FrameTable(full_frame.frame[rows], full_frame.boxes[rows], full_frame.n_frames)
    return GateCandidates(table, key[order], cell, wmax, params, *_center_area(table.boxes.xyxy))


def gate_mask_frames(
    table: FrameTable, candidates: GateCandidates, *, image_wh: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` bool: `gate_mask` for the boxes of many frames at once, each against its own frame's candidates.

    Equal to calling `gate_mask` frame by frame. Only candidates whose box, grown by ``r``, overlaps
    a box in x are examined (two binary searches on the sorted key), not all pairs.

    Args:
        table: the boxes to judge (rows of ``table``), each in its own frame's pixels.
        candidates: `gate_candidates` of the same frames.
        image_wh: ``(F, 2)`` frame sizes, needed when the gate's size bounds are relative.
    """
    p = candidates.params
    detections, frame = table.boxes, table.frame
    long_side = None if image_wh is None else np.asarray(image_wh, np.float64).reshape(-1, 2).max(axis=1)[frame]
    exempt = size_exempt(detections.xyxy, p.min_size, p.max_size, long_side)
    return exempt | _near_frames(detections, frame, candidates)


def _near_frames(detections: Detections, frame: np.ndarray, candidates: GateCandidates) -> np.ndarray:
    c, p = candidates, candidates.params
    if len(detections) == 0 or len(c.key) == 0:
        return np.zeros(len(detections), bool)
    if p.ios <= 0:  # every candidate of the frame (and class) contains every box "enough"
        k = 1 if p.class_agnostic else int(max(c.class_id.max(), detections.class_id.max())) + 1
        cls_d = 0 if p.class_agnostic else detections.class_id
        cls_c = 0 if p.class_agnostic else c.class_id
        return np.isin(frame * k + cls_d, c.frame * k + cls_c)
    det = detections.xyxy
    r = abs(float(p.r))
    lo = np.searchsorted(c.key, frame * c.cell + det[:, 0] - r - c.wmax, side="left")
    hi = np.searchsorted(c.key, frame * c.cell + det[:, 2] + r, side="right")
    rep = np.maximum(hi - lo, 0)
    det_idx = np.repeat(np.arange(len(det)), rep)
    cand_idx = lo[det_idx] + np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    same = c.frame[cand_idx] == frame[det_idx]
    if not p.class_agnostic:
        same &= c.class_id[cand_idx] == detections.class_id[det_idx]
    det_idx, cand_idx = det_idx[same], cand_idx[same]
    center = (det[:, :2] + det[:, 2:]) / 2  # as `gate_mask` computes it
    d = center[det_idx] - c.center[cand_idx]
    near = (d[:, 0] ** 2 + d[:, 1] ** 2) <= p.r * p.r
    near |= aligned_ios(det[det_idx], c.xyxy[cand_idx]) >= p.ios  # `pairwise_ios`'s arithmetic, pair by pair
    return np.bincount(det_idx[near], minlength=len(det)) > 0


def gate(
    detections: Detections,
    full_frame: Detections,
    *,
    r: float = 40.0,
    conf: float = 0.2,
    ios: float = 0.5,
    class_agnostic: bool = False,
    min_size: float = 0.0,
    max_size: float = math.inf,
    image_wh: tuple[int, int] | None = None,
) -> GateResult:
    """Keep the boxes of ``detections`` that lie near a full-frame candidate.

    Args:
        detections: merged (or raw sliced) boxes of one frame, frame pixels.
        full_frame: the full-frame pass's raw boxes of the same frame (``source == -1``).
        r: a candidate whose centre is within ``r`` pixels of the box's centre vouches for it.
        conf: only full-frame boxes with ``score >= conf`` are candidates.
        ios: a candidate that contains the box with intersection-over-smaller ``>= ios`` vouches too.
        class_agnostic: let candidates of any class vouch.
        min_size, max_size: only boxes whose longer side is in ``[min_size, max_size)`` are judged
            (pixels, or below 1 fractions of the frame's longer side); the others are kept.
        image_wh: frame ``(width, height)``, needed for relative size bounds.

    Returns:
        `GateResult` with the kept boxes (order kept) and the number removed.
    """
    keep = gate_mask(detections, full_frame, r=r, conf=conf, ios=ios, class_agnostic=class_agnostic, min_size=min_size,
                     max_size=max_size, image_wh=image_wh)
    return GateResult(detections[keep], int((~keep).sum()))


def parse_gate(text: str) -> GateParams:
    """Parse ``"r=40,conf=0.2[,ios=0.5][,min=32][,max=400][,agnostic]"`` (the CLI's ``--gate``).

    ``min``/``max`` bound the box sizes the gate judges (longer side): pixels (``min=32``), or a
    fraction of the frame's longer side (``min=0.02`` or ``min=2%``).

    Raises:
        ValueError: an unknown key or a value that is not a number.
    """
    keys = {"r": "r", "conf": "conf", "ios": "ios", "min": "min_size", "min_size": "min_size", "max": "max_size",
            "max_size": "max_size"}
    values: dict[str, float] = {}
    agnostic = False
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in ("agnostic", "class_agnostic"):
            agnostic = True
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in keys:
            raise ValueError(f"gate: expected r=..., conf=..., ios=..., min=..., max=... or agnostic, got {part!r}")
        percent = keys[key] in ("min_size", "max_size") and value.endswith("%")
        try:
            number = float(value[:-1] if percent else value)
        except ValueError:
            raise ValueError(f"gate: {key} must be a number, got {value!r}") from None
        if percent:
            if not 0 < number < 100:
                raise ValueError(f"gate: {key}={value} must be a percentage between 0 and 100 of the frame's longer side")
            number /= 100
        values[keys[key]] = number
    return GateParams(class_agnostic=agnostic, **values)

"""Full-image gate: keep a sliced detection only where the full-frame pass saw something too.

Slices show a detector small crops out of context, and it answers with false positives that the
same model run on the whole frame does not produce even at a low confidence. The gate keeps a box
only if some full-frame candidate (a full-frame box with ``score >= conf``, a confidence lower than
the operating threshold) is near it: the two centres lie within ``r`` pixels, or the box lies
inside the candidate (intersection over the smaller box ``>= ios``). Class-aware unless
``class_agnostic``.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.sliced.gate import gate
    >>> sliced = Detections(xyxy=[[100, 100, 120, 150], [900, 50, 920, 90]], score=[0.8, 0.7])
    >>> full = Detections(xyxy=[[98, 95, 125, 155]], score=[0.25])
    >>> result = gate(sliced, full, r=40, conf=0.2)
    >>> len(result.kept), result.removed
    (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitesight.boxes import box_area, pairwise_ios
from sitesight.detections import Detections

__all__ = ["GateParams", "GateResult", "GateCandidates", "gate", "gate_mask", "gate_candidates", "gate_mask_frames",
           "parse_gate"]


@dataclass(frozen=True)
class GateParams:
    """Gate settings: centre radius ``r`` in pixels, candidate confidence ``conf``, and ``ios``."""

    r: float = 40.0
    conf: float = 0.2
    ios: float = 0.5
    class_agnostic: bool = False

    def __str__(self) -> str:
        return f"r={self.r:g},conf={self.conf:g},ios={self.ios:g}" + (",agnostic" if self.class_agnostic else "")


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
) -> np.ndarray:
    """``(N,)`` bool: which of ``detections`` the gate keeps (see `gate`)."""
    candidates = full_frame[full_frame.score >= conf]
    if len(detections) == 0 or len(candidates) == 0:
        return np.zeros(len(detections), bool)
    d = detections.center[:, None, :] - candidates.center[None, :, :]
    near = (d[..., 0] ** 2 + d[..., 1] ** 2) <= r * r
    near |= pairwise_ios(detections.xyxy, candidates.xyxy) >= ios
    if not class_agnostic:
        near &= detections.class_id[:, None] == candidates.class_id[None, :]
    return near.any(axis=1)


@dataclass(frozen=True)
class GateCandidates:
    """Full-frame candidates of many frames, sorted once for `gate_mask_frames`.

    Attributes:
        xyxy: ``(M, 4)`` float32 candidate boxes (frame pixels), ordered by ``key``.
        class_id: ``(M,)`` int64.
        frame: ``(M,)`` int64 frame index of each candidate.
        key: ``(M,)`` float64 ascending ``frame * cell + x1``.
        cell: spacing of frames on the key line.
        wmax: widest candidate box.
        params: the gate settings the candidates were chosen with.
        center: ``(M, 2)`` float32 box centres.
        area: ``(M,)`` float32 box areas.
    """

    xyxy: np.ndarray
    class_id: np.ndarray
    frame: np.ndarray
    key: np.ndarray
    cell: float
    wmax: float
    params: GateParams
    center: np.ndarray
    area: np.ndarray


def _center_area(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and areas exactly as `gate_mask` computes them (float32 in, float32 out)."""
    return (xyxy[:, :2] + xyxy[:, 2:]) / 2, box_area(xyxy)


def gate_candidates(full_frame: Detections, frame: np.ndarray, params: GateParams) -> GateCandidates:
    """The candidates (``score >= params.conf``) of the full-frame boxes of many frames.

    Args:
        full_frame: full-frame boxes of all frames side by side, each in its own frame's pixels.
        frame: ``(N,)`` int frame index of each box of ``full_frame``.
        params: gate settings.
    """
    frame = np.asarray(frame, np.int64).reshape(len(full_frame))
    ok = full_frame.score >= params.conf
    xyxy, class_id, frame = full_frame.xyxy[ok], full_frame.class_id[ok], frame[ok]
    wmax = float((xyxy[:, 2] - xyxy[:, 0]).max()) if len(xyxy) else 0.0
    span = float(xyxy[:, 2].max() - min(float(xyxy[:, 0].min()), 0.0)) if len(xyxy) else 0.0
    cell = span + 2 * abs(params.r) + wmax + 1.0
    key = frame * cell + xyxy[:, 0].astype(np.float64)
    order = np.argsort(key, kind="stable")
    xyxy = xyxy[order]
    return GateCandidates(xyxy, class_id[order], frame[order], key[order], cell, wmax, params, *_center_area(xyxy))


def gate_mask_frames(detections: Detections, frame: np.ndarray, candidates: GateCandidates) -> np.ndarray:
    """``(N,)`` bool: `gate_mask` for boxes of many frames at once, each against its own frame's candidates.

    Equal to calling `gate_mask` frame by frame. Only candidates whose box, grown by ``r``, overlaps
    a box in x are examined (two binary searches on the sorted key), not all pairs.

    Args:
        detections: boxes of all frames side by side, each in its own frame's pixels.
        frame: ``(N,)`` int frame index of each box.
        candidates: `gate_candidates` of the same frames.
    """
    c, p = candidates, candidates.params
    frame = np.asarray(frame, np.int64).reshape(len(detections))
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
    center, area = _center_area(det)
    d = center[det_idx] - c.center[cand_idx]
    near = (d[:, 0] ** 2 + d[:, 1] ** 2) <= p.r * p.r
    a, b = det[det_idx], c.xyxy[cand_idx]
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    smaller = np.minimum(area[det_idx], c.area[cand_idx])
    with np.errstate(divide="ignore", invalid="ignore"):
        near |= np.where(smaller > 0, inter / smaller, 0) >= p.ios
    return np.bincount(det_idx[near], minlength=len(det)) > 0


def gate(
    detections: Detections,
    full_frame: Detections,
    *,
    r: float = 40.0,
    conf: float = 0.2,
    ios: float = 0.5,
    class_agnostic: bool = False,
) -> GateResult:
    """Keep the boxes of ``detections`` that lie near a full-frame candidate.

    Args:
        detections: merged (or raw sliced) boxes of one frame, frame pixels.
        full_frame: the full-frame pass's raw boxes of the same frame (``source == -1``).
        r: a candidate whose centre is within ``r`` pixels of the box's centre vouches for it.
        conf: only full-frame boxes with ``score >= conf`` are candidates.
        ios: a candidate that contains the box with intersection-over-smaller ``>= ios`` vouches too.
        class_agnostic: let candidates of any class vouch.

    Returns:
        `GateResult` with the kept boxes (order kept) and the number removed.
    """
    keep = gate_mask(detections, full_frame, r=r, conf=conf, ios=ios, class_agnostic=class_agnostic)
    return GateResult(detections[keep], int((~keep).sum()))


def parse_gate(text: str) -> GateParams:
    """Parse ``"r=40,conf=0.2[,ios=0.5][,agnostic]"`` (the CLI's ``--gate``).

    Raises:
        ValueError: an unknown key or a value that is not a number.
    """
    values: dict[str, float] = {}
    agnostic = False
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in ("agnostic", "class_agnostic"):
            agnostic = True
            continue
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("r", "conf", "ios"):
            raise ValueError(f"gate: expected r=..., conf=..., ios=... or agnostic, got {part!r}")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"gate: {key.strip()} must be a number, got {value!r}") from None
    return GateParams(class_agnostic=agnostic, **values)

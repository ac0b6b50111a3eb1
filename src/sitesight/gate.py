"""Full-image gate: keep a sliced detection only where the full-frame pass saw something too.

Slices show a detector small crops out of context, and it answers with false positives that the
same model run on the whole frame does not produce even at a low confidence. The gate keeps a box
only if some full-frame candidate (a full-frame box with ``score >= conf``, a confidence lower than
the operating threshold) is near it: the two centres lie within ``r`` pixels, or the box lies
inside the candidate (intersection over the smaller box ``>= ios``). Class-aware unless
``class_agnostic``.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.gate import gate
    >>> sliced = Detections(xyxy=[[100, 100, 120, 150], [900, 50, 920, 90]], score=[0.8, 0.7])
    >>> full = Detections(xyxy=[[98, 95, 125, 155]], score=[0.25])
    >>> result = gate(sliced, full, r=40, conf=0.2)
    >>> len(result.kept), result.removed
    (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitesight.boxes import pairwise_ios
from sitesight.detections import Detections

__all__ = ["GateParams", "GateResult", "gate", "gate_mask", "parse_gate"]


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

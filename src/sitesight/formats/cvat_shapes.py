"""CVAT shape geometry → axis-aligned ``xyxy`` boxes (absolute pixels, continuous coordinates).

CVAT stores polygons, polylines, points and skeleton nodes as ``"x1,y1;x2,y2;..."`` strings, masks
as a run-length encoding over the mask's own ``width x height`` rectangle (row-major, alternating
runs that start with background) placed at ``left, top`` in the frame, and boxes optionally
rotated by ``rotation`` degrees (clockwise, about the centre).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["parse_points", "points_extent", "mask_rle_extent", "rotated_box_extent"]


def parse_points(text: str) -> np.ndarray:
    """``"x1,y1;x2,y2"`` → ``(K, 2)`` float64 array.

    Raises:
        ValueError: not an even list of numbers.
    """
    values = np.array(text.replace(";", ",").split(","), dtype=np.float64)
    if values.size == 0 or values.size % 2:
        raise ValueError(f"expected x,y pairs separated by ';', got {text[:60]!r}")
    return values.reshape(-1, 2)


def points_extent(points: np.ndarray) -> tuple[float, float, float, float]:
    """The tightest box around ``(K, 2)`` points (zero width/height for a single point)."""
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def mask_rle_extent(rle: str, left: int, top: int, width: int) -> tuple[float, float, float, float] | None:
    """Tight box of the foreground pixels of a CVAT mask, or ``None`` for an empty mask.

    The RLE counts alternate background/foreground over the ``width``-wide rectangle whose top-left
    pixel is ``(left, top)``; a foreground pixel at column ``c``, row ``r`` covers
    ``[left + c, left + c + 1) x [top + r, top + r + 1)``, so the box ends one past the last pixel
    (as CVAT's own COCO export computes it).

    Raises:
        ValueError: counts that are not non-negative integers, or a width below 1.
    """
    if width < 1:
        raise ValueError(f"mask width must be >= 1, got {width}")
    try:
        counts = np.array(rle.replace(" ", "").split(","), dtype=np.int64)
    except OverflowError:
        raise ValueError("run length too large") from None
    if counts.size and counts.min() < 0:
        raise ValueError("negative run length")
    if counts.size and counts.max() > 1 << 40:  # (so that the running sum below cannot wrap around)
        raise ValueError("run length too large")
    ends = np.cumsum(counts)
    starts = ends - counts
    fg = slice(1, None, 2)
    s, e = starts[fg], ends[fg]
    keep = e > s
    s, e = s[keep], e[keep] - 1  # inclusive last flat index of each foreground run
    if s.size == 0:
        return None
    r0, c0 = np.divmod(s, width)
    r1, c1 = np.divmod(e, width)
    same_row = r0 == r1
    x_min = int(np.where(same_row, c0, 0).min())
    x_max = int(np.where(same_row, c1, width - 1).max())
    return (float(left + x_min), float(top + r0.min()), float(left + x_max + 1), float(top + r1.max() + 1))


def rotated_box_extent(x1: float, y1: float, x2: float, y2: float, degrees: float) -> tuple[float, float, float, float]:
    """Axis-aligned extent of box ``x1..x2, y1..y2`` rotated by ``degrees`` about its centre."""
    if degrees % 360 == 0:
        return x1, y1, x2, y2
    theta = math.radians(degrees)
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = (x2 - x1) / 2, (y2 - y1) / 2
    ex, ey = hw * cos + hh * sin, hw * sin + hh * cos
    return cx - ex, cy - ey, cx + ex, cy + ey

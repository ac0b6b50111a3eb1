"""The slice grid for sliced inference: which windows of a frame a detector sees.

`slice_grid` returns exactly the windows SAHI 0.12.8's ``get_slice_bboxes`` produces for the same
arguments (the parity is tested), so predictions, stored runs and merges line up with SAHI's.

Example:
    >>> from sitesight import slice_grid
    >>> slice_grid((1920, 1080)).shape
    (8, 4)
    >>> slice_grid((1920, 1080))[:2].tolist()
    [[0, 0, 640, 640], [512, 0, 1152, 640]]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["slice_grid"]


def _axis_windows(length: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` windows along one axis, the way SAHI walks it.

    Windows step by ``window - overlap``; the last one is pushed back so that it ends at
    ``length`` (it starts at 0 when the frame is smaller than a window).
    """
    windows: list[tuple[int, int]] = []
    start = end = 0
    while end < length:
        end = start + window
        if end > length:
            end = length
            start = max(0, end - window)
        windows.append((start, end))
        start = end - overlap
    return windows


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"slice_grid: {name} must be positive integers, got {value!r}")
    return int(value)


def slice_grid(
    image_wh: tuple[int, int],
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
) -> np.ndarray:
    """Slice windows covering a frame, row by row (top to bottom, left to right in a row).

    Args:
        image_wh: frame ``(width, height)`` in pixels.
        slice_wh: slice ``(width, height)`` in pixels.
        overlap_ratio: overlap between neighbouring slices as a fraction of the slice
            ``(width, height)``, each in ``[0, 1)``; the overlap in pixels is
            ``int(ratio * slice size)``, as in SAHI.

    Returns:
        ``(K, 4)`` int64 absolute-pixel ``xyxy`` windows in the frame. Every window has the slice
        size except where the frame is smaller than a slice; the last column and row are shifted
        back to end at the frame's edge, so they overlap their neighbour more. A frame with a zero
        side gives ``K = 0``.

    Raises:
        ValueError: a size that is not a positive integer (a frame side may be 0), or an overlap
            ratio outside ``[0, 1)``.
    """
    if len(image_wh) != 2 or len(slice_wh) != 2 or len(overlap_ratio) != 2:
        raise ValueError("slice_grid: image_wh, slice_wh and overlap_ratio each take two values (width, height)")
    width, height = (0 if v == 0 else _positive_int("image_wh", v) for v in image_wh)
    slice_w, slice_h = (_positive_int("slice_wh", v) for v in slice_wh)
    for ratio in overlap_ratio:
        if not (isinstance(ratio, (int, float, np.floating)) and math.isfinite(ratio) and 0 <= ratio < 1):
            raise ValueError(f"slice_grid: overlap_ratio must lie in [0, 1), got {overlap_ratio!r}")
    # SAHI computes int(ratio * size) in Python floats; so do we, to land on the same pixel.
    overlap_w = int(float(overlap_ratio[0]) * slice_w)
    overlap_h = int(float(overlap_ratio[1]) * slice_h)
    columns = _axis_windows(width, slice_w, overlap_w)
    rows = _axis_windows(height, slice_h, overlap_h)
    grid = [(x0, y0, x1, y1) for y0, y1 in rows for x0, x1 in columns]
    return np.array(grid, dtype=np.int64).reshape(-1, 4)

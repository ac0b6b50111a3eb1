"""Box geometry in one frame: absolute-pixel ``xyxy``, converted at the format edges only.

All functions take and return numpy arrays, never modify their input, and use continuous
coordinates (a box ``[0, 0, 10, 10]`` has area 100), as COCO and SAHI do.

Example:
    >>> import numpy as np
    >>> from sitesight.boxes import pairwise_iou
    >>> a = np.array([[0, 0, 10, 10]], np.float32)
    >>> b = np.array([[5, 0, 15, 10]], np.float32)
    >>> float(pairwise_iou(a, b)[0, 0])
    0.3333333432674408
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "box_area",
    "pairwise_iou_devkit",
    "xyxy_to_xywh",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh_norm",
    "cxcywh_norm_to_xyxy",
    "pairwise_intersection",
    "pairwise_iou",
    "pairwise_ios",
    "aligned_iou",
    "aligned_ios",
    "expand_boxes",
]


def _boxes(xyxy: np.ndarray, name: str = "xyxy") -> np.ndarray:
    array = np.asarray(xyxy, dtype=np.float32)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (N, 4), got {array.shape}")
    return array


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of ``(N, 4)`` xyxy boxes; inverted boxes have area 0."""
    b = _boxes(xyxy)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy → COCO ``(x, y, w, h)`` (top-left corner, width, height)."""
    b = _boxes(xyxy).copy()
    b[:, 2:] -= b[:, :2]
    return b


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """COCO ``(N, 4)`` ``(x, y, w, h)`` → xyxy."""
    b = _boxes(xywh, "xywh").copy()
    b[:, 2:] += b[:, :2]
    return b


def xyxy_to_cxcywh_norm(xyxy: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """xyxy pixels → YOLO ``(cx, cy, w, h)`` normalised by ``image_wh = (width, height)``.

    Computed in float64 so that a round trip through text stays within a fraction of a pixel.
    """
    b = _boxes(xyxy).astype(np.float64)
    w, h = image_wh
    scale = np.array([w, h, w, h], np.float64)
    out = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
    return out / scale


def cxcywh_norm_to_xyxy(cxcywh: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """YOLO normalised ``(N, 4)`` ``(cx, cy, w, h)`` → xyxy pixels (float32)."""
    c = np.asarray(cxcywh, dtype=np.float64)
    c = c.reshape(0, 4) if c.size == 0 else c
    if c.ndim != 2 or c.shape[1] != 4:
        raise ValueError(f"cxcywh: expected shape (N, 4), got {c.shape}")
    w, h = image_wh
    centre = c[:, :2] * (w, h)
    half = c[:, 2:] * (w, h) / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def pairwise_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` float32 intersection areas between ``(N, 4)`` and ``(M, 4)`` xyxy boxes."""
    a, b = _boxes(a, "a"), _boxes(b, "b")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def pairwise_iou_devkit(a: np.ndarray, b: np.ndarray, *, pixel_inclusive: bool = False) -> np.ndarray:
    """``(N, M)`` float64 IoU as the Pascal VOC devkit computes it (``ov > threshold`` decides there).

    ``pixel_inclusive=True`` is the devkit's convention that ``x2``/``y2`` name the last pixel
    inside the box: widths and heights are ``x2 - x1 + 1``. Float64 throughout (no float32 rounding
    near the threshold), no clamping of the union, exactly like ``voc_eval.py``.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    one = 1.0 if pixel_inclusive else 0.0
    iw = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one, 0.0)
    ih = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one, 0.0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union; 0 where the union is empty."""
    inter = pairwise_intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(np.float32)


def pairwise_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over the smaller of the two boxes' areas; 0 where that is empty."""
    inter = pairwise_intersection(a, b)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(smaller > 0, inter / smaller, 0.0).astype(np.float32)


def _aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection and both areas of corresponding boxes ``a[..., :]``, ``b[..., :]`` (broadcast)."""
    a, b = np.asarray(a), np.asarray(b)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    return w * h, area_a, area_b


def aligned_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corresponding boxes: ``(..., 4)`` with ``(..., 4)`` → ``(...)``, in the inputs' float
    precision with the arithmetic of `pairwise_iou` (so float32 boxes give `pairwise_iou`'s values); 0
    where the union is empty."""
    inter, area_a, area_b = _aligned(a, b)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(inter.dtype if inter.dtype.kind == "f" else np.float64)


def aligned_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller area of corresponding boxes (see `aligned_iou`); 0 where that is empty."""
    inter, area_a, area_b = _aligned(a, b)
    smaller = np.minimum(area_a, area_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(smaller > 0, inter / smaller, 0.0).astype(inter.dtype if inter.dtype.kind == "f" else np.float64)


def expand_boxes(
    xyxy: np.ndarray,
    *,
    x: float = 1.0,
    top: float = 0.0,
    bottom: float = 0.0,
    image_wh: tuple[int, int] | None = None,
) -> np.ndarray:
    """Grow boxes relative to their own size, e.g. a person box to take in rope and anchor.

    Args:
        xyxy: ``(N, 4)`` boxes.
        x: new width as a multiple of the old width, centred (1.0 keeps it).
        top: added above, as a fraction of the box height.
        bottom: added below, as a fraction of the box height.
        image_wh: when given, the result is clipped to the frame.

    Returns:
        ``(N, 4)`` float32 expanded boxes.
    """
    b = _boxes(xyxy).copy()
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2
    b[:, 0] = cx - w * x / 2
    b[:, 2] = cx + w * x / 2
    b[:, 1] -= h * top
    b[:, 3] += h * bottom
    if image_wh is not None:
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, image_wh[0])
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, image_wh[1])
    return b

"""Pictures for the report: box crops, frame thumbnails, heatmap overlays, as JPEG data URIs.

Every picture is downscaled before encoding (crops to at most ``CROP_SIDE`` px, thumbnails to
``THUMB_SIDE``) and written as a quality-``JPEG_QUALITY`` JPEG, so a report with a few hundred
pictures stays a few MB. Frames are decoded once per `FrameCache` and reused for every crop of
the same frame. Boxes are absolute-pixel ``xyxy`` in the full frame.
"""

from __future__ import annotations

import base64
import io
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sitesight.errors import InputError

__all__ = ["FrameCache", "jpeg_data_uri", "draw_crop", "draw_thumbnail", "heatmap_overlay", "CROP_SIDE", "THUMB_SIDE"]

CROP_SIDE = 176
THUMB_SIDE = 480
JPEG_QUALITY = 72
INNER = (0, 200, 255)
OUTER = (255, 210, 0)
PALETTE = ((46, 204, 113), (52, 152, 219), (231, 76, 60), (155, 89, 182), (241, 196, 15), (230, 126, 34), (26, 188, 156))


class FrameCache:
    """Decoded RGB frames by path, the ``capacity`` most recent kept (frames are large)."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._frames: OrderedDict[str, Image.Image | None] = OrderedDict()
        self.missing: list[str] = []

    def get(self, path: Path | str) -> Image.Image | None:
        """The frame as an RGB image, or None (recorded in ``missing``) when it cannot be read."""
        key = str(path)
        if key in self._frames:
            self._frames.move_to_end(key)
            return self._frames[key]
        try:
            with Image.open(key) as im:
                image: Image.Image | None = im.convert("RGB")
        except (OSError, ValueError):
            image = None
            self.missing.append(key)
        self._frames[key] = image
        if len(self._frames) > self.capacity:
            self._frames.popitem(last=False)
        return image


def jpeg_data_uri(image: Image.Image | np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """``data:image/jpeg;base64,...`` of an RGB image (``(H, W, 3)`` uint8 array or PIL image)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _tag(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour: tuple[int, int, int], bounds: tuple[int, int]) -> None:
    """A filled label with ``text`` whose lower-left corner sits at ``xy`` (moved inside ``bounds``)."""
    font = _font(11)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 3
    x = min(max(0.0, xy[0]), max(0, bounds[0] - w))
    y = xy[1] - h if xy[1] - h >= 0 else xy[1]
    y = min(y, max(0, bounds[1] - h))
    draw.rectangle([x, y, x + w, y + h], fill=colour)
    draw.text((x + 2, y + 1 - top), text, fill=(0, 0, 0), font=font)


def draw_crop(
    frame: Image.Image,
    inner_xyxy: Sequence[float],
    *,
    outer_xyxy: Sequence[float] | None = None,
    label: str = "",
    colour: tuple[int, int, int] = INNER,
    others: Sequence[tuple[Sequence[float], tuple[int, int, int]]] = (),
    side: int = CROP_SIDE,
) -> str:
    """A crop around a box with the box (and the expanded input region) drawn, as a JPEG data URI.

    Args:
        frame: the full RGB frame.
        inner_xyxy: the labelled box, frame pixels.
        outer_xyxy: the expanded region the model saw (drawn in yellow), frame pixels.
        label: text on a tag at the inner box's top-left corner.
        colour: inner box colour.
        others: further ``(xyxy, colour)`` boxes to draw (e.g. the ground truth a prediction missed).
        side: longest side of the result in pixels.
    """
    fw, fh = frame.size
    boxes = [np.asarray(inner_xyxy, np.float64)]
    if outer_xyxy is not None:
        boxes.append(np.asarray(outer_xyxy, np.float64))
    boxes += [np.asarray(b, np.float64) for b, _ in others]
    stacked = np.stack(boxes)
    x1, y1 = stacked[:, :2].min(axis=0)
    x2, y2 = stacked[:, 2:].max(axis=0)
    pad = max(x2 - x1, y2 - y1) * 0.2 + 8
    region = (max(0, int(x1 - pad)), max(0, int(y1 - pad)), min(fw, int(np.ceil(x2 + pad))), min(fh, int(np.ceil(y2 + pad))))
    if region[2] <= region[0] or region[3] <= region[1]:
        region = (0, 0, fw, fh)
    crop = frame.crop(region)
    scale = side / max(crop.size)
    crop = crop.resize((max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(crop)

    def local(b: np.ndarray) -> list[float]:
        return [(b[0] - region[0]) * scale, (b[1] - region[1]) * scale, (b[2] - region[0]) * scale, (b[3] - region[1]) * scale]

    if outer_xyxy is not None:
        draw.rectangle(local(boxes[1]), outline=OUTER, width=1)
    for b, c in others:
        draw.rectangle(local(np.asarray(b, np.float64)), outline=c, width=2)
    inner = local(boxes[0])
    draw.rectangle(inner, outline=colour, width=2)
    if label:
        _tag(draw, (inner[0], inner[1]), label, colour, crop.size)
    return jpeg_data_uri(crop)


def draw_thumbnail(
    frame: Image.Image,
    boxes: Sequence[tuple[Sequence[float], tuple[int, int, int], str]] = (),
    *,
    side: int = THUMB_SIDE,
) -> str:
    """The whole frame downscaled to ``side`` px with ``(xyxy, colour, label)`` boxes drawn."""
    scale = side / max(frame.size)
    thumb = frame.resize((max(1, round(frame.size[0] * scale)), max(1, round(frame.size[1] * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(thumb)
    for xyxy, colour, label in boxes:
        b = [float(v) * scale for v in xyxy]
        draw.rectangle(b, outline=colour, width=2)
        if label:
            _tag(draw, (b[0], b[1]), label, colour, thumb.size)
    return jpeg_data_uri(thumb)


def heatmap_overlay(frame: Image.Image, heatmap: np.ndarray, *, side: int = 320, alpha: float = 0.5) -> str:
    """``(h, w)`` float anomaly map (any scale; min–max normalised) blended over the frame, as a data URI."""
    from matplotlib import colormaps

    scale = side / max(frame.size)
    size = (max(1, round(frame.size[0] * scale)), max(1, round(frame.size[1] * scale)))
    base = np.asarray(frame.resize(size, Image.Resampling.BILINEAR), np.float32)
    m = np.asarray(heatmap, np.float32)
    if m.ndim != 2:
        raise InputError(f"expected a 2-D heatmap, got shape {m.shape}")
    lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    m = np.asarray(Image.fromarray((np.nan_to_num(m) * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR), np.float32) / 255
    colour = colormaps["inferno"](m)[..., :3] * 255
    blended = (1 - alpha) * base + alpha * colour
    return jpeg_data_uri(np.clip(blended, 0, 255).astype(np.uint8))


def palette(index: int) -> tuple[int, int, int]:
    """A distinct colour per class index."""
    return PALETTE[index % len(PALETTE)]

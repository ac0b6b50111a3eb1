"""`Canvas`: draw every shape twice, once in colour and once as an integer label, so that ground
truth boxes come from the pixels that were actually drawn (and are still visible), not from guesses.

The label image holds ``0`` for scenery and ``worker_code(i, part)`` for the pixels of worker ``i``.
Scenery drawn later over a worker writes ``0`` there, which is how occlusion is measured. PIL draws
without anti-aliasing, so the colour and label images cover exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Canvas", "PART_BODY", "PART_HEAD", "PART_HELMET", "PART_ROPE", "worker_code"]

PART_BODY, PART_HEAD, PART_HELMET, PART_ROPE = 0, 1, 2, 3
_PARTS = 4

Color = tuple[int, int, int]
Point = tuple[float, float]


def worker_code(index: int, part: int) -> int:
    """The label value of ``part`` (one of the ``PART_*`` constants) of worker ``index`` (0-based)."""
    return (index + 1) * _PARTS + part


class Canvas:
    """An RGB image and an ``int32`` label image of the same size, drawn together.

    Args:
        rgb: ``(H, W, 3)`` uint8 starting picture (the ground); it is copied, never modified.
    """

    def __init__(self, rgb: np.ndarray) -> None:
        self.image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
        self.labels = Image.new("I", self.image.size, 0)
        self._draw = ImageDraw.Draw(self.image)
        self._ldraw = ImageDraw.Draw(self.labels)

    @property
    def image_wh(self) -> tuple[int, int]:
        return self.image.size

    # Each primitive takes a colour and a label (0 = scenery). ``label=None`` paints colour only.

    def polygon(self, points: Sequence[Point], color: Color, label: int | None = 0) -> None:
        self._draw.polygon(list(points), fill=color)
        if label is not None:
            self._ldraw.polygon(list(points), fill=label)

    def rectangle(self, xyxy: Sequence[float], color: Color, label: int | None = 0) -> None:
        """Filled axis-aligned rectangle ``(x1, y1, x2, y2)``; degenerate ones are widened to 1 px."""
        x1, y1, x2, y2 = xyxy
        box = [x1, y1, max(x1, x2), max(y1, y2)]
        self._draw.rectangle(box, fill=color)
        if label is not None:
            self._ldraw.rectangle(box, fill=label)

    def ellipse(self, xyxy: Sequence[float], color: Color, label: int | None = 0) -> None:
        x1, y1, x2, y2 = xyxy
        box = [x1, y1, max(x1 + 1, x2), max(y1 + 1, y2)]
        self._draw.ellipse(box, fill=color)
        if label is not None:
            self._ldraw.ellipse(box, fill=label)

    def chord(self, xyxy: Sequence[float], start: float, end: float, color: Color, label: int | None = 0) -> None:
        x1, y1, x2, y2 = xyxy
        box = [x1, y1, max(x1 + 1, x2), max(y1 + 1, y2)]
        self._draw.chord(box, start, end, fill=color)
        if label is not None:
            self._ldraw.chord(box, start, end, fill=label)

    def line(self, points: Sequence[Point], color: Color, width: float, label: int | None = 0) -> None:
        """A polyline ``width`` pixels wide (at least 1)."""
        w = max(1, int(round(width)))
        self._draw.line(list(points), fill=color, width=w, joint="curve" if len(points) > 2 else None)
        if label is not None:
            self._ldraw.line(list(points), fill=label, width=w, joint="curve" if len(points) > 2 else None)

    def shade_ellipse(self, xyxy: Sequence[float], factor: float) -> None:
        """Darken the colour image inside an ellipse by ``factor`` (a soft ground shadow; labels untouched)."""
        w, h = self.image_wh
        x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return
        region = self.image.crop((x1, y1, x2, y2))
        mask = Image.new("L", region.size, 0)
        ImageDraw.Draw(mask).ellipse([0, 0, x2 - x1 - 1, y2 - y1 - 1], fill=255)
        lut = [int(v * factor) for v in range(256)] * 3
        self.image.paste(region.point(lut), (x1, y1), mask)

    def hide(self, mask: Image.Image, offset: tuple[int, int] = (0, 0)) -> None:
        """Mark pixels where the ``L`` image ``mask`` (placed at ``offset``) is non-zero as scenery:
        something burned in on top, such as a caption."""
        self.labels.paste(0, (*offset, offset[0] + mask.width, offset[1] + mask.height), mask.point([0] + [255] * 255))

    def label_crop(self, xyxy: Sequence[int]) -> np.ndarray:
        """``(h, w)`` int32 copy of the label image inside integer ``(x1, y1, x2, y2)`` (clipped)."""
        w, h = self.image_wh
        x1, y1, x2, y2 = (int(v) for v in xyxy)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 <= x1 or y2 <= y1:
            return np.zeros((0, 0), np.int32)
        return np.asarray(self.labels.crop((x1, y1, x2, y2)), dtype=np.int32)

    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 copy of the colour image."""
        return np.asarray(self.image, dtype=np.uint8).copy()

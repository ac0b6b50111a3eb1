"""A deterministic stand-in detector for tests: every coloured rectangle on black is one object.

`blob_detector` finds 8-connected non-black components in each image with OpenCV; a component's
box is its pixel extent, its score is its red channel / 255 and its class is 0 when green == 0
else 1. Objects cut by a slice border come out as cut boxes, exactly like a real detector's.
"""

from __future__ import annotations

import cv2
import numpy as np

from sitesight import Detections


def blob_detector(images: list[np.ndarray]) -> list[Detections]:
    out = []
    for image in images:
        mask = (image.max(axis=2) > 0).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        xyxy, score, cls = [], [], []
        for k in range(1, n):
            x, y, w, h = stats[k, :4]
            ys, xs = np.nonzero(labels[y : y + h, x : x + w] == k)
            pixel = image[y + ys[0], x + xs[0]]
            xyxy.append([x, y, x + w, y + h])
            score.append(pixel[0] / 255.0)
            cls.append(0 if pixel[1] == 0 else 1)
        out.append(Detections(xyxy=np.array(xyxy, np.float32).reshape(-1, 4), score=score, class_id=cls))
    return out


def blob_image(rng: np.random.Generator, wh: tuple[int, int], n: int, size: tuple[int, int] = (8, 60)) -> np.ndarray:
    """Black ``(H, W, 3)`` uint8 image with ``n`` solid rectangles of distinct red values (scores)."""
    w, h = wh
    image = np.zeros((h, w, 3), np.uint8)
    reds = rng.choice(np.arange(40, 256), size=n, replace=False)
    for red in reds:
        bw, bh = rng.integers(size[0], size[1], size=2)
        x, y = rng.integers(0, w - bw), rng.integers(0, h - bh)
        image[y : y + bh, x : x + bw] = (red, 100 * rng.integers(0, 2), 50)
    return image

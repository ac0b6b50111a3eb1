"""Frames with bright rectangles and a detector that finds them: deterministic, so both engines must agree.

`RectDetector` is a real (if simple) detector callable: connected components of the red channel
above 128, each a box with the score and class read from the green and blue channels. A rectangle
crossing a slice border is found cut in that slice, like a CNN's output on a cut worker.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image

from sitesight import Detections


class RectDetector:
    """``Callable[[list[np.ndarray]], list[Detections]]``; kills its own process once, if asked.

    Args:
        kill_marker: when given and the file does not exist yet, the first call that sees a frame
            whose pixel (0, 0) has blue == 77 creates the file and SIGKILLs its process (the Ray
            actor or task running it); every later call (the retry) runs normally.
    """

    def __init__(self, kill_marker: str | None = None) -> None:
        self.kill_marker = kill_marker

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        import cv2

        out = []
        for image in images:
            if self.kill_marker and image[0, 0, 2] == 77 and not os.path.exists(self.kill_marker):
                Path(self.kill_marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            n, _, stats, _ = cv2.connectedComponentsWithStats((image[:, :, 0] > 128).astype(np.uint8), connectivity=4)
            boxes, scores, classes = [], [], []
            for x, y, w, h, _ in stats[1:n]:
                boxes.append([x, y, x + w, y + h])
                scores.append(image[y, x, 1] / 255.0)
                classes.append(int(image[y, x, 2]) % 3)
            out.append(Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), score=scores, class_id=classes))
        return out


def make_rect_detector(kill_marker: str | None = None) -> RectDetector:
    """Factory for the engines (called inside each Ray actor)."""
    return RectDetector(kill_marker)


def write_frames(folder: Path, count: int, *, wh: tuple[int, int] = (400, 300), seed: int = 0, kill_at: int | None = None) -> list[Path]:
    """``count`` PNG frames with 3-6 rectangles each; frame ``kill_at`` carries the kill mark."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = np.zeros((wh[1], wh[0], 3), np.uint8)
        for _ in range(rng.integers(3, 7)):
            w, h = rng.integers(8, 60), rng.integers(15, 90)
            x, y = rng.integers(0, wh[0] - w), rng.integers(0, wh[1] - h)
            image[y : y + h, x : x + w] = (200, rng.integers(60, 250), rng.integers(0, 3))
        image[0, 0] = (0, 0, 77 if i == kill_at else 0)
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths

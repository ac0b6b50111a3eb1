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

    class_names = ("a", "b", "c")  # announced like a real model's names: recorded in the run's manifest

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


def stored_run_and_labels(run_dir: Path, n_frames: int, *, seed: int = 0, labelled_every: int = 1, frames_per_shard: int = 4):
    """A stored run of stand-in raw boxes (`sitesight.sliced.standin`) over random workers, and the labels.

    Frames are 1280x720, 0-8 workers each; every ``labelled_every``-th frame is in the returned
    `Dataset` (the others are an unlabelled part of the run).
    """
    from sitesight.dataset import Dataset, Sample
    from sitesight.sliced.predict import run_parameters
    from sitesight.sliced.standin import standin_raw
    from sitesight.sliced.store import write_run

    rng = np.random.default_rng(seed)
    wh = (1280, 720)
    keys, raws, samples = [], [], []
    for i in range(n_frames):
        n = int(rng.integers(0, 9))
        h = rng.uniform(12, 120, n)
        w = h * rng.uniform(0.3, 0.6, n)
        x, y = rng.uniform(0, wh[0] - w), rng.uniform(0, wh[1] - h)
        gt = Detections(xyxy=np.stack([x, y, x + w, y + h], axis=1).reshape(-1, 4), class_id=rng.integers(0, 3, n))
        key = f"cam{i % 3}/frame_{i:04d}.jpg"
        keys.append((key, wh))
        raws.append(standin_raw(gt, wh, rng=rng))
        if i % labelled_every == 0:
            samples.append(Sample(path=key, image_wh=wh, gt=gt, image_id=i + 1, camera_id=f"cam{i % 3}"))
    write_run(run_dir, keys, raws, model="stand-in", parameters=run_parameters((640, 640), (0.2, 0.2), True),
              frames_per_shard=frames_per_shard, class_names=["person", "helmet", "head"])
    return Dataset(class_names=("person", "helmet", "head"), samples=tuple(samples))

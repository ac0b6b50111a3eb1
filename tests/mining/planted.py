"""A light pool with planted weaknesses, built straight from ground truth (no pixels).

Frames hold workers (a person box with a helmet or head box in its upper fifth). Some frames are
dark, some hold small workers (persons under 40 px). Three stand-in models degrade the ground truth:

* ``A`` is blind in dark frames (misses every object there),
* ``B`` is blind to small workers (misses small persons and their heads/helmets),
* ``C`` only has the noise all three share (jitter, 2 % random misses, faint background boxes).

So the planted order is C > B > A (A loses whole frames, B a few objects per affected frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sitesight import Detections

CLASSES = ("person", "helmet", "head")


@dataclass(frozen=True)
class PlantedPool:
    keys: list[str]
    image_wh: list[tuple[int, int]]
    camera: list[str]
    timestamp: list[float]
    gts: list[Detections]
    preds: dict[str, list[Detections]]
    dark: np.ndarray
    small: np.ndarray


def _workers(rng: np.random.Generator, n: int, heights: tuple[float, float], wh: tuple[int, int]) -> list[np.ndarray]:
    boxes, classes = [], []
    for _ in range(n):
        h = rng.uniform(*heights)
        w = h * 0.4
        x, y = rng.uniform(0, wh[0] - w), rng.uniform(0, wh[1] - h)
        boxes.append([x, y, x + w, y + h])
        classes.append(0)
        hw = w * 0.5
        hx, hy = x + (w - hw) / 2, y + 0.02 * h
        boxes.append([hx, hy, hx + hw, hy + hw])
        classes.append(int(rng.integers(1, 3)))
    return [np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64)]


def _degrade(rng: np.random.Generator, gt: Detections, drop: np.ndarray, wh: tuple[int, int]) -> Detections:
    keep = ~drop & (rng.random(len(gt)) > 0.02)
    xyxy = gt.xyxy[keep]
    size = np.tile(xyxy[:, 2:] - xyxy[:, :2], 2)
    xyxy = xyxy + rng.normal(0, 0.03, xyxy.shape).astype(np.float32) * size
    score = rng.uniform(0.75, 0.97, len(xyxy))
    n_fp = int(rng.poisson(1.0))
    xy = rng.uniform(0, 1, (n_fp, 2)) * (wh[0] - 80, wh[1] - 80)
    faint = np.c_[xy, xy + rng.uniform(20, 80, (n_fp, 2))]
    return Detections(xyxy=np.r_[xyxy, faint], score=np.r_[score, rng.uniform(0.05, 0.25, n_fp)],
                      class_id=np.r_[gt.class_id[keep], rng.integers(0, 3, n_fp)])


def planted_pool(n_frames: int = 300, *, seed: int = 0, dark_rate: float = 0.12, small_rate: float = 0.12) -> PlantedPool:
    rng = np.random.default_rng(seed)
    wh = (1920, 1080)
    dark = rng.random(n_frames) < dark_rate
    small = rng.random(n_frames) < small_rate
    keys, cams, stamps, gts = [], [], [], []
    preds: dict[str, list[Detections]] = {"A": [], "B": [], "C": []}
    for i in range(n_frames):
        big = _workers(rng, int(rng.integers(4, 9)), (70, 260), wh)
        parts = [big]
        if small[i]:
            parts.append(_workers(rng, int(rng.integers(4, 8)), (20, 36), wh))
        xyxy = np.concatenate([p[0] for p in parts])
        cls = np.concatenate([p[1] for p in parts])
        gt = Detections(xyxy=xyxy, class_id=cls)
        person_h = np.repeat((xyxy[::2, 3] - xyxy[::2, 1]), 2)  # each worker: person row then its part row
        tiny = person_h < 40
        gts.append(gt)
        keys.append(f"/pool/cam{i % 4}/frame_{i:05d}.jpg")
        cams.append(f"cam{i % 4}")
        stamps.append(1.7e9 + (i // 4) * 900.0)
        preds["A"].append(_degrade(rng, gt, np.full(len(gt), bool(dark[i])), wh))
        preds["B"].append(_degrade(rng, gt, tiny, wh))
        preds["C"].append(_degrade(rng, gt, np.zeros(len(gt), bool), wh))
    return PlantedPool(keys, [wh] * n_frames, cams, stamps, gts, preds, dark, small)

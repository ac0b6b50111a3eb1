"""Simulated paired detections, classifications and anomaly scores with a known population, for the
calibration tests and the bootstrap benchmark.

Frames share a difficulty (and a camera effect) that moves both models' chance to find a worker,
as real test frames do: that shared part is what a paired comparison cancels.
"""

from __future__ import annotations

import numpy as np

from sitesight import Detections

FRAME_WH = (1920, 1080)


def frames(rng: np.random.Generator, n: int, *, n_cameras: int = 0) -> dict[str, np.ndarray | list]:
    """Ground truth of ``n`` frames: ``gts`` (list of Detections), ``difficulty`` (n,), ``camera`` (n,) or None."""
    camera = rng.integers(0, n_cameras, n) if n_cameras else None
    cam_effect = rng.normal(0, 0.6, n_cameras) if n_cameras else None
    difficulty = rng.normal(0, 0.8, n) + (cam_effect[camera] if camera is not None else 0)
    gts = []
    for _ in range(n):
        m = rng.poisson(3)
        h = np.minimum(np.exp(rng.normal(np.log(60), 0.7, m)), 1000)  # 30-px workers to close-ups: every COCO size bucket
        w = h * 0.4
        x = rng.uniform(0, FRAME_WH[0] - w)
        y = rng.uniform(0, FRAME_WH[1] - h)
        gts.append(Detections(xyxy=np.stack([x, y, x + w, y + h], 1).reshape(-1, 4), class_id=np.zeros(m, np.int64)))
    return {"gts": gts, "difficulty": difficulty, "camera": camera}


def detect(rng: np.random.Generator, gts: list[Detections], difficulty: np.ndarray, *, skill: float, fp_rate: float = 1.0) -> list[Detections]:
    """One model's predictions: each worker found with probability ``sigmoid(skill - difficulty + ...)``,
    jittered boxes, scores that rank found workers above most false alarms."""
    out = []
    for g, d in zip(gts, difficulty, strict=True):
        h = g.xyxy[:, 3] - g.xyxy[:, 1]
        logit = skill - d + 0.5 * np.log(h / 60)
        found = rng.random(len(g)) < 1 / (1 + np.exp(-logit))
        boxes = g.xyxy[found].astype(np.float64)
        bw = (boxes[:, 2:] - boxes[:, :2])
        boxes = boxes + rng.normal(0, 0.08, boxes.shape) * np.tile(bw, 2)
        score = 1 / (1 + np.exp(-rng.normal(1.0 + 0.5 * logit[found], 1.0)))
        n_fp = rng.poisson(fp_rate * np.exp(0.5 * d))
        fh = np.exp(rng.normal(np.log(50), 0.6, n_fp))
        fx, fy = rng.uniform(0, FRAME_WH[0] - fh * 0.4), rng.uniform(0, FRAME_WH[1] - fh)
        fp = np.stack([fx, fy, fx + fh * 0.4, fy + fh], 1).reshape(-1, 4)
        fs = 1 / (1 + np.exp(-rng.normal(-1.0, 1.0, n_fp)))
        out.append(Detections(xyxy=np.concatenate([boxes, fp]).astype(np.float32), score=np.r_[score, fs].astype(np.float32),
                              class_id=np.zeros(len(boxes) + n_fp, np.int64)))
    return out

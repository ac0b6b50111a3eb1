"""A STAND-IN for a sliced detector, for the demo and the benchmarks: ground truth plus realistic noise.

This is not a model. It produces the raw boxes a detector run on every slice and on the full
frame typically produces, derived from ground truth with the failure modes sliced inference has:

* small and "hard" (dark, occluded) workers are missed more often; the full-frame pass, which
  sees the frame downscaled about 3x, misses small ones most of the time;
* an object crossing a slice border comes out of that slice as a *cut* box touching the border
  (a slice-border duplicate) with a lower score;
* every slice adds a few background false positives that the full-frame pass does not confirm
  (what the full-image gate removes);
* box corners jitter by a few percent of the box size; scores of one object agree across slices.

The IoU-aware detector work replaces it with a trained model; every later stage (store, border
rule, merge, gate, sweep, export) is the real code either way.

Example:
    >>> import numpy as np
    >>> from sitesight import Detections
    >>> from sitesight.sliced.standin import standin_raw
    >>> gt = Detections(xyxy=[[600, 300, 640, 400]], class_id=[0])
    >>> raw = standin_raw(gt, (1920, 1080), rng=np.random.default_rng(0))
    >>> sorted(set(raw.attributes["source"].tolist()))[:1]
    [-1]
"""

from __future__ import annotations

import numpy as np

from sitesight.detections import Detections
from sitesight.sliced.slicing import slice_grid

__all__ = ["standin_raw"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def standin_raw(
    gt: Detections,
    image_wh: tuple[int, int],
    *,
    rng: np.random.Generator,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    full_frame: bool = True,
    fp_per_slice: float = 1.0,
    num_classes: int = 3,
) -> Detections:
    """Simulated raw sliced-detector output for one frame (see the module docstring).

    Args:
        gt: ground truth of the frame, frame pixels.
        image_wh: frame ``(width, height)``.
        rng: randomness source.
        slice_wh, overlap_ratio: the slice grid (as `sitesight.sliced.slicing.slice_grid`).
        full_frame: also simulate the full-frame pass (``source == -1``).
        fp_per_slice: mean background false positives per slice.
        num_classes: class ids of false positives are drawn from ``0..num_classes-1``.

    Returns:
        Raw boxes in frame pixels with ``attributes["source"]`` int32, like `sitesight.sliced.predict.predict_sliced`.
    """
    slices = slice_grid(image_wh, slice_wh=slice_wh, overlap_ratio=overlap_ratio).astype(np.float32)
    n = len(gt)
    h = gt.xyxy[:, 3] - gt.xyxy[:, 1] if n else np.zeros(0, np.float32)
    hard = rng.random(n) < 0.2
    base = np.clip(rng.normal(0.75, 0.12, n) - 0.25 * hard, 0.05, 0.99)
    p_slice = 0.97 * _sigmoid((h - 9.0) / 2.0) * np.where(hard, 0.6, 1.0)
    p_full = 0.95 * _sigmoid((h / 3.0 - 3.0) / 1.0) * np.where(hard, 0.7, 1.0)
    xyxy, score, cls, source = [], [], [], []

    def add(box: np.ndarray, s: float, c: int, src: int) -> None:
        size = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
        xyxy.append(box + rng.normal(0, 0.03, 4).astype(np.float32) * size)
        score.append(float(np.clip(s + rng.normal(0, 0.05), 0.01, 0.999)))
        cls.append(c)
        source.append(src)

    for k, (sx1, sy1, sx2, sy2) in enumerate(slices):
        if n:
            inter = np.stack([np.maximum(gt.xyxy[:, 0], sx1), np.maximum(gt.xyxy[:, 1], sy1),
                              np.minimum(gt.xyxy[:, 2], sx2), np.minimum(gt.xyxy[:, 3], sy2)], axis=1)
            iw, ih = inter[:, 2] - inter[:, 0], inter[:, 3] - inter[:, 1]
            visible = np.where((iw > 0) & (ih > 0), iw * ih, 0) / np.maximum(gt.area, 1e-6)
            for i in np.flatnonzero(visible > 0.15):
                if rng.random() < p_slice[i] * min(1.0, visible[i] / 0.5):
                    cut = visible[i] < 0.999
                    add(inter[i].copy(), base[i] - (0.12 if cut else 0.0), int(gt.class_id[i]), k)
        for _ in range(rng.poisson(fp_per_slice)):
            bw, bh = rng.uniform(12, 50), rng.uniform(20, 90)
            x, y = rng.uniform(sx1, sx2 - bw), rng.uniform(sy1, sy2 - bh)
            add(np.array([x, y, x + bw, y + bh], np.float32), rng.uniform(0.1, 0.65), int(rng.integers(num_classes)), k)
    if full_frame:
        for i in range(n):
            if rng.random() < p_full[i]:
                add(gt.xyxy[i].copy(), base[i] - 0.35, int(gt.class_id[i]), -1)  # seen, but less sure
        w, hh = image_wh
        for _ in range(rng.poisson(0.5)):
            bw, bh = rng.uniform(30, 120), rng.uniform(40, 160)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, hh - bh)
            add(np.array([x, y, x + bw, y + bh], np.float32), rng.uniform(0.05, 0.3), int(rng.integers(num_classes)), -1)
    if not xyxy:
        return Detections.empty().with_attributes(source=np.zeros(0, np.int32))
    det = Detections(xyxy=np.array(xyxy, np.float32), score=score, class_id=cls,
                     attributes={"source": np.array(source, np.int32)})
    return det.clip(image_wh)

"""Ultralytics YOLO weights (``.pt``) as a detector callable (``[yolo]`` extra).

Only a local weights file is accepted: Ultralytics would otherwise download a model named like
``yolov8n.pt`` that is not on disk. Ultralytics treats numpy images as BGR, so the RGB frames
are flipped on the way in.

Example:
    >>> from sitesight.predictors.ultralytics import build_ultralytics_detector
    >>> detect = build_ultralytics_detector("runs/train/weights/best.pt", conf=0.05)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError, MissingExtraError

__all__ = ["build_ultralytics_detector"]


def _numpy(value: object) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)


def build_ultralytics_detector(
    weights_path: Path | str,
    *,
    conf: float = 0.05,
    iou: float = 0.7,
    image_size: int = 640,
    device: str = "cpu",
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """A detector callable around ``ultralytics.YOLO(weights_path)``.

    Args:
        weights_path: local ``.pt`` file.
        conf: Ultralytics' confidence threshold.
        iou: Ultralytics' NMS IoU threshold.
        image_size: inference size (``imgsz``); slices of this size are not resized.
        device: ``"cpu"``, ``"cuda:0"``...

    Raises:
        InputError: the weights file does not exist.
        MissingExtraError: ultralytics is not installed.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise InputError("YOLO weights file not found (nothing is downloaded)", weights_path)
    try:
        from ultralytics import YOLO
    except ImportError:
        raise MissingExtraError("ultralytics", "yolo") from None
    model = YOLO(str(weights_path))

    def detect(images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
        results = model.predict(bgr, conf=conf, iou=iou, imgsz=image_size, device=device, verbose=False)
        return [
            Detections(
                xyxy=_numpy(r.boxes.xyxy).reshape(-1, 4),
                score=_numpy(r.boxes.conf).reshape(-1),
                class_id=_numpy(r.boxes.cls).reshape(-1).astype(np.int64),
            )
            for r in results
        ]

    return detect

"""Ultralytics YOLO weights (``.pt``) as a detector callable (``[yolo]`` extra).

A local weights file, or a bare release name (``yolo11m.pt``) that Ultralytics downloads into its
own weights folder the way ``YOLO("yolo11m.pt")`` does; offline, that fails with one line saying
what to download and where to put it. Ultralytics treats numpy images as BGR, so the RGB frames
are flipped on the way in. ``image_size=None`` runs each batch at its own size (its longest side
rounded up to a multiple of 32): the caller decides how large a slice or a frame is.

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


def _ultralytics_device(device: str) -> str:
    """sitesight's ``cuda:1`` → Ultralytics' ``1`` (its ``select_device`` spelling); ``cpu`` / ``mps`` as they are."""
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def _batch_size(images: list[np.ndarray], stride: int = 32) -> int:
    """The longest side in the batch, rounded up to a multiple of ``stride``."""
    side = max(max(im.shape[:2]) for im in images)
    return -(-side // stride) * stride


def build_ultralytics_detector(
    weights_path: Path | str,
    *,
    conf: float = 0.05,
    iou: float = 0.7,
    image_size: int | None = 640,
    device: str = "cpu",
    half: bool = False,
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """A detector callable around ``ultralytics.YOLO(weights_path)``.

    Args:
        weights_path: local ``.pt`` file, or a release name such as ``yolo11m.pt`` (downloaded by Ultralytics).
        conf: Ultralytics' confidence threshold.
        iou: Ultralytics' NMS IoU threshold.
        image_size: inference size (``imgsz``); ``None`` = each batch's longest side rounded up to 32.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` (Ultralytics' ``device=``).
        half: float16 inference (Ultralytics' ``half=``; CUDA only).

    Raises:
        InputError: the weights file does not exist, or a release name cannot be downloaded.
        MissingExtraError: ultralytics is not installed.
    """
    text = str(weights_path)
    weights_path = Path(weights_path)
    release = not weights_path.exists() and weights_path.name == text and weights_path.suffix == ".pt"
    if not weights_path.is_file() and not release:
        raise InputError("YOLO weights file not found", weights_path)
    try:
        from ultralytics import YOLO
    except ImportError:
        raise MissingExtraError("ultralytics", "yolo") from None
    try:
        model = YOLO(text)
    except Exception as exc:  # Ultralytics raises its own (and requests') errors for a failed download
        if not release:
            raise InputError(f"cannot load YOLO weights ({type(exc).__name__}: {exc})", weights_path) from None
        raise InputError(
            f"cannot fetch Ultralytics weights {text!r} ({type(exc).__name__}); on a machine with network run "
            f"`yolo predict model={text}` or download https://github.com/ultralytics/assets/releases/latest/download/{text}, "
            "copy the file here and pass yolo:PATH"
        ) from None
    run_device = _ultralytics_device(device)

    def detect(images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
        imgsz = image_size if image_size is not None else _batch_size(images)
        results = model.predict(bgr, conf=conf, iou=iou, imgsz=imgsz, device=run_device, half=half, verbose=False)
        return [
            Detections(
                xyxy=_numpy(r.boxes.xyxy).reshape(-1, 4),
                score=_numpy(r.boxes.conf).reshape(-1),
                class_id=_numpy(r.boxes.cls).reshape(-1).astype(np.int64),
            )
            for r in results
        ]

    names = getattr(model, "names", None)  # {class id: name}: the run records them (`detect_to_run`)
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        detect.class_names = tuple(str(names[k]) for k in sorted(names))  # type: ignore[attr-defined]
    return detect

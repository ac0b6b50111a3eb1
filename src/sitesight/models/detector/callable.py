"""A trained IoU-aware RetinaNet as a detector callable, and loading it from its checkpoint.

A detector is ``Callable[[list[np.ndarray]], list[Detections]]``: RGB uint8 ``(H, W, 3)`` images in,
one `Detections` per image out, boxes ``xyxy`` in that image's pixels, ``score`` = S =
``p^alpha * IoU^(1 - alpha)``, and two float32 attributes that sliced runs store beside the box:
``"cls_score"`` (the raw class probability p) and ``"iou_pred"`` (the IoU branch's prediction), so
`sitesight.evaluation.iou_aware` can re-rank for any alpha later without the model.

Example:
    >>> from sitesight.models.detector.callable import load_detector_callable
    >>> detect = load_detector_callable("runs/det/best.safetensors", alpha=0.5)  # doctest: +SKIP
    >>> dets = detect([rgb])  # doctest: +SKIP
    >>> dets[0].attributes["iou_pred"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.models.detector.iou_aware import KIND, IoUAwareRetinaNet

__all__ = ["to_input", "outputs_to_detections", "predict_images", "detector_callable", "load_detector", "load_detector_callable"]


def to_input(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB → ``(3, H, W)`` float32 in ``[0, 1]`` (the model normalises itself)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    array = image if image.flags.writeable and image.flags.c_contiguous else np.array(image)
    return torch.from_numpy(array).to(device).permute(2, 0, 1).float().div_(255.0)


def outputs_to_detections(output: dict[str, torch.Tensor]) -> Detections:
    """One torchvision-style output dict → `Detections` with ``cls_score`` / ``iou_pred`` attributes when present."""
    attributes = {}
    if "cls_scores" in output:
        attributes["cls_score"] = output["cls_scores"].detach().float().cpu().numpy().astype(np.float32)
        attributes["iou_pred"] = output["iou_preds"].detach().float().cpu().numpy().astype(np.float32)
    return Detections(
        xyxy=output["boxes"].detach().float().cpu().numpy(),
        score=output["scores"].detach().float().cpu().numpy(),
        class_id=output["labels"].detach().cpu().numpy().astype(np.int64),
        attributes=attributes,
    )


@torch.inference_mode()
def predict_images(
    model: IoUAwareRetinaNet, images: Sequence[np.ndarray], *, batch_size: int = 8, half: bool = False
) -> list[Detections]:
    """Run ``model`` (switched to eval mode) on RGB uint8 images, ``batch_size`` at a time; one `Detections` each.

    ``half`` runs the forward pass under float16 autocast when the model is on CUDA.
    """
    model.eval()
    device = next(model.parameters()).device
    out: list[Detections] = []
    for start in range(0, len(images), batch_size):
        batch = [to_input(im, device) for im in images[start : start + batch_size]]
        with torch.autocast("cuda", dtype=torch.float16, enabled=half and device.type == "cuda"):
            outputs = model(batch)
        out.extend(outputs_to_detections(o) for o in outputs)
    return out


def detector_callable(
    model: IoUAwareRetinaNet,
    *,
    alpha: float | None = None,
    score_threshold: float | None = None,
    nms_threshold: float | None = None,
    batch_size: int = 8,
    half: bool = False,
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """Wrap ``model`` as a detector callable; the given settings are set on ``model`` (it is owned from here on).

    Args:
        model: an IoU-aware RetinaNet (any device; inputs follow it).
        alpha: score ``S = p^alpha * IoU^(1 - alpha)``; None keeps the model's.
        score_threshold: minimum S kept; None keeps the model's.
        nms_threshold: IoU of the in-model class-wise NMS; None keeps the model's.
        batch_size: images per forward pass.
        half: float16 autocast on CUDA.
    """
    if alpha is not None:
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"alpha must lie in [0, 1], got {alpha}", where="alpha")
        model.alpha = float(alpha)
    if score_threshold is not None:
        model.score_thresh = float(score_threshold)
    if nms_threshold is not None:
        model.nms_thresh = float(nms_threshold)
    model.eval()

    def detect(images: list[np.ndarray]) -> list[Detections]:
        return predict_images(model, images, batch_size=batch_size, half=half)

    detect.class_names = tuple(model.config.class_names)  # type: ignore[attr-defined]  # recorded in the run
    return detect


def load_detector(path: Path | str, *, device: str = "cpu") -> tuple[IoUAwareRetinaNet, dict[str, Any]]:
    """Rebuild the IoU-aware RetinaNet stored in a checkpoint (`sitesight.models.checkpoint.load_checkpoint`).

    Returns:
        ``(model in eval mode on device, stored config dict)``.

    Raises:
        InputError: missing file, not a sitesight checkpoint, another model kind, or weights that do not fit.
    """
    from sitesight.models.checkpoint import load_checkpoint

    model, config = load_checkpoint(path, kind=KIND, device=device)
    return model, config  # type: ignore[return-value]


def load_detector_callable(
    path: Path | str,
    *,
    device: str = "cpu",
    alpha: float | None = None,
    score_threshold: float | None = None,
    batch_size: int = 8,
    half: bool = False,
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """`load_detector` then `detector_callable` (alpha and threshold default to the checkpoint's)."""
    model, _ = load_detector(path, device=device)
    return detector_callable(model, alpha=alpha, score_threshold=score_threshold, batch_size=batch_size, half=half)

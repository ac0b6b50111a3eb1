"""YOLO-style ONNX exports run with ONNX Runtime: letterbox, decode, NMS (``[onnx]`` extra).

Input: one float32 tensor ``(B, 3, S, S)`` RGB in ``[0, 1]`` (``B`` fixed at 1 or dynamic; ``S``
from the model, or ``input_size`` when dynamic; ``input_size=None``: each batch's longest side
rounded up to a multiple of 32). ``device`` picks ONNX Runtime's execution providers: on
``cuda[:N]`` TensorRT (when the runtime has it) then CUDA then the CPU; on ``auto`` the same when
the runtime has CUDA, else the CPU. Images are letterboxed the way Ultralytics does:
resized to fit keeping the aspect ratio, centred, padded with grey 114.

Output layouts, told apart by orientation:

* ``(B, 4 + C, A)`` — YOLOv8/v11 exports: ``cx, cy, w, h`` then ``C`` class scores per anchor;
* ``(B, A, 5 + C)`` — YOLOv5 exports: ``cx, cy, w, h, objectness`` then ``C`` class
  probabilities (score = objectness × class probability).

Boxes are in letterboxed-input pixels; they are mapped back to the image, filtered by ``conf``
and pruned by class-aware NMS (`sitesight.sliced.merge`).

Example:
    >>> from sitesight.predictors.onnx import build_onnx_detector
    >>> detect = build_onnx_detector("yolov8n.onnx", conf=0.25)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError, MissingExtraError

__all__ = ["build_onnx_detector", "letterbox", "decode_yolo", "execution_providers"]

MAX_NMS_INPUT = 30000  # as Ultralytics: an untrained model must not make NMS quadratic in anchors


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Fit ``(H, W, 3)`` uint8 into ``(size, size, 3)`` keeping aspect ratio, centred, grey padding.

    Returns:
        ``(canvas, scale, (pad_x, pad_y))``: input pixel = image pixel × scale + pad.
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (size - nw) / 2, (size - nh) / 2
    left, top = int(round(pad_x - 0.1)), int(round(pad_y - 0.1))
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    return canvas, scale, (float(left), float(top))


def decode_yolo(output: np.ndarray, *, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw YOLO output → ``(xyxy (M, 4), score (M,), class_id (M,))`` above ``conf``.

    Args:
        output: ``(4 + C, A)`` (v8 layout) or ``(A, 5 + C)`` (v5 layout) float array.
    """
    if output.ndim != 2:
        raise ValueError(f"YOLO output: expected a 2-D array per image, got shape {output.shape}")
    if output.shape[0] < output.shape[1]:  # (4 + C, A): v8 style, no objectness
        rows = output.T
        cls_scores = rows[:, 4:]
    else:  # (A, 5 + C): v5 style
        rows = output
        cls_scores = rows[:, 5:] * rows[:, 4:5]
    if cls_scores.shape[1] == 0:
        raise ValueError(f"YOLO output: no class columns in shape {output.shape}")
    class_id = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(rows)), class_id]
    keep = score >= conf
    c = rows[keep, :4]
    xyxy = np.concatenate([c[:, :2] - c[:, 2:4] / 2, c[:, :2] + c[:, 2:4] / 2], axis=1)
    return xyxy.astype(np.float32), score[keep].astype(np.float32), class_id[keep].astype(np.int64)


def execution_providers(device: str, available: list[str]) -> list[str | tuple[str, dict]]:
    """ONNX Runtime providers for a sitesight device name, from those the runtime ``available`` has.

    Raises:
        InputError: ``cuda`` asked for but the runtime has no CUDA provider (``pip install onnxruntime-gpu``).
    """
    if device in ("cpu", "mps"):  # ONNX Runtime has no MPS provider; CoreML is a different model path
        return ["CPUExecutionProvider"]
    if device != "auto" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r} for ONNX Runtime; use auto, cpu, cuda or cuda:N", where="--device")
    if "CUDAExecutionProvider" not in available:
        if device == "auto":
            return ["CPUExecutionProvider"]
        raise InputError(
            f"device {device!r}: this ONNX Runtime has no CUDA provider (has {available}); `pip install onnxruntime-gpu`",
            where="--device",
        )
    index = int(device.partition(":")[2] or 0)
    providers: list[str | tuple[str, dict]] = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {"device_id": index}))
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    providers.append("CPUExecutionProvider")
    return providers


def build_onnx_detector(
    path: Path | str,
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    input_size: int | None = 640,
    max_det: int = 300,
    class_agnostic: bool = False,
    device: str = "cpu",
    providers: list[str] | None = None,
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """A detector callable around a YOLO-style ONNX model.

    Args:
        path: the ``.onnx`` file.
        conf: score threshold before NMS.
        iou: NMS IoU threshold.
        input_size: square input side used when the model's own is dynamic (``None``: per batch).
        max_det: most boxes kept per image (highest scores).
        class_agnostic: NMS across classes.
        device: ``"cpu"``, ``"auto"``, ``"cuda"``, ``"cuda:1"`` (see `execution_providers`).
        providers: ONNX Runtime execution providers; overrides ``device``.

    Raises:
        InputError: the file is missing or not a loadable model.
        MissingExtraError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "onnx") from None
    from sitesight.sliced.merge import merge

    path = Path(path)
    if not path.is_file():
        raise InputError("ONNX model not found", path)
    chosen = providers or execution_providers(device, ort.get_available_providers())
    try:
        session = ort.InferenceSession(str(path), providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InputError(f"cannot load ONNX model ({exc})", path) from None
    class_names = _metadata_names(session)
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4:
        raise InputError(f"expected a (B, 3, S, S) input, got {shape}", path, inp.name)
    fixed = shape[2] if isinstance(shape[2], int) and shape[2] > 0 else input_size
    max_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {inp.name: batch})[0]

    def detect(images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        size = fixed if fixed is not None else -(-max(max(im.shape[:2]) for im in images) // 32) * 32
        boxed = [letterbox(im, size) for im in images]
        batch = np.stack([b[0] for b in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        step = max_batch or len(images)
        outputs = np.concatenate([run(batch[i : i + step]) for i in range(0, len(images), step)])
        result = []
        for image, (_, scale, (px, py)), output in zip(images, boxed, outputs, strict=True):
            xyxy, score, class_id = decode_yolo(output, conf=conf)
            xyxy = (xyxy - np.array([px, py, px, py], np.float32)) / scale
            det = Detections(xyxy=xyxy, score=score, class_id=class_id).clip((image.shape[1], image.shape[0]))
            det = det.sorted_by_score()[:MAX_NMS_INPUT]
            det = merge(det, method="nms", metric="iou", threshold=iou, class_agnostic=class_agnostic)
            result.append(det.sorted_by_score()[:max_det])
        return result

    if class_names is not None:
        detect.class_names = class_names  # type: ignore[attr-defined]  # recorded in the run (`detect_to_run`)
    return detect


def _metadata_names(session: object) -> tuple[str, ...] | None:
    """Class names an Ultralytics export writes into the model metadata (``names: "{0: 'person', ...}"``)."""
    import ast

    try:
        text = session.get_modelmeta().custom_metadata_map.get("names")  # type: ignore[attr-defined]
        names = ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError, AttributeError, MemoryError, RecursionError):
        return None
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names) and len(names) <= 100_000:
        return tuple(str(names[k]) for k in sorted(names))
    return None

"""Detector builders: each turns a model on disk into a detector callable.

A detector is ``Callable[[list[np.ndarray]], list[Detections]]`` (RGB uint8 ``(H, W, 3)`` images in,
one `Detections` per image out, boxes in that image's pixels). `build_detector` parses the CLI's
model spec and puts the model on ``device`` (``"auto"``: CUDA, then MPS, then the CPU; resolved
once by `sitesight.device.resolve_device_name`); ``half=True`` runs it in float16 where the
backend supports it (Ultralytics, torchvision and IoU-aware models on CUDA). Ultralytics and
ONNX models see each batch at its own size (rounded up to a multiple of 32): the size a slice
or the full frame is given to the model is chosen by `sitesight.sliced.predict.predict_sliced`
(``imgsz`` / ``full_imgsz``).

====================================================  ===========================================
``yolo:PATH.pt`` or ``yolo:NAME.pt``                   Ultralytics YOLO weights (``[yolo]`` extra); a
                                                      bare release name (``yolo11m.pt``) that is not
                                                      a file is fetched by Ultralytics' own download
``torchvision:ARCH:PATH``                             a torchvision detection architecture by name
                                                      (e.g. ``retinanet_resnet50_fpn``) with local
                                                      weights (``[torch]`` extra)
``onnx:PATH.onnx``                                    a YOLO-style ONNX export (``[onnx]`` extra)
``replay:RESULTS.json:IMAGES.json``                   recorded COCO results; ``IMAGES.json`` is the
                                                      COCO file naming the images (not needed when
                                                      RESULTS.json has its own ``images``)
``iouaware:CKPT.safetensors``                         a trained sitesight IoU-aware RetinaNet
                                                      (``sitesight train det``; ``[torch]`` extra);
                                                      its scores are ``p^alpha * IoU^(1 - alpha)``
                                                      with the checkpoint's alpha
====================================================  ===========================================

Example:
    >>> from sitesight.predictors import build_detector
    >>> detector = build_detector("onnx:models/yolov8n.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sitesight.errors import InputError

__all__ = ["BUILDERS", "RunOptions", "build_detector", "parse_spec"]


@dataclass(frozen=True)
class RunOptions:
    """How a detector runs: score floor, resolved device (``"cpu"``, ``"cuda:1"``…), float16."""

    conf: float = 0.05
    device: str = "cpu"
    half: bool = False


def _yolo(args: list[str], run: RunOptions) -> Callable:
    from sitesight.predictors.ultralytics import build_ultralytics_detector

    (path,) = args
    return build_ultralytics_detector(path, conf=run.conf, image_size=None, device=run.device, half=run.half)


def _torchvision(args: list[str], run: RunOptions) -> Callable:
    from sitesight.predictors.torchvision import build_torchvision_detector

    arch, path = args
    return build_torchvision_detector(arch, path, score_threshold=run.conf, device=run.device, half=run.half)


def _onnx(args: list[str], run: RunOptions) -> Callable:
    from sitesight.predictors.onnx import build_onnx_detector

    if run.half:
        raise InputError("--half: an ONNX model runs in the precision it was exported in (export it in float16)", where="--half")
    (path,) = args
    return build_onnx_detector(path, conf=run.conf, input_size=None, device=run.device)


def _iouaware(args: list[str], run: RunOptions) -> Callable:
    from sitesight.models.detector.callable import load_detector_callable

    (path,) = args
    return load_detector_callable(path, score_threshold=run.conf, device=run.device, half=run.half)


def _replay(args: list[str], run: RunOptions) -> Callable:
    from sitesight.predictors.replay import build_replay_detector

    return build_replay_detector(args[0], args[1] if len(args) > 1 else None, conf=run.conf)


# kind -> (builder, number of ':'-separated arguments allowed, usage)
BUILDERS: dict[str, tuple[Callable[[list[str], RunOptions], Callable], tuple[int, ...], str]] = {
    "yolo": (_yolo, (1,), "yolo:WEIGHTS.pt"),
    "torchvision": (_torchvision, (2,), "torchvision:ARCH:WEIGHTS"),
    "onnx": (_onnx, (1,), "onnx:MODEL.onnx"),
    "replay": (_replay, (1, 2), "replay:RESULTS.json[:IMAGES.json]"),
    "iouaware": (_iouaware, (1,), "iouaware:CHECKPOINT.safetensors"),
}


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """Split ``"kind:arg[:arg]"`` and check the kind, the argument count and that files exist.

    Raises:
        InputError: unknown kind (the message lists the valid ones), wrong arity, or a missing file.
    """
    kind, sep, rest = spec.partition(":")
    if kind not in BUILDERS or not sep:
        raise InputError(f"unknown model spec {spec!r}; use one of: " + ", ".join(u for _, _, u in BUILDERS.values()))
    _, arities, usage = BUILDERS[kind]
    args = rest.split(":")
    if kind == "torchvision" and len(args) > 2:  # keep ':' inside the path (rare, but legal)
        args = [args[0], ":".join(args[1:])]
    if len(args) not in arities or not all(args):
        raise InputError(f"model spec {spec!r}: expected {usage}")
    for path in args[1:] if kind == "torchvision" else args:
        if kind == "yolo" and _is_release_name(path):
            continue  # Ultralytics downloads its released weights by name (and caches them)
        if not Path(path).is_file():
            raise InputError(f"model spec {spec!r}: no such file", path)
    return kind, args


def _is_release_name(text: str) -> bool:
    """``yolo11m.pt``, ``yolov8n.pt``: a bare file name (no folder) that Ultralytics can fetch."""
    path = Path(text)
    return not path.exists() and path.name == text and path.suffix == ".pt" and text.lower().startswith("yolo")


def build_detector(spec: str, *, conf: float = 0.05, device: str = "cpu", half: bool = False) -> Callable:
    """A detector callable from a model spec (see the module docstring).

    Args:
        spec: ``kind:arguments``.
        conf: the lowest score the model should return (keep it low: sweeps raise it later).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; resolved here, once.
        half: float16 inference where the backend supports it (an error for ONNX models).
    """
    from sitesight.device import resolve_device_name

    kind, args = parse_spec(spec)
    # ONNX Runtime has its own CUDA build, independent of torch's: it picks its providers itself
    resolved = device if kind in ("onnx", "replay") else resolve_device_name(device)
    return BUILDERS[kind][0](args, RunOptions(conf=conf, device=resolved, half=half))

"""torchvision detection models (RetinaNet, Faster R-CNN, FCOS, SSD...) as detector callables.

The architecture is built by name with no pretrained weights, then loaded from a local file
(``.safetensors``, or a ``torch.save``\\ d state dict, optionally under a ``"model"`` or
``"state_dict"`` key). The number of classes is read from the file when not given. torch is
imported inside the functions only (``[torch]`` extra).

Example:
    >>> from sitesight.predictors.torchvision import build_torchvision_detector
    >>> detect = build_torchvision_detector("retinanet_resnet50_fpn", "retinanet.pt")  # doctest: +SKIP
    >>> detect([rgb])[0].xyxy.shape  # doctest: +SKIP
    (12, 4)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError, MissingExtraError

__all__ = ["build_torchvision_detector", "load_state_dict", "wrap_torchvision_model"]


def _torch() -> Any:
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch/torchvision", "torch") from None
    return torch


def load_state_dict(path: Path | str) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a torch file (tensors only: ``weights_only=True``).

    Raises:
        InputError: the file is missing or holds no state dict.
    """
    torch = _torch()
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("weights file not found", path) from None
    except Exception as exc:  # corrupt or foreign file: one line for the user
        raise InputError(f"cannot load weights ({type(exc).__name__}: {exc})", path) from None
    for key in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state:
        raise InputError("no state dict in the weights file", path)
    return dict(state)


def _build(arch: str, num_classes: int, image_size: tuple[int, int] | None) -> Any:
    from torchvision.models import detection, list_models

    builders = {n: getattr(detection, n) for n in list_models(module=detection) if hasattr(detection, n)}
    if arch not in builders:
        raise InputError(f"unknown torchvision detection architecture {arch!r}; choose from {sorted(builders)}")
    extra = {} if image_size is None else {"min_size": image_size[0], "max_size": image_size[1]}
    try:
        return builders[arch](weights=None, weights_backbone=None, num_classes=num_classes, **extra)
    except TypeError:  # SSD-style builders take no min/max size
        return builders[arch](weights=None, weights_backbone=None, num_classes=num_classes)


def _infer_num_classes(model: Any, state: Mapping[str, Any], num_classes: int) -> int | None:
    """The class count the weights were trained with, from the first head tensor whose size differs."""
    own = model.state_dict()
    for key, tensor in state.items():
        if key in own and own[key].ndim >= 1 and tuple(own[key].shape) != tuple(tensor.shape):
            a, b = int(own[key].shape[0]), int(tensor.shape[0])
            if a % num_classes == 0 and (b * num_classes) % a == 0:
                return b * num_classes // a
    return None


def wrap_torchvision_model(
    model: Any, *, score_threshold: float = 0.05, device: str = "cpu", label_offset: int = 0, half: bool = False
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """A detector callable around a torchvision-style model in eval mode.

    The model takes a list of float ``(3, H, W)`` tensors in ``[0, 1]`` and returns dicts with
    ``boxes`` (xyxy pixels), ``scores`` and ``labels``. ``class_id = label - label_offset``.
    ``half`` runs it under float16 autocast on CUDA (ignored on other devices).
    """
    torch = _torch()
    model = model.eval().to(device)
    autocast = half and str(device).startswith("cuda")

    def detect(images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        with torch.inference_mode(), warnings.catch_warnings(), torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
            # decoded frames are read-only views; the tensor is only read (.float() copies it)
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = [torch.from_numpy(np.ascontiguousarray(im)).to(device).permute(2, 0, 1).float().div_(255) for im in images]
            outputs = model(tensors)
        out = []
        for o in outputs:
            keep = o["scores"] >= score_threshold
            out.append(Detections(
                xyxy=o["boxes"][keep].float().cpu().numpy(),
                score=o["scores"][keep].float().cpu().numpy(),
                class_id=o["labels"][keep].cpu().numpy().astype(np.int64) - label_offset,
            ))
        return out

    return detect


def build_torchvision_detector(
    arch: str,
    weights_path: Path | str,
    *,
    num_classes: int | None = None,
    score_threshold: float = 0.05,
    image_size: tuple[int, int] | None = None,
    device: str = "cpu",
    label_offset: int = 0,
    half: bool = False,
) -> Callable[[list[np.ndarray]], list[Detections]]:
    """A torchvision detection architecture with local weights, as a detector callable.

    Args:
        arch: builder name in ``torchvision.models.detection`` (``retinanet_resnet50_fpn``,
            ``fasterrcnn_mobilenet_v3_large_fpn``, ``fcos_resnet50_fpn``, ``ssdlite320_mobilenet_v3_large``...).
        weights_path: local weights file; nothing is downloaded.
        num_classes: classes including torchvision's background slot where the architecture has
            one; read from the weights when None.
        score_threshold: boxes below it are dropped.
        image_size: ``(min_size, max_size)`` of the model's internal resize; None keeps the
            architecture's default.
        device: torch device string.
        label_offset: subtracted from the model's labels (1 for background-first checkpoints).
        half: float16 autocast on CUDA.

    Raises:
        InputError: unknown architecture, unreadable weights, or weights that do not fit.
        MissingExtraError: torch/torchvision not installed.
    """
    _torch()
    state = load_state_dict(weights_path)
    guess = num_classes or 91
    model = _build(arch, guess, image_size)
    if num_classes is None:
        inferred = _infer_num_classes(model, state, guess)
        if inferred is not None and inferred != guess:
            model = _build(arch, inferred, image_size)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"weights do not fit {arch}: {' '.join(first[:3])[:300]}", weights_path) from None
    return wrap_torchvision_model(model, score_threshold=score_threshold, device=device, label_offset=label_offset, half=half)

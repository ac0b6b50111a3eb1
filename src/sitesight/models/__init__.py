"""Models on torch: backbones, the RoI attribute head, image classifiers, detectors, their training loops.

Everything torch lives in this package, behind the ``[torch]`` extra. Importing
``sitesight.models`` only checks that torch, torchvision and timm are installed (raising
`MissingExtraError` with the pip line when not); torch itself is imported by the submodules
(``sitesight.models.backbone`` …) when they are used.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from sitesight.errors import MissingExtraError

__all__ = ["require_torch", "build_backbone", "load_weights_file", "load_checkpoint", "MODEL_BUILDERS"]

_LAZY = {
    "build_backbone": "sitesight.models.backbone",
    "load_weights_file": "sitesight.models.backbone",
    "load_checkpoint": "sitesight.models.checkpoint",  # any sitesight checkpoint, whatever its kind
    "MODEL_BUILDERS": "sitesight.models.checkpoint",
}


def require_torch() -> None:
    """Raise `MissingExtraError` naming the first of torch / torchvision / timm / safetensors absent."""
    for package in ("torch", "torchvision", "timm", "safetensors"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(package, "torch")


require_torch()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sitesight.models' has no attribute {name!r}")

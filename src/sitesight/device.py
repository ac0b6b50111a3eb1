"""Which device a model runs on: ``"auto"`` → ``cuda`` → ``mps`` → ``cpu``, or a device the user names.

Resolved once, at the edge (the CLI or a library entry point), then passed down as a plain string
that torch, Ultralytics (``device=``) and ONNX Runtime (execution providers) all understand.
torch is imported only when it is installed; without it ``"auto"`` is ``"cpu"``.

Example:
    >>> from sitesight.device import resolve_device_name
    >>> resolve_device_name("cpu")
    'cpu'
    >>> resolve_device_name("auto") in ("cuda", "mps", "cpu")
    True
"""

from __future__ import annotations

import importlib.util
import re

from sitesight.errors import InputError

__all__ = ["resolve_device_name", "DEVICE_HELP"]

DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps."
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|\d+)$")


def resolve_device_name(device: str = "auto") -> str:
    """``"auto"`` → the best device present; ``"0"`` → ``"cuda:0"``; anything else checked and returned.

    Raises:
        InputError: a name that is not a device, or a CUDA / MPS device that is not present.
    """
    text = str(device).strip().lower()
    if not _PATTERN.match(text):
        raise InputError(f"unknown device {device!r}; use {DEVICE_HELP}", where="--device")
    if text.isdigit():
        text = f"cuda:{text}"
    torch = _torch()
    if torch is None:  # nothing to ask: the backend (ONNX Runtime) checks an explicit device itself
        return "cpu" if text == "auto" else text
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but CUDA is not available here (use --device cpu)", where="--device")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here", where="--device")
    if text == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' asked for, but MPS is not available here (use --device cpu)", where="--device")
    return text


def _torch():  # noqa: ANN202
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch

"""Save and load anomaly detectors: a folder with ``model.safetensors`` and ``config.json``.

``config.json`` holds the method (``"ae"`` or ``"memory"``), every constructor argument and scoring
setting, and optionally a calibrated threshold (``"threshold"``: its value, source and target); the
safetensors file holds the weights (and, for the memory detector, the ``memory_bank`` tensor, and
the backbone weights so that a random-initialised backbone rebuilds exactly). An autoencoder also
writes its training history as ``history.json`` and ``history.csv``. The folder alone rebuilds the
detector.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from sitesight.errors import InputError
from sitesight.models.anomaly.autoencoder import AutoencoderConfig, AutoencoderDetector, build_autoencoder
from sitesight.models.anomaly.maps import resolve_device
from sitesight.models.anomaly.memory import MemoryConfig, MemoryDetector, build_feature_extractor

__all__ = ["AnomalyDetector", "save_detector", "load_detector", "read_config"]

AnomalyDetector = AutoencoderDetector | MemoryDetector
_MEMORY_KEY = "memory_bank"


def save_detector(detector: AnomalyDetector, out_dir: Path | str, *, threshold: dict[str, Any] | None = None) -> Path:
    """Write ``detector`` into ``out_dir`` (created); returns the folder.

    Args:
        detector: a fitted `AutoencoderDetector` or `MemoryDetector`.
        out_dir: destination folder.
        threshold: calibration to store with it, e.g. ``{"value": 0.12, "source": "normals",
            "false_alarm_rate": 0.01}``; `predict` flags images at or above ``value``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = detector.config_dict()
    if threshold is not None:
        config["threshold"] = threshold
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in detector.model.state_dict().items()}
    if isinstance(detector, MemoryDetector):
        tensors[_MEMORY_KEY] = detector.memory.detach().cpu().contiguous()
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if isinstance(detector, AutoencoderDetector) and detector.history:
        (out / "history.json").write_text(json.dumps(list(detector.history), indent=2) + "\n")
        with (out / "history.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(detector.history[0]))
            writer.writeheader()
            writer.writerows(detector.history)
    return out


def read_config(model_dir: Path | str) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved detector.

    Raises:
        InputError: missing folder or file, bad JSON, or an unknown ``method``.
    """
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise InputError("not an anomaly model folder (no config.json)", Path(model_dir))
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path, f"line {exc.lineno}") from None
    if not isinstance(config, dict) or config.get("method") not in ("ae", "memory"):
        raise InputError("expected an object with method 'ae' or 'memory'", path, "method")
    return config


def load_detector(model_dir: Path | str, *, device: str | None = None) -> AnomalyDetector:
    """Rebuild a detector saved by `save_detector` (eval mode, on ``device``; ``None`` = CUDA if available)."""
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        raise InputError("missing model.safetensors", model_dir)
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # corrupt file: say which
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", weights_path) from None
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    dev = resolve_device(device)
    settings = {k: v for k, v in config.items() if k not in ("method", "threshold", "memory_shape")}
    try:
        if config["method"] == "ae":
            ae_config = AutoencoderConfig(**settings)
            model = build_autoencoder(ae_config)
            _load_state(model, state, weights_path)
            return AutoencoderDetector(model=model.to(dev).eval(), config=ae_config, history=_read_history(model_dir))
        mem_config = MemoryConfig(**settings)
        if _MEMORY_KEY not in tensors:
            raise InputError(f"missing tensor {_MEMORY_KEY!r}", weights_path)
        model = build_feature_extractor(mem_config)
        _load_state(model, state, weights_path)
        return MemoryDetector(model=model.to(dev).eval(), memory=tensors[_MEMORY_KEY].to(dev), config=mem_config)
    except TypeError as exc:  # unknown or missing keys in config.json
        raise InputError(f"config does not fit method {config['method']!r}: {exc}", model_dir / "config.json") from None


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(f"weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}", path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatch
        raise InputError(f"weights do not fit the config: {str(exc).splitlines()[-1].strip()}", path) from None


def _read_history(model_dir: Path) -> tuple[dict[str, Any], ...]:
    path = model_dir / "history.json"
    if not path.is_file():
        return ()
    try:
        return tuple(json.loads(path.read_text()))
    except json.JSONDecodeError:
        return ()

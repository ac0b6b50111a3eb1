"""Save and load anomaly detectors in sitesight's checkpoint format (`sitesight.models.checkpoint`).

One ``.safetensors`` file holds the weights and, in its metadata, the JSON config (``kind``:
``"anomaly"``, ``method``: ``"ae"`` or ``"memory"``, every constructor argument and scoring setting,
and optionally the calibrated ``threshold``); a readable ``.json`` copy lies beside it. For the
memory detector the file also holds the ``memory_bank`` tensor and the backbone weights, so that a
random-initialised backbone rebuilds exactly. The file alone rebuilds the detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitesight.errors import InputError
from sitesight.models.anomaly.autoencoder import AutoencoderConfig, AutoencoderDetector, build_autoencoder
from sitesight.models.anomaly.memory import MemoryConfig, MemoryDetector, build_feature_extractor
from sitesight.models.checkpoint import read_checkpoint_config, save_checkpoint
from sitesight.models.train import resolve_device

__all__ = ["AnomalyDetector", "save_detector", "load_detector", "read_detector_config"]

AnomalyDetector = AutoencoderDetector | MemoryDetector
KIND = "anomaly"
_SETTINGS_SKIP = ("kind", "method", "threshold", "memory_shape", "history")


class _Stored(nn.Module):
    """What goes into the file: the network as ``model.*`` and, for memory detectors, ``memory_bank``."""

    def __init__(self, model: nn.Module, memory: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        if memory is not None:
            self.register_buffer("memory_bank", memory.detach().contiguous())


def save_detector(detector: AnomalyDetector, path: Path | str, *, threshold: dict[str, Any] | None = None) -> Path:
    """Write ``detector`` to the checkpoint ``path`` (``.safetensors``, plus a ``.json`` copy of the config).

    Args:
        detector: a fitted `AutoencoderDetector` or `MemoryDetector`.
        path: destination file; its folder is created.
        threshold: calibration to store with it, e.g. ``{"value": 0.12, "source": "normals",
            "false_alarm_rate": 0.01}``; prediction flags images scoring at or above ``value``.
    """
    config = {"kind": KIND, **detector.config_dict()}
    if threshold is not None:
        config["threshold"] = threshold
    memory = detector.memory if isinstance(detector, MemoryDetector) else None
    return save_checkpoint(path, _Stored(detector.model, memory), config)


def read_detector_config(path: Path | str) -> dict[str, Any]:
    """The config stored in an anomaly checkpoint.

    Raises:
        InputError: missing or foreign file, or a checkpoint of another kind.
    """
    config = read_checkpoint_config(path)
    if config.get("kind") != KIND or config.get("method") not in ("ae", "memory"):
        raise InputError(
            f"not an anomaly checkpoint (kind {config.get('kind')!r}, method {config.get('method')!r})", path, "metadata"
        )
    return config


def load_detector(path: Path | str, *, device: str = "auto") -> AnomalyDetector:
    """Rebuild a detector saved by `save_detector`, in eval mode on ``device``."""
    from safetensors.torch import load_file

    config = read_detector_config(path)
    settings = {k: v for k, v in config.items() if k not in _SETTINGS_SKIP}
    state = load_file(str(path), device="cpu")
    dev = resolve_device(device)
    try:
        if config["method"] == "ae":
            ae_config = AutoencoderConfig(**settings)
            stored = _Stored(build_autoencoder(ae_config), None)
            _load_state(stored, state, path)
            return AutoencoderDetector(model=stored.model.to(dev).eval(), config=ae_config)
        mem_config = MemoryConfig(**settings)
        if "memory_bank" not in state:
            raise InputError("missing tensor 'memory_bank'", path)
        stored = _Stored(build_feature_extractor(mem_config), state["memory_bank"])
        _load_state(stored, state, path)
        return MemoryDetector(model=stored.model.to(dev).eval(), memory=stored.memory_bank.to(dev), config=mem_config)
    except TypeError as exc:  # unknown or missing settings in the stored config
        raise InputError(f"config does not fit method {config['method']!r}: {exc}", path, "metadata") from None


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing / unexpected keys or shape mismatch
        raise InputError(f"weights do not fit the stored config: {str(exc).splitlines()[0]}", path) from None

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
from sitesight.models.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from sitesight.models.train import resolve_device

__all__ = ["AnomalyDetector", "save_detector", "load_detector", "read_detector_config", "stored_from_config"]

AnomalyDetector = AutoencoderDetector | MemoryDetector
KIND = "anomaly"
_SETTINGS_SKIP = ("kind", "method", "threshold", "memory_shape", "history", "backbone_init")


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


def stored_from_config(config: dict[str, Any]) -> _Stored:
    """The module an ``anomaly`` checkpoint holds (``model.*`` and, for memory detectors, an empty
    ``memory_bank`` of the stored shape), rebuilt from its config: `sitesight.models.checkpoint`'s builder."""
    settings = {k: v for k, v in config.items() if k not in _SETTINGS_SKIP}
    if config.get("method") == "ae":
        return _Stored(build_autoencoder(AutoencoderConfig(**settings)), None)
    shape = config.get("memory_shape")
    if not shape:
        raise KeyError("memory_shape")
    return _Stored(build_feature_extractor(MemoryConfig(**settings)), torch.empty([int(v) for v in shape]))


def load_detector(path: Path | str, *, device: str = "auto") -> AnomalyDetector:
    """Rebuild a detector saved by `save_detector`, in eval mode on ``device``."""
    config = read_detector_config(path)
    settings = {k: v for k, v in config.items() if k not in _SETTINGS_SKIP}
    stored, _ = load_checkpoint(path, kind=KIND, device=str(resolve_device(device)))
    if config["method"] == "ae":
        return AutoencoderDetector(model=stored.model.eval(), config=AutoencoderConfig(**settings))
    return MemoryDetector(model=stored.model.eval(), memory=stored.memory_bank, config=MemoryConfig(**settings),
                          init=str(config.get("backbone_init", "random")))

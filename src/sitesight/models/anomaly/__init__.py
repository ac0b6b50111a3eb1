"""Anomaly detection for parts inspection, trained on normal images only (needs the ``[torch]`` extra).

Two detectors behind one interface (``detector.predict(images) -> AnomalyPrediction`` with image
scores and per-pixel maps): a convolutional autoencoder (`autoencoder`, reconstruction error) and a
PatchCore-style feature-memory detector (`memory`, nearest normal patch). `thresholds` sets
thresholds from normal images and compares them with the best-F1 one; `plots` draws heatmaps and
score histograms; `pipeline` runs both on folders for the CLI; `checkpoint` saves and loads them.
Metrics come from `sitesight.evaluation.anomaly`.

Submodules import torch when used; this package imports nothing heavy itself.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AutoencoderConfig",
    "MemoryConfig",
    "fit_autoencoder",
    "fit_memory",
    "load_detector",
    "save_detector",
    "train_anomaly",
    "predict_anomaly",
    "threshold_table",
]

_LAZY = {
    "AutoencoderConfig": "sitesight.models.anomaly.autoencoder",
    "fit_autoencoder": "sitesight.models.anomaly.autoencoder",
    "MemoryConfig": "sitesight.models.anomaly.memory",
    "fit_memory": "sitesight.models.anomaly.memory",
    "load_detector": "sitesight.models.anomaly.checkpoint",
    "save_detector": "sitesight.models.anomaly.checkpoint",
    "train_anomaly": "sitesight.models.anomaly.pipeline",
    "predict_anomaly": "sitesight.models.anomaly.pipeline",
    "threshold_table": "sitesight.models.anomaly.thresholds",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sitesight.models.anomaly' has no attribute {name!r}")

"""Checkpoints that rebuild their model from the file alone.

One ``.safetensors`` file holds the weights and, in its metadata under ``"sitesight"``, the JSON
config the model was built from (``kind``: ``roi_head`` or ``classifier``, class names, backbone
name, input size, box expansion and jitter…). A copy of that config is written beside it as
``<name>.json`` for people to read; loading needs only the ``.safetensors`` file.

Example:
    >>> from sitesight.models.checkpoint import load_checkpoint   # doctest: +SKIP
    >>> model, config = load_checkpoint("runs/rope/best.safetensors")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitesight.errors import InputError

__all__ = ["save_checkpoint", "read_checkpoint_config", "load_checkpoint"]

_META_KEY = "sitesight"


def save_checkpoint(path: Path | str, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``config`` (JSON-able, with ``kind``) to ``path`` (+ ``.json``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(config, default=list)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={_META_KEY: text})
    tmp.replace(path)  # never leave a half-written best checkpoint behind
    path.with_suffix(".json").write_text(json.dumps(json.loads(text), indent=1))
    return path


def read_checkpoint_config(path: Path | str) -> dict[str, Any]:
    """The JSON config stored in a sitesight checkpoint."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # not a safetensors file
        raise InputError(f"not a safetensors checkpoint ({type(exc).__name__}: {exc})", path) from None
    if _META_KEY not in meta:
        raise InputError(f"no {_META_KEY!r} config in the metadata: not a sitesight checkpoint", path, where="metadata")
    return json.loads(meta[_META_KEY])


def load_checkpoint(path: Path | str, *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described in ``path`` and load its weights; returns ``(model in eval mode, config)``."""
    from safetensors.torch import load_file

    config = read_checkpoint_config(path)
    kind = config.get("kind")
    if kind == "roi_head":
        from sitesight.models.roi_head import RoIHeadConfig, build_roi_head

        model: nn.Module = build_roi_head(RoIHeadConfig.from_dict(_model_fields(config)))
    elif kind == "classifier":
        from sitesight.models.classifier import ClassifierConfig, build_classifier

        model = build_classifier(ClassifierConfig.from_dict(_model_fields(config)))
    else:
        raise InputError(f"unknown model kind {kind!r}; expected 'roi_head' or 'classifier'", path, where="metadata.kind")
    state = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the stored config: {str(exc).splitlines()[0]}", path) from None
    return model.to(torch.device(device)).eval(), config


def _model_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor part of a stored config (drops training extras such as ``epoch``, ``fit``)."""
    return {k: v for k, v in config.items() if k not in ("epoch", "fit", "metrics")}

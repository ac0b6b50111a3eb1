"""Checkpoints that rebuild their model from the file alone, whatever its kind.

One ``.safetensors`` file holds the weights and, in its metadata under ``"sitesight"``, the JSON
config the model was built from (``kind``, class names, backbone name, input size…, and how the
backbone was initialised: ``backbone_init``). A copy of that config is written beside it as
``<name>.json`` for people to read; loading needs only the ``.safetensors`` file.

`MODEL_BUILDERS` is the one table from a stored ``kind`` to the function that rebuilds that
model's network from its config (random-initialised, never downloading: the weights come from
the file). `load_checkpoint` is the one loader: read the config, check the kind, build through
the table, load the weights strictly, move to the device. The table names its builders as
``"module:function"`` strings, imported on first use, so this module imports no model module and
the model modules (training loops included) can all import it: no import cycle.

Example:
    >>> from sitesight.models.checkpoint import load_checkpoint   # doctest: +SKIP
    >>> model, config = load_checkpoint("runs/rope/best.safetensors")   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sitesight.atomic import atomic_path
from sitesight.atomic import write_json as atomic_write_json
from sitesight.errors import InputError
from sitesight.limits import load_json

__all__ = ["MODEL_BUILDERS", "save_checkpoint", "read_checkpoint_config", "build_from_config", "load_checkpoint"]

_META_KEY = "sitesight"

# kind stored in a checkpoint -> "module:function" taking the stored config dict, returning the network
MODEL_BUILDERS: dict[str, str] = {
    "roi_head": "sitesight.models.roi_head:roi_head_from_config",
    "classifier": "sitesight.models.classifier:classifier_from_config",
    "iou_aware_retinanet": "sitesight.models.detector.iou_aware:retinanet_from_config",
    "iou_head": "sitesight.models.detector.iou_head:iou_head_from_config",
    "anomaly": "sitesight.models.anomaly.checkpoint:stored_from_config",
}


def save_checkpoint(path: Path | str, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``config`` (JSON-able, with ``kind``) to ``path`` (+ ``.json``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(config, default=list)
    with atomic_path(path) as tmp:  # never leave a half-written best checkpoint behind
        save_file(state, str(tmp), metadata={_META_KEY: text})
    atomic_write_json(path.with_suffix(".json"), json.loads(text), indent=1)
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
        raise InputError(f"not a safetensors checkpoint ({str(exc)[:120]})", path) from None
    if _META_KEY not in meta:
        raise InputError(f"no {_META_KEY!r} config in the metadata: not a sitesight checkpoint", path, where="metadata")
    config = load_json(path, what="checkpoint config", text=meta[_META_KEY])
    if not isinstance(config, dict):
        raise InputError(f"the stored config is a {type(config).__name__}, expected an object", path, where=f"metadata.{_META_KEY}")
    return config


def build_from_config(config: dict[str, Any], *, path: Path | str | None = None) -> nn.Module:
    """The network a stored config describes, through `MODEL_BUILDERS` (random init: no weights loaded).

    Raises:
        InputError: an unknown ``kind`` (the message lists the known ones), or a config its builder refuses.
    """
    kind = config.get("kind")
    if kind not in MODEL_BUILDERS:
        raise InputError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_BUILDERS)}", path, where="metadata.kind")
    module, _, name = MODEL_BUILDERS[kind].partition(":")
    builder: Callable[[dict[str, Any]], nn.Module] = getattr(importlib.import_module(module), name)
    try:
        return builder(_model_fields(config))
    except (TypeError, ValueError, KeyError) as exc:  # a config written by another version, or edited by hand
        raise InputError(f"stored {kind} config does not rebuild ({type(exc).__name__}: {exc})", path, where="metadata") from None


def load_checkpoint(
    path: Path | str, *, kind: str | None = None, device: str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` and load its weights; returns ``(model in eval mode, config)``.

    Args:
        path: a checkpoint written by `save_checkpoint`.
        kind: the kind the caller expects (``"roi_head"``…); ``None`` accepts any in `MODEL_BUILDERS`.
        device: torch device the model is moved to.

    Raises:
        InputError: missing or foreign file, another kind than ``kind``, or weights that do not fit.
    """
    from safetensors.torch import load_file

    config = read_checkpoint_config(path)
    if kind is not None and config.get("kind") != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise InputError(f"not {article} {kind!r} checkpoint: it holds a {config.get('kind')!r}", path, where="metadata.kind")
    model = build_from_config(config, path=path)
    state = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the stored config: {str(exc).splitlines()[0]}", path) from None
    return model.to(torch.device(device)).eval(), config


def _model_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor part of a stored config (drops training extras such as ``epoch``, ``fit``)."""
    return {k: v for k, v in config.items() if k not in ("epoch", "fit", "metrics", "backbone_init")}

"""Backbones by timm name that return one feature map and its stride; pretrained weights the timm way.

``build_backbone("vit_small_patch16_dinov3")`` gives a module whose ``forward(images)`` takes
``(B, 3, H, W)`` float32 images (normalised as the weights expect) and returns
``(feature_map (B, C, h, w), stride)``. A ViT's patch tokens are reshaped to the map with its
class and register tokens dropped, at any image size (inputs are zero-padded on the right and
bottom to a multiple of the patch size, so pixel ``(x, y)`` lies at map ``(x / stride, y / stride)``
whatever the padding). CNNs (``resnet18/50``, ``regnety_160``, ``convnext_*``…) return their last
stage, or an earlier one with ``feature_level``.

Weights, in the order they win:

* ``weights=FILE`` — a safetensors file or a torch state dict in timm's key layout (the offline
  site's way). A file that does not fit raises `InputError` listing a few mismatched keys.
* ``pretrained=True`` — the name's pretrained weights through timm and huggingface_hub, exactly as
  ``timm.create_model(name, pretrained=True)`` fetches them: a name with a tag
  (``vit_small_patch16_dinov3.lvd1689m``, ``resnet18.a1_in1k``; a bare ``resnet18`` means its
  default tag) or ``hf-hub:org/name``, downloaded once into the Hugging Face cache
  (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``) and read from there afterwards.
  Offline (``HF_HUB_OFFLINE=1`` or no network) and not cached: one `InputError` line naming the
  repository to download and the cache folder to put it in.
* neither — random initialisation. `describe_init` says which of the three a backbone got; the
  training entry points warn when it is random and record it in their checkpoints and metrics.

``tiny_cnn`` is a three-convolution network (stride 8, 32 channels) for tests and the demo.

Example:
    >>> import torch
    >>> from sitesight.models.backbone import build_backbone
    >>> bb = build_backbone("tiny_cnn")
    >>> fmap, stride = bb(torch.zeros(1, 3, 64, 96))
    >>> tuple(fmap.shape), stride
    ((1, 32, 8, 12), 8)
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sitesight.errors import InputError

__all__ = [
    "Backbone",
    "TinyCNN",
    "build_backbone",
    "describe_init",
    "warn_if_random",
    "load_weights_file",
    "load_backbone_weights",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision-style names people use for the same architectures in timm.
_ALIASES = {"regnet_y_16gf": "regnety_160", "regnet_y_8gf": "regnety_080", "regnet_y_32gf": "regnety_320"}
# Keys that belong to a classifier head, absent from a backbone built with num_classes=0.
_HEAD_PREFIXES = ("head.", "fc.", "classifier.", "head_dist.", "last_linear.")


class TinyCNN(nn.Module):
    """Three 3x3 convolutions with stride 2 each: ``(B, 3, H, W)`` → ``(B, 32, ceil(H/8), ceil(W/8))``."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.num_features = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.stem(images)


class Backbone(nn.Module):
    """A timm (or tiny) model behind one contract: ``forward(images) -> (feature_map, stride)``.

    Args:
        model: the network; a ViT when ``patch_size`` is given, else a CNN.
        name: the architecture name it was built from (kept for checkpoints).
        out_channels: ``C`` of the feature map.
        stride: input pixels per feature-map cell.
        patch_size: ViT patch size; ``None`` for CNNs.
        num_prefix_tokens: class + register tokens a ViT puts before the patch tokens.
        feature_level: CNN stage index returned (``-1`` = last).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        out_channels: int,
        stride: int,
        patch_size: int | None = None,
        num_prefix_tokens: int = 0,
        feature_level: int = -1,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.out_channels = int(out_channels)
        self.stride = int(stride)
        self.patch_size = patch_size
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.feature_level = int(feature_level)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``(B, 3, H, W)`` float → ``((B, C, h, w) feature map, stride)``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Backbone {self.name}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        if self.patch_size is not None:
            return self._forward_vit(images), self.stride
        if self.feature_level == -1 or not hasattr(self.model, "forward_intermediates"):
            fmap = self.model.forward_features(images)
        else:
            fmap = self.model.forward_intermediates(images, indices=[self.feature_level], intermediates_only=True)[0]
        return fmap, self.stride

    def _forward_vit(self, images: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = images.shape[-2:]
        pad_h, pad_w = (-h) % p, (-w) % p
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        gh, gw = (h + pad_h) // p, (w + pad_w) // p
        tokens = self.model.forward_features(images)  # (B, prefix + gh*gw, C)
        tokens = tokens[:, self.num_prefix_tokens :]
        if tokens.shape[1] != gh * gw:
            raise RuntimeError(f"Backbone {self.name}: {tokens.shape[1]} patch tokens for a {gh}x{gw} grid")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gh, gw)


def build_backbone(
    name: str,
    *,
    weights: Path | str | None = None,
    pretrained: bool = False,
    img_size: int | tuple[int, int] | None = None,
    feature_level: int = -1,
) -> Backbone:
    """Build a backbone by timm name (or ``tiny_cnn``), random-initialised or from a local file.

    Args:
        name: timm architecture, with or without a pretrained tag (``vit_small_patch16_dinov3.lvd1689m``,
            ``resnet18.a1_in1k``, ``regnety_160``…), ``hf-hub:org/name``, or ``tiny_cnn``;
            ``regnet_y_16gf`` is accepted for ``regnety_160``.
        weights: safetensors file or torch state dict in timm's key layout; wins over ``pretrained``.
        pretrained: fetch the name's pretrained weights through timm / huggingface_hub and their
            cache (see the module docstring); ``tiny_cnn`` has none (random init, with a warning).
        img_size: ViT position-embedding size at build time; any input size works later.
        feature_level: CNN stage to return (``-1`` = last); ignored for ViTs.

    Returns:
        `Backbone` in train mode.

    Raises:
        InputError: unknown name, a name without pretrained weights, offline and not cached, or
            weights that do not fit.
    """
    timm_name = _ALIASES.get(name, name)
    fetch = pretrained and weights is None
    if timm_name == "tiny_cnn":
        if fetch:
            log.warning("backbone 'tiny_cnn' has no pretrained weights: random initialisation")
        model: nn.Module = TinyCNN()
        backbone = Backbone(model, name=name, out_channels=model.num_features, stride=8)
    else:
        backbone = _build_timm(name, timm_name, img_size=img_size, feature_level=feature_level, pretrained=fetch)
    if weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone


def describe_init(name: str, *, weights: Path | str | None = None, pretrained: bool = False) -> str:
    """How `build_backbone` initialises ``name`` with these arguments: ``"file:PATH"``, ``"pretrained:NAME"`` or ``"random"``.

    This string is what checkpoints, ``metrics.json`` and reports record as ``backbone_init``.
    """
    if weights is not None:
        return f"file:{weights}"
    if pretrained and _ALIASES.get(name, name) not in ("tiny_cnn", "tiny_pyramid"):
        return f"pretrained:{name}"
    return "random"


def warn_if_random(init: str, name: str) -> None:
    """Log a warning when ``init`` (from `describe_init`) is random: training from scratch is never silent."""
    if init == "random":
        log.warning(
            "backbone %r starts from random weights (no pretrained weights, no --weights FILE): "
            "the result is not the pretrained model; this is recorded as backbone_init='random'",
            name,
        )


def _is_download_error(exc: BaseException) -> bool:
    """A failed fetch (offline, no network, not in the cache) rather than a bug or a bad name."""
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return any(n.endswith(("NotFoundError", "OfflineModeIsEnabled", "HTTPError", "ConnectError", "TimeoutException", "HfHubHTTPError"))
               for n in names)


def _offline_message(name: str, timm_name: str, exc: BaseException) -> str:
    """One line: what to download, with which command, and where to put it."""
    from huggingface_hub import constants

    if timm_name.startswith("hf-hub:"):
        repo = timm_name.removeprefix("hf-hub:").split("@")[0]
    else:
        import timm

        cfg = timm.models.get_pretrained_cfg(timm_name)
        repo = (cfg.hf_hub_id if cfg is not None else None) or f"timm/{timm_name}"
    folder = "models--" + repo.replace("/", "--")
    return (
        f"backbone {name!r}: pretrained weights not cached and not downloadable here ({type(exc).__name__}); "
        f"run `hf download {repo}` where there is network and copy the cache folder {folder} into "
        f"{constants.HF_HUB_CACHE}, or pass --weights FILE"
    )


def _create(name: str, timm_name: str, *, pretrained: bool, **options: object) -> nn.Module:
    """``timm.create_model`` with ``num_classes=0``; a failed pretrained fetch becomes one `InputError` line."""
    import timm

    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, num_classes=0, **options)
    if not timm_name.startswith("hf-hub:"):
        cfg = timm.models.get_pretrained_cfg(timm_name)
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
            tags = timm.list_pretrained(f"{timm_name.split('.')[0]}.*")[:6]
            raise InputError(f"backbone {name!r} has no pretrained weights in timm; tagged names: {tags or 'none'}; "
                             "or pass --weights FILE", where="name")
    try:
        return timm.create_model(timm_name, pretrained=True, num_classes=0, **options)
    except TypeError:
        raise
    except Exception as exc:  # timm/huggingface_hub/httpx raise many types for one failed download
        if _is_download_error(exc):
            raise InputError(_offline_message(name, timm_name, exc)) from None
        raise


def _build_timm(
    name: str, timm_name: str, *, img_size: int | tuple[int, int] | None, feature_level: int, pretrained: bool
) -> Backbone:
    import timm

    hub = timm_name.startswith("hf-hub:")
    if not hub and not timm.is_model(timm_name):
        close = timm.list_models(f"*{timm_name.split('_')[0].split('.')[0]}*")[:8]
        raise InputError(f"unknown backbone {name!r}; similar timm names: {close or 'none'}", where="name")
    is_vit = any(k in timm_name for k in ("vit", "deit", "eva", "dinov")) and "vitamin" not in timm_name
    if is_vit:
        options: dict[str, object] = {"dynamic_img_size": True}
        if img_size is not None:
            options["img_size"] = img_size
        try:
            model = _create(name, timm_name, pretrained=pretrained, **options)
        except TypeError:  # not a plain ViT after all: treat it as a CNN-like model
            is_vit = False
    if is_vit and hasattr(model, "patch_embed") and hasattr(model, "num_prefix_tokens"):
        patch = model.patch_embed.patch_size
        patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        return Backbone(
            model,
            name=name,
            out_channels=int(model.num_features),
            stride=patch,
            patch_size=patch,
            num_prefix_tokens=int(model.num_prefix_tokens),
        )
    model = _create(name, timm_name, pretrained=pretrained)
    info = list(getattr(model, "feature_info", []))
    if not info:
        raise InputError(f"backbone {name!r} has no feature_info; pick a timm CNN or ViT", where="name")
    try:
        level = info[feature_level]
    except IndexError:
        raise InputError(f"backbone {name!r}: feature_level {feature_level} outside 0..{len(info) - 1}") from None
    return Backbone(
        model,
        name=name,
        out_channels=int(level["num_chs"]),
        stride=int(level["reduction"]),
        feature_level=-1 if feature_level in (-1, len(info) - 1) else feature_level,
    )


def load_weights_file(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors file or a torch checkpoint (tensors only, never code).

    Torch checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``) are
    unwrapped and a ``module.`` prefix (DataParallel) is removed.

    Raises:
        InputError: missing file, unreadable file, or no tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: say which file
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", path) from None
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(f"expected a state dict, got {type(state).__name__}", path)
    tensors = {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError("no tensors in the file", path)
    return tensors


def load_backbone_weights(backbone: Backbone, path: Path | str) -> None:
    """Load a local weights file into ``backbone.model`` in place; classifier-head keys are ignored.

    Raises:
        InputError: naming the file, with up to five missing, unexpected and mis-shaped keys.
    """
    state = load_weights_file(path)
    own = backbone.model.state_dict()
    if not any(k in own for k in state) and all(k.startswith("model.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_HEAD_PREFIXES)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                parts.append(f"{len(keys)} {title} (e.g. {', '.join(keys[:5])})")
        raise InputError(f"weights do not fit backbone {backbone.name!r}: " + "; ".join(parts), path)
    backbone.model.load_state_dict(state, strict=True)

"""Backbones by timm name that return one feature map and its stride; weights only from local files.

``build_backbone("vit_small_patch16_dinov3")`` gives a module whose ``forward(images)`` takes
``(B, 3, H, W)`` float32 images (normalised as the weights expect) and returns
``(feature_map (B, C, h, w), stride)``. A ViT's patch tokens are reshaped to the map with its
class and register tokens dropped, at any image size (inputs are zero-padded on the right and
bottom to a multiple of the patch size, so pixel ``(x, y)`` lies at map ``(x / stride, y / stride)``
whatever the padding). CNNs (``resnet18/50``, ``regnety_160``, ``convnext_*``…) return their last
stage, or an earlier one with ``feature_level``.

Nothing is downloaded, ever: models are built with random initialisation and take weights only
from a file the user names (``weights=``): a safetensors file or a torch state dict, in timm's
key layout. A file that does not fit raises `InputError` listing a few mismatched keys.

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

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sitesight.errors import InputError

__all__ = ["Backbone", "TinyCNN", "build_backbone", "load_weights_file", "load_backbone_weights", "IMAGENET_MEAN", "IMAGENET_STD"]

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
        name: timm architecture (``vit_small_patch16_dinov3``, ``resnet18``, ``regnety_160``…) or
            ``tiny_cnn``; ``regnet_y_16gf`` is accepted for ``regnety_160``.
        weights: safetensors file or torch state dict in timm's key layout; ``None`` = random init.
        pretrained: must stay False: sitesight never downloads weights (name a file instead).
        img_size: ViT position-embedding size at build time; any input size works later.
        feature_level: CNN stage to return (``-1`` = last); ignored for ViTs.

    Returns:
        `Backbone` in train mode.

    Raises:
        InputError: unknown name, ``pretrained=True``, or weights that do not fit.
    """
    if pretrained:
        raise InputError(
            f"backbone {name!r}: sitesight never downloads weights; pass weights=PATH to a local "
            "safetensors / torch state-dict file instead"
        )
    timm_name = _ALIASES.get(name, name)
    if timm_name == "tiny_cnn":
        model: nn.Module = TinyCNN()
        backbone = Backbone(model, name=name, out_channels=model.num_features, stride=8)
    else:
        backbone = _build_timm(name, timm_name, img_size=img_size, feature_level=feature_level)
    if weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone


def _build_timm(name: str, timm_name: str, *, img_size: int | tuple[int, int] | None, feature_level: int) -> Backbone:
    import timm

    if not timm.is_model(timm_name):
        close = timm.list_models(f"*{timm_name.split('_')[0]}*")[:8]
        raise InputError(f"unknown backbone {name!r}; similar timm names: {close or 'none'}", where="name")
    is_vit = any(k in timm_name for k in ("vit", "deit", "eva", "dinov")) and "vitamin" not in timm_name
    if is_vit:
        options: dict[str, object] = {"dynamic_img_size": True}
        if img_size is not None:
            options["img_size"] = img_size
        try:
            model = timm.create_model(timm_name, pretrained=False, num_classes=0, **options)
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
    model = timm.create_model(timm_name, pretrained=False, num_classes=0)
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

"""RoI attribute head: backbone once per frame, RoIAlign 7x7 on expanded person boxes, MLP → logits.

Geometry: boxes are absolute-pixel ``xyxy`` in the (resized) network input. A box is first
expanded to take in what surrounds the person (`BoxExpansion`: width x 1.0, +0.2 h above,
+1.5 h below for harness and anchor), clipped to the frame, then pooled with
``torchvision.ops.roi_align(output_size=7, spatial_scale=1/stride, sampling_ratio=2,
aligned=True)``: with ``aligned=True`` a pixel-coordinate box ``[x1, x2)`` covers feature-map
coordinates ``x1/stride - 0.5 … x2/stride - 0.5`` (cell centres at integers), and each of the
7x7 bins averages ``2x2`` bilinear samples.

During training `BoxJitter` perturbs the person box (centre shift, size scale) and the expansion
factors, then clips to the frame, so the head does not learn the exact detector box.

Example:
    >>> import numpy as np
    >>> from sitesight.models.roi_head import BoxExpansion, expand_person_boxes
    >>> expand_person_boxes(np.array([[10, 10, 20, 30]], np.float32), BoxExpansion(), (100, 100)).tolist()
    [[10.0, 6.0, 20.0, 60.0]]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align

from sitesight.boxes import expand_boxes
from sitesight.models.backbone import Backbone, build_backbone

__all__ = [
    "BoxExpansion",
    "BoxJitter",
    "RoIHeadConfig",
    "RoIAttributeHead",
    "roi_pool",
    "expand_person_boxes",
    "jitter_person_boxes",
    "build_roi_head",
    "roi_head_from_config",
]


@dataclass(frozen=True)
class BoxExpansion:
    """How a person box grows before pooling: ``x`` = new width / old width (centred),
    ``top`` / ``bottom`` = added height above / below as a fraction of the box height."""

    x: float = 1.0
    top: float = 0.2
    bottom: float = 1.5


@dataclass(frozen=True)
class BoxJitter:
    """Training-time box noise; every range is ``(low, high)`` sampled uniformly per box.

    ``center``: shift of the centre as a fraction of the box width / height (±).
    ``scale``: multiplier of box width and height (independently).
    ``x``, ``top``, ``bottom``: multipliers of the corresponding `BoxExpansion` factors.
    """

    center: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    x: tuple[float, float] = (0.5, 1.5)
    top: tuple[float, float] = (0.5, 2.0)
    bottom: tuple[float, float] = (0.7, 1.3)


@dataclass(frozen=True)
class RoIHeadConfig:
    """Everything that rebuilds a RoI head (stored in its checkpoint).

    Args:
        backbone: timm name or ``tiny_cnn``.
        class_names: output classes, index 0 conventionally ``unknown``.
        frame_wh: network input ``(width, height)``; frames are letterboxed into it.
        roi_size: RoIAlign output size (7 → 7x7 bins).
        sampling_ratio: bilinear samples per bin side (torchvision's ``sampling_ratio``).
        reduce_channels: 1x1 convolution width before the MLP.
        head_convs: 3x3 convolutions (``reduce_channels`` wide, padding 1) on the pooled
            ``roi_size x roi_size`` features after the 1x1 reduction: context across the box for
            a backbone whose receptive field is small (``tiny_cnn``); 0 = none.
        hidden: MLP hidden width.
        dropout: before the last layer.
        expansion / jitter: box geometry, see `BoxExpansion`, `BoxJitter`.
        attribute / box_class: what it was trained on (for prediction and reports).
        min_height: boxes shorter than this (pixels of the original frame) are left out: not
            trained on, not scored, and predicted as NaN / ``None`` (too small to see the attribute).
        train_crop_wh: ``(width, height)`` windows of the network input that training runs the
            backbone on instead of the whole frame (each centred near one box; only boxes whose
            expanded box fits inside are used); ``None`` = whole frames. Prediction always runs on
            whole frames, which a convolutional backbone sees the same way.
    """

    backbone: str = "vit_small_patch16_dinov3"
    class_names: tuple[str, ...] = ("unknown", "correct", "wrong")
    frame_wh: tuple[int, int] = (1280, 720)
    roi_size: int = 7
    sampling_ratio: int = 2
    reduce_channels: int = 64
    head_convs: int = 0
    hidden: int = 256
    dropout: float = 0.1
    expansion: BoxExpansion = field(default_factory=BoxExpansion)
    jitter: BoxJitter = field(default_factory=BoxJitter)
    attribute: str = "safety_rope"
    box_class: str = "person"
    min_height: float = 0.0
    train_crop_wh: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = "roi_head"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RoIHeadConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        jitter = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("jitter", {}).items()}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "expansion"},
            expansion=BoxExpansion(**d.get("expansion", {})),
            jitter=BoxJitter(**jitter),
        )


def expand_person_boxes(xyxy: np.ndarray, expansion: BoxExpansion, image_wh: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` person boxes → ``(N, 4)`` float32 expanded boxes clipped to ``[0, w] x [0, h]``."""
    return expand_boxes(xyxy, x=expansion.x, top=expansion.top, bottom=expansion.bottom, image_wh=image_wh)


def jitter_person_boxes(
    xyxy: np.ndarray,
    expansion: BoxExpansion,
    jitter: BoxJitter,
    image_wh: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Jitter then expand ``(N, 4)`` boxes; the result lies inside the frame with width/height ≥ 1 px.

    Returns:
        ``(N, 4)`` float32 xyxy in the same pixels as ``xyxy``.
    """
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(b)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    cx = (b[:, 0] + b[:, 2]) / 2 + rng.uniform(-jitter.center, jitter.center, n) * w
    cy = (b[:, 1] + b[:, 3]) / 2 + rng.uniform(-jitter.center, jitter.center, n) * h
    w = w * rng.uniform(*jitter.scale, n)
    h = h * rng.uniform(*jitter.scale, n)
    ex = expansion.x * rng.uniform(*jitter.x, n)
    top = expansion.top * rng.uniform(*jitter.top, n)
    bottom = expansion.bottom * rng.uniform(*jitter.bottom, n)
    out = np.stack([cx - w * ex / 2, cy - h / 2 - h * top, cx + w * ex / 2, cy + h / 2 + h * bottom], axis=1)
    return _clip_min_size(out, image_wh)


def _clip_min_size(xyxy: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """Clip to the frame, keeping at least 1 px per side (a box pushed outside becomes an edge strip)."""
    w_img, h_img = float(image_wh[0]), float(image_wh[1])
    out = xyxy.astype(np.float32).copy()
    for lo, hi, size in ((0, 2, w_img), (1, 3, h_img)):
        out[:, lo] = np.clip(out[:, lo], 0, size - 1)
        out[:, hi] = np.clip(out[:, hi], out[:, lo] + 1, size)
    return out


def roi_pool(
    feature_map: torch.Tensor,
    rois: torch.Tensor,
    stride: int,
    *,
    output_size: int = 7,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """Pool ``(R, 5)`` rois ``[batch_index, x1, y1, x2, y2]`` (input pixels) from ``(B, C, h, w)``.

    Returns:
        ``(R, C, output_size, output_size)`` features, ``aligned=True``, ``spatial_scale = 1/stride``.
    """
    return roi_align(
        feature_map,
        rois.to(feature_map.dtype),
        output_size=output_size,
        spatial_scale=1.0 / stride,
        sampling_ratio=sampling_ratio,
        aligned=True,
    )


class RoIAttributeHead(nn.Module):
    """Backbone + RoIAlign + MLP.

    ``forward(images (B, 3, H, W) float, rois (R, 5) float [batch_index, x1, y1, x2, y2] in input
    pixels, already expanded) -> logits (R, K)``. The backbone runs once per image in the batch,
    however many rois it holds.
    """

    def __init__(self, backbone: Backbone, config: RoIHeadConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        c = config.reduce_channels
        convs = [m for _ in range(config.head_convs) for m in (nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))]
        self.reduce = nn.Sequential(nn.Conv2d(backbone.out_channels, c, 1), nn.ReLU(inplace=True), *convs)
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * config.roi_size * config.roi_size, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, len(config.class_names)),
        )

    def pooled(self, images: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """``(R, C, roi_size, roi_size)`` backbone features of each roi."""
        fmap, stride = self.backbone(images)
        return roi_pool(fmap, rois, stride, output_size=self.config.roi_size, sampling_ratio=self.config.sampling_ratio)

    def forward(self, images: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.reduce(self.pooled(images, rois)))


def build_roi_head(config: RoIHeadConfig, *, weights: str | None = None, pretrained: bool = False) -> RoIAttributeHead:
    """A RoI head from its config; backbone weights from a local file (``weights``) or the hub (``pretrained``)."""
    return RoIAttributeHead(build_backbone(config.backbone, weights=weights, pretrained=pretrained), config)


def roi_head_from_config(config: dict) -> RoIAttributeHead:
    """The network a stored ``roi_head`` config describes (random init; `sitesight.models.checkpoint` loads the weights)."""
    return build_roi_head(RoIHeadConfig.from_dict(config))

"""IoU-aware RetinaNet (Wu et al., "IoU-aware Single-stage Object Detector for Accurate Localization").

torchvision's `RetinaNet` with one addition: beside the box regression output, the regression
tower feeds a 3x3 convolution with one channel per anchor whose sigmoid is the predicted IoU of
that anchor's decoded box with its ground truth. Training adds
``L_IoU = sum_pos BCE(sigmoid(iou_logit), IoU(decoded box.detach(), matched GT)) / N_pos`` to
torchvision's focal classification loss and L1 box loss (``L = L_cls + L_loc + L_IoU``). At
inference every (anchor, class) candidate is scored ``S = p^alpha * IoU^(1 - alpha)``; S is the
score used for the threshold, the top-k, the class-wise NMS and the output ranking. With
``alpha = 1`` the scores, boxes and labels are exactly those of plain torchvision RetinaNet with the
same weights. Every output also carries the raw class probability ``cls_scores`` and the predicted
IoU ``iou_preds`` so they can be stored and re-combined later (`sitesight.evaluation.iou_aware`).

Backbones: any timm CNN by name (random init, or weights from a local file through
`sitesight.models.backbone.build_backbone`), its ``out_indices`` stages feeding torchvision's
`FeaturePyramidNetwork` (+ P6/P7 like RetinaNet when ``extra_levels=2``); ``tiny_pyramid`` is a
five-stage CNN (strides 2..32, 16..64 channels) for tests and the demo.

Geometry: images go in as float ``(3, H, W)`` in ``[0, 1]``; torchvision's transform normalises
(ImageNet mean/std) and resizes so that the short side is ``min_size`` (long side at most
``max_size``); boxes come back in input-image pixels, ``xyxy``.

Example:
    >>> import torch
    >>> from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet
    >>> cfg = DetectorConfig(backbone="tiny_pyramid", class_names=("person",), out_indices=(2, 3),
    ...                      extra_levels=0, fpn_channels=16, anchor_sizes=(16, 32), min_size=64, max_size=64)
    >>> model = build_iou_aware_retinanet(cfg).eval()
    >>> sorted(model([torch.rand(3, 64, 64)])[0])
    ['boxes', 'cls_scores', 'iou_preds', 'labels', 'scores']
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from sitesight.errors import InputError

__all__ = [
    "KIND",
    "DetectorConfig",
    "TinyPyramid",
    "PyramidBackbone",
    "IoUAwareHead",
    "IoUAwareRetinaNet",
    "aligned_iou",
    "group_norm",
    "build_anchor_generator",
    "build_pyramid_backbone",
    "build_iou_aware_retinanet",
    "retinanet_from_config",
    "positive_anchor_ious",
]

KIND = "iou_aware_retinanet"


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that rebuilds an IoU-aware RetinaNet (stored in its checkpoint).

    Args:
        backbone: timm CNN name (``resnet18``, ``resnet50``, ``regnety_016``…) or ``tiny_pyramid``.
        class_names: the ``K`` classes; ``class_id`` ``k`` is ``class_names[k]`` (no background slot).
        out_indices: backbone stages fed to the FPN (timm numbering: stage ``i`` has stride ``2^(i+1)``
            for ResNets and for ``tiny_pyramid``), strides strictly increasing.
        extra_levels: pyramid levels added above the last stage: 0, 1 (max-pool) or 2 (P6/P7 convs).
        fpn_channels: channels of every pyramid level and of the heads.
        head_convs: 3x3 conv + ReLU layers in each head tower (torchvision: 4; fewer for tiny CPU models).
        head_norm: GroupNorm (8 channels a group) after every tower conv, as torchvision's RetinaNet v2
            (meant for GPUs: on CPU its backward made a tiny model's training step ~10x slower here).
        anchor_sizes: base anchor size in input pixels per pyramid level (``len(out_indices) + extra_levels``).
        anchor_scales: multipliers of each base size (RetinaNet: 2^0, 2^(1/3), 2^(2/3)).
        aspect_ratios: anchor height / width (torchvision's convention).
        min_size / max_size: torchvision's resize of the input (short side / long-side cap).
        alpha: inference score ``S = p^alpha * IoU^(1 - alpha)``; 1 = plain RetinaNet.
        iou_loss_weight: weight of ``L_IoU`` in the total loss.
        score_thresh / nms_thresh / detections_per_img / topk_candidates: torchvision's post-processing.
    """

    backbone: str = "resnet18"
    class_names: tuple[str, ...] = ("person", "helmet", "head")
    out_indices: tuple[int, ...] = (2, 3, 4)
    extra_levels: int = 2
    fpn_channels: int = 256
    head_convs: int = 4
    head_norm: bool = False
    anchor_sizes: tuple[float, ...] = (32, 64, 128, 256, 512)
    anchor_scales: tuple[float, ...] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    min_size: int = 800
    max_size: int = 1333
    alpha: float = 0.5
    iou_loss_weight: float = 1.0
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 300
    topk_candidates: int = 1000

    def __post_init__(self) -> None:
        for name in ("class_names", "out_indices", "anchor_sizes", "anchor_scales", "aspect_ratios"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.class_names:
            raise InputError("DetectorConfig: class_names is empty", where="class_names")
        if self.extra_levels not in (0, 1, 2):
            raise InputError(f"DetectorConfig: extra_levels must be 0, 1 or 2, got {self.extra_levels}", where="extra_levels")
        levels = len(self.out_indices) + self.extra_levels
        if len(self.anchor_sizes) != levels:
            raise InputError(
                f"DetectorConfig: {len(self.anchor_sizes)} anchor_sizes for {levels} pyramid levels "
                f"({len(self.out_indices)} stages + {self.extra_levels} extra)", where="anchor_sizes")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"DetectorConfig: alpha must lie in [0, 1], got {self.alpha}", where="alpha")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = KIND
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


class TinyPyramid(nn.Module):
    """Five stride-2 conv stages (16, 24, 32, 48, 64 channels): stage ``i`` has stride ``2^(i+1)``.

    ``forward_intermediates(images (B, 3, H, W), indices)`` returns the chosen stages' maps, like timm.
    """

    def __init__(self) -> None:
        super().__init__()
        widths = (16, 24, 32, 48, 64)
        stages, cin = [], 3
        for c in widths:
            stages.append(nn.Sequential(nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                        nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.feature_info = [{"num_chs": c, "reduction": 2 ** (i + 1)} for i, c in enumerate(widths)]

    def forward_intermediates(self, images: torch.Tensor, indices: list[int], intermediates_only: bool = True) -> list[torch.Tensor]:
        out, x = [], images
        for i, stage in enumerate(self.stages[: max(indices) + 1]):
            x = stage(x)
            if i in indices:
                out.append(x)
        return out


class PyramidBackbone(nn.Module):
    """Backbone stages + FPN: ``(B, 3, H, W)`` → ordered dict of ``(B, fpn_channels, h_l, w_l)`` maps, finest first."""

    def __init__(self, body: nn.Module, out_indices: tuple[int, ...], in_channels: list[int], fpn_channels: int, extra_levels: int) -> None:
        super().__init__()
        self.body = body
        self.out_indices = list(out_indices)
        extra: nn.Module | None = None
        if extra_levels == 2:
            extra = LastLevelP6P7(fpn_channels, fpn_channels)
        elif extra_levels == 1:
            extra = LastLevelMaxPool()
        self.fpn = FeaturePyramidNetwork(in_channels, fpn_channels, extra_blocks=extra)
        self.out_channels = fpn_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body.forward_intermediates(images, indices=self.out_indices, intermediates_only=True)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


def build_pyramid_backbone(config: DetectorConfig, *, weights: Path | str | None = None, pretrained: bool = False) -> PyramidBackbone:
    """The FPN backbone of ``config``; ``weights`` is a local timm-layout file for the backbone stages,
    ``pretrained`` fetches the timm name's pretrained weights (`sitesight.models.backbone.build_backbone`).

    Raises:
        InputError: unknown name, a ``tiny_pyramid`` with weights, stages out of range or not coarsening.
    """
    if config.backbone == "tiny_pyramid":
        if weights is not None:
            raise InputError("tiny_pyramid has no pretrained weights; leave weights unset", where="backbone")
        body: nn.Module = TinyPyramid()
        info = body.feature_info
    else:
        from sitesight.models.backbone import build_backbone

        body = build_backbone(config.backbone, weights=weights, pretrained=pretrained).model
        if not hasattr(body, "forward_intermediates") or not getattr(body, "feature_info", None):
            raise InputError(f"backbone {config.backbone!r} offers no multi-scale features; pick a timm CNN", where="backbone")
        info = list(body.feature_info)
    try:
        picked = [info[i] for i in config.out_indices]
    except IndexError:
        raise InputError(f"out_indices {config.out_indices} outside the {len(info)} stages of {config.backbone!r}", where="out_indices") from None
    strides = [int(p["reduction"]) for p in picked]
    if any(b <= a for a, b in zip(strides, strides[1:], strict=False)):
        raise InputError(f"out_indices {config.out_indices} give strides {strides}; they must increase", where="out_indices")
    return PyramidBackbone(body, config.out_indices, [int(p["num_chs"]) for p in picked], config.fpn_channels, config.extra_levels)


def build_anchor_generator(config: DetectorConfig) -> AnchorGenerator:
    """One anchor set per pyramid level: ``len(anchor_scales) * len(aspect_ratios)`` anchors per cell."""
    sizes = tuple(tuple(float(s) * m for m in config.anchor_scales) for s in config.anchor_sizes)
    return AnchorGenerator(sizes, (tuple(float(a) for a in config.aspect_ratios),) * len(sizes))


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 8 channels a group (at least one group): the head norm of `DetectorConfig.head_norm`."""
    return nn.GroupNorm(max(1, channels // 8), channels)


def aligned_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N,)`` IoU of row ``i`` of ``(N, 4)`` xyxy ``a`` with row ``i`` of ``b``; 0 where the union is empty."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


class IoUAwareHead(RetinaNetHead):
    """torchvision's RetinaNet head plus ``regression_head.iou_pred``: 3x3 conv, one IoU logit per anchor.

    The IoU conv reads the regression tower's output (the box branch's features), as in the paper.

    ``forward(features) -> {"cls_logits": (B, HWA, K), "bbox_regression": (B, HWA, 4), "iou_pred": (B, HWA)}``
    (the IoU logits; the sigmoid is applied at inference and inside the loss).
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, *, head_convs: int = 4, head_norm: bool = False,
                 iou_loss_weight: float = 1.0) -> None:
        super().__init__(in_channels, num_anchors, num_classes, norm_layer=group_norm if head_norm else None)
        if not 1 <= head_convs <= 4:
            raise InputError(f"head_convs must lie in 1..4, got {head_convs}", where="head_convs")
        for tower in (self.classification_head, self.regression_head):
            tower.conv = tower.conv[:head_convs]  # torchvision builds 4; the first ones are kept as they are
        self.regression_head.iou_pred = nn.Conv2d(in_channels, num_anchors, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.regression_head.iou_pred.weight, std=0.01)
        nn.init.zeros_(self.regression_head.iou_pred.bias)
        self.iou_loss_weight = float(iou_loss_weight)

    def forward(self, x: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        reg = self.regression_head
        boxes, ious = [], []
        for features in x:
            tower = reg.conv(features)
            b = reg.bbox_reg(tower)
            n, _, h, w = b.shape
            boxes.append(b.view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
            ious.append(reg.iou_pred(tower).permute(0, 2, 3, 1).reshape(n, -1))  # same (h, w, anchor) order
        return {"cls_logits": self.classification_head(x), "bbox_regression": torch.cat(boxes, 1), "iou_pred": torch.cat(ious, 1)}

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs) -> dict[str, torch.Tensor]:
        losses = super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        losses["iou"] = self.iou_loss_weight * self.iou_loss(targets, head_outputs, anchors, matched_idxs)
        return losses

    def iou_loss(self, targets: list[dict[str, torch.Tensor]], head_outputs: dict[str, torch.Tensor],
                 anchors: list[torch.Tensor], matched_idxs: list[torch.Tensor]) -> torch.Tensor:
        """Mean over images of ``sum_pos BCE(iou_logit, IoU(decoded.detach(), gt)) / max(1, N_pos)``."""
        coder = self.regression_head.box_coder
        losses = []
        for tgt, reg, logit, anc, matched in zip(targets, head_outputs["bbox_regression"], head_outputs["iou_pred"], anchors,
                                                 matched_idxs, strict=True):
            fg = torch.where(matched >= 0)[0]
            if fg.numel() == 0:
                losses.append(logit.sum() * 0.0)
                continue
            with torch.no_grad():  # the target is a number, not a path for gradients
                decoded = coder.decode_single(reg[fg].detach(), anc[fg])
                target = aligned_iou(decoded, tgt["boxes"][matched[fg]])
            losses.append(F.binary_cross_entropy_with_logits(logit[fg], target, reduction="sum") / fg.numel())
        return sum(losses) / max(1, len(targets))


class IoUAwareRetinaNet(RetinaNet):
    """torchvision `RetinaNet` with `IoUAwareHead` and ``S = p^alpha * IoU^(1 - alpha)`` scoring.

    Same calling convention as torchvision: ``model(images: list[(3, H, W) float in [0, 1]], targets)``;
    in training a dict of losses (``classification``, ``bbox_regression``, ``iou``); in eval a list
    of dicts with ``boxes (N, 4)`` input pixels, ``scores (N,)`` = S, ``labels (N,)`` int64,
    ``cls_scores (N,)`` = p and ``iou_preds (N,)`` = sigmoid of the IoU branch. ``alpha`` may be
    changed on a built model (it is a plain attribute).
    """

    def __init__(self, backbone: PyramidBackbone, config: DetectorConfig) -> None:
        anchor_generator = build_anchor_generator(config)
        head = IoUAwareHead(backbone.out_channels, anchor_generator.num_anchors_per_location()[0], len(config.class_names),
                            head_convs=config.head_convs, head_norm=config.head_norm, iou_loss_weight=config.iou_loss_weight)
        super().__init__(backbone, len(config.class_names), min_size=config.min_size, max_size=config.max_size,
                         anchor_generator=anchor_generator, head=head, score_thresh=config.score_thresh,
                         nms_thresh=config.nms_thresh, detections_per_img=config.detections_per_img,
                         topk_candidates=config.topk_candidates)
        self.config = config
        self.alpha = float(config.alpha)

    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        """torchvision's post-processing with S in place of p, plus ``cls_scores`` and ``iou_preds``."""
        alpha = self.alpha
        detections = []
        for index, image_shape in enumerate(image_shapes):
            parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("boxes", "scores", "labels", "cls_scores", "iou_preds")}
            for reg, logits, iou_logit, anc in zip(
                (br[index] for br in head_outputs["bbox_regression"]), (cl[index] for cl in head_outputs["cls_logits"]),
                (ip[index] for ip in head_outputs["iou_pred"]), anchors[index], strict=True,
            ):
                num_classes = logits.shape[-1]
                prob = torch.sigmoid(logits)
                iou = torch.sigmoid(iou_logit)
                # alpha = 1 takes torchvision's exact arithmetic (p itself), so the outputs are identical
                score = prob.flatten() if alpha == 1.0 else (prob.pow(alpha) * iou[:, None].pow(1.0 - alpha)).flatten()
                keep = score > self.score_thresh
                score = score[keep]
                topk_idxs = torch.where(keep)[0]
                num_topk = det_utils._topk_min(topk_idxs, self.topk_candidates, 0)
                score, idxs = score.topk(num_topk)
                topk_idxs = topk_idxs[idxs]
                anchor_idxs = torch.div(topk_idxs, num_classes, rounding_mode="floor")
                labels = topk_idxs % num_classes
                boxes = self.box_coder.decode_single(reg[anchor_idxs], anc[anchor_idxs])
                parts["boxes"].append(box_ops.clip_boxes_to_image(boxes, image_shape))
                parts["scores"].append(score)
                parts["labels"].append(labels)
                parts["cls_scores"].append(prob[anchor_idxs, labels])
                parts["iou_preds"].append(iou[anchor_idxs])
            cat = {k: torch.cat(v, dim=0) for k, v in parts.items()}
            keep = box_ops.batched_nms(cat["boxes"], cat["scores"], cat["labels"], self.nms_thresh)[: self.detections_per_img]
            detections.append({k: v[keep] for k, v in cat.items()})
        return detections


def build_iou_aware_retinanet(config: DetectorConfig, *, weights: Path | str | None = None, pretrained: bool = False) -> IoUAwareRetinaNet:
    """An IoU-aware RetinaNet from its config (train mode); backbone from ``weights`` (local file) or ``pretrained``."""
    return IoUAwareRetinaNet(build_pyramid_backbone(config, weights=weights, pretrained=pretrained), config)


def retinanet_from_config(config: dict[str, Any]) -> IoUAwareRetinaNet:
    """The network a stored ``iou_aware_retinanet`` config describes (random init; the checkpoint loads the weights)."""
    return build_iou_aware_retinanet(DetectorConfig.from_dict(config))


@torch.no_grad()
def positive_anchor_ious(model: IoUAwareRetinaNet, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted vs true IoU of the boxes the model decodes at its positive anchors (the boxes the IoU branch learns on).

    Args:
        images: float ``(3, H, W)`` in ``[0, 1]``; targets: ``{"boxes" (N, 4) xyxy input px, "labels" (N,)}``.

    Returns:
        ``(predicted (P,), true (P,))`` float32 over every anchor matched to a ground-truth box
        (torchvision's matcher: IoU >= 0.5, plus each box's best anchor), all images together.
    """
    was_training = model.training
    model.eval()
    batch, targets = model.transform(images, targets)
    features = list(model.backbone(batch.tensors).values())
    out = model.head(features)
    anchors = model.anchor_generator(batch, features)
    preds, trues = [], []
    for i, (anc, tgt) in enumerate(zip(anchors, targets, strict=True)):
        if tgt["boxes"].numel() == 0:
            continue
        matched = model.proposal_matcher(box_ops.box_iou(tgt["boxes"], anc))
        fg = torch.where(matched >= 0)[0]
        decoded = model.box_coder.decode_single(out["bbox_regression"][i, fg], anc[fg])
        trues.append(aligned_iou(decoded, tgt["boxes"][matched[fg]]))
        preds.append(torch.sigmoid(out["iou_pred"][i, fg]))
    model.train(was_training)
    empty = torch.zeros(0)
    return (torch.cat(preds) if preds else empty), (torch.cat(trues) if trues else empty)

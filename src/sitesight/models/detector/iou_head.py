"""Post-hoc IoU head: predict, from the frame, how well any detector's box fits its object.

A small head on RoI features: the backbone (`sitesight.models.backbone.build_backbone`, any timm
name or ``tiny_cnn``) runs once per letterboxed frame, `sitesight.models.roi_head.roi_pool`
(RoIAlign, ``aligned=True``) pools the box itself and the box grown by ``context`` of its size on
each side, and an MLP over both pooled maps plus the box's class (one-hot) gives one logit whose
sigmoid is the predicted IoU of the box with the object it covers. It is trained with BCE against
the true IoU (`sitesight.evaluation.iou_aware.true_iou`) of a detector's stored predictions on
labelled frames (optionally plus jittered copies of the ground-truth boxes, which spread the
targets over the whole IoU range). After training, alpha is tuned per class on the validation
frames (`sitesight.sliced.alpha.tune_alpha_per_class`) and stored in the checkpoint.

Geometry: frames are letterboxed into ``frame_wh`` at the top-left (`sitesight.models.data.letterbox`);
boxes are frame-pixel ``xyxy`` and scaled by the same factor.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sitesight import atomic
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.iou_aware import iou_calibration, true_iou
from sitesight.models.backbone import Backbone, build_backbone
from sitesight.models.checkpoint import load_checkpoint, save_checkpoint
from sitesight.models.data import letterbox, to_tensor
from sitesight.models.roi_head import roi_pool
from sitesight.sliced.alpha import tune_alpha_per_class

__all__ = ["KIND", "IoUHeadConfig", "IoUHead", "build_iou_head", "iou_head_from_config", "box_iou_targets", "predict_box_ious",
           "train_iou_head", "load_iou_head"]

KIND = "iou_head"
# A frame's images and boxes: (rgb uint8 (H, W, 3), boxes Detections in its pixels, gt Detections or None)
Frame = tuple[np.ndarray, Detections, Detections | None]


@dataclass(frozen=True)
class IoUHeadConfig:
    """Everything that rebuilds an IoU head (stored in its checkpoint).

    Args:
        backbone: timm name or ``tiny_cnn`` (one feature map, `sitesight.models.backbone`).
        class_names: the detector's classes (one-hot input).
        frame_wh: letterbox size of the network input ``(width, height)``.
        roi_size: RoIAlign output side.
        context: the second RoI grows the box by this fraction of its width / height on each side.
        reduce_channels / hidden: 1x1 conv width and MLP width.
        alphas: per-class alpha for ``S = p^alpha * IoU^(1 - alpha)``, set by tuning (None = 0.5 for all).
    """

    backbone: str = "tiny_cnn"
    class_names: tuple[str, ...] = ("person", "helmet", "head")
    frame_wh: tuple[int, int] = (1280, 720)
    roi_size: int = 7
    context: float = 0.5
    reduce_channels: int = 32
    hidden: int = 128
    alphas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "frame_wh", tuple(int(v) for v in self.frame_wh))
        if self.alphas is not None:
            object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
            if len(self.alphas) != len(self.class_names):
                raise InputError(f"{len(self.alphas)} alphas for {len(self.class_names)} classes", where="alphas")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": KIND}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IoUHeadConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


class IoUHead(nn.Module):
    """``forward(images (B, 3, H, W) normalised, rois (R, 5) [batch, x1, y1, x2, y2] input px, class_id (R,)) -> (R,) logits``."""

    def __init__(self, backbone: Backbone, config: IoUHeadConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        c, s = config.reduce_channels, config.roi_size
        self.reduce = nn.Sequential(nn.Conv2d(2 * backbone.out_channels, c, 1), nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(nn.Linear(c * s * s + len(config.class_names), config.hidden), nn.ReLU(inplace=True),
                                 nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True), nn.Linear(config.hidden, 1))

    def forward(self, images: torch.Tensor, rois: torch.Tensor, class_id: torch.Tensor) -> torch.Tensor:
        fmap, stride = self.backbone(images)
        box = rois[:, 1:]
        grow = torch.cat([-(box[:, 2:] - box[:, :2]), box[:, 2:] - box[:, :2]], dim=1) * self.config.context
        wide = torch.cat([rois[:, :1], box + grow], dim=1)
        pooled = torch.cat([roi_pool(fmap, rois, stride, output_size=self.config.roi_size),
                            roi_pool(fmap, wide, stride, output_size=self.config.roi_size)], dim=1)
        onehot = F.one_hot(class_id.long(), len(self.config.class_names)).to(pooled.dtype)
        return self.mlp(torch.cat([self.reduce(pooled).flatten(1), onehot], dim=1))[:, 0]


def build_iou_head(config: IoUHeadConfig, *, weights: Path | str | None = None, pretrained: bool = False) -> IoUHead:
    """An IoU head from its config; backbone weights from a local file (``weights``) or the hub (``pretrained``)."""
    return IoUHead(build_backbone(config.backbone, weights=weights, pretrained=pretrained), config)


def iou_head_from_config(config: dict[str, Any]) -> IoUHead:
    """The network a stored ``iou_head`` config describes (random init; the checkpoint loads the weights)."""
    return build_iou_head(IoUHeadConfig.from_dict(config))


def box_iou_targets(boxes: Detections, gt: Detections, *, gt_jitter: int, rng: np.random.Generator) -> tuple[Detections, np.ndarray]:
    """Training boxes of one frame and their true IoU: the stored boxes plus ``gt_jitter`` jittered copies per GT box.

    Jittered copies shift the centre by up to 30 % and scale each side by 0.6–1.5, so targets cover 0.2–1.
    """
    parts = [boxes.replace(attributes={})]
    if gt_jitter and len(gt):
        g = np.repeat(gt.xyxy, gt_jitter, axis=0)
        wh = g[:, 2:] - g[:, :2]
        centre = (g[:, :2] + g[:, 2:]) / 2 + rng.uniform(-0.3, 0.3, wh.shape) * wh
        half = wh * rng.uniform(0.6, 1.5, wh.shape) / 2
        parts.append(Detections(xyxy=np.concatenate([centre - half, centre + half], 1), class_id=np.repeat(gt.class_id, gt_jitter)))
    out = Detections.concat(parts)
    return out, true_iou(out, gt)


def _batch(frames: Sequence[tuple[np.ndarray, Detections]], frame_wh: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    images, rois, classes = [], [], []
    for b, (rgb, boxes) in enumerate(frames):
        canvas, scale = letterbox(rgb, frame_wh)
        images.append(to_tensor(canvas))
        xyxy = np.clip(boxes.xyxy * scale, 0, [frame_wh[0], frame_wh[1], frame_wh[0], frame_wh[1]])
        rois.append(np.concatenate([np.full((len(boxes), 1), b, np.float32), xyxy.astype(np.float32)], 1))
        classes.append(boxes.class_id)
    return (torch.stack(images).to(device), torch.from_numpy(np.concatenate(rois)).to(device),
            torch.from_numpy(np.concatenate(classes)).to(device))


@torch.inference_mode()
def predict_box_ious(head: IoUHead, images: Sequence[np.ndarray], boxes: Sequence[Detections], *, batch_size: int = 4) -> list[np.ndarray]:
    """Predicted IoU ``(N_i,)`` float32 in ``[0, 1]`` for each frame's boxes (frame-pixel xyxy)."""
    head.eval()
    device = next(head.parameters()).device
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = list(zip(images[start : start + batch_size], boxes[start : start + batch_size], strict=True))
        counts = [len(b) for _, b in chunk]
        if sum(counts) == 0:
            out.extend(np.zeros(0, np.float32) for _ in chunk)
            continue
        pred = torch.sigmoid(head(*_batch(chunk, head.config.frame_wh, device))).float().cpu().numpy()
        out.extend(np.split(pred.astype(np.float32), np.cumsum(counts)[:-1]))
    return out


def train_iou_head(
    train: Sequence[Frame],
    val: Sequence[Frame],
    *,
    config: IoUHeadConfig,
    out_dir: Path | str,
    epochs: int = 12,
    lr: float = 3e-3,
    gt_jitter: int = 4,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Train an IoU head on stored predictions vs ground truth, tune alpha per class on ``val``, save it.

    Args:
        train / val: ``(rgb, stored boxes with score, gt)`` per frame; stored boxes' ``score`` is the
            detector's class score (used to tune alpha).
        config: the head; ``alphas`` is filled in here.
        out_dir: ``iou_head.safetensors`` (+ ``.json``), ``history.json``.
        epochs / lr: AdamW with a cosine schedule, 2 frames per step.
        gt_jitter: jittered copies of every ground-truth box added to the training boxes.
        seed: initialisation, order and jitter.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda:1"``…

    Returns:
        Summary: checkpoint path, alphas, validation calibration (`iou_calibration`) and history.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train or any(g is None for _, _, g in (*train, *val)):
        raise InputError("every training and validation frame needs ground truth", where="train")
    from sitesight.models.backbone import describe_init, warn_if_random
    from sitesight.models.train import resolve_device
    from sitesight.progress import epoch_line, make_console

    torch.manual_seed(seed)
    init = describe_init(config.backbone)
    warn_if_random(init, config.backbone)
    head = build_iou_head(config)
    dev = resolve_device(device)
    head.to(dev)
    console = make_console(stderr=True)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train) / 2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        t0, total, count = time.perf_counter(), 0.0, 0
        head.train()
        for start in range(0, len(train), 2):
            chunk = []
            for i in rng.permutation(len(train))[start : start + 2]:
                rgb, boxes, gt = train[int(i)]
                chosen, target = box_iou_targets(boxes, gt, gt_jitter=gt_jitter, rng=rng)
                chunk.append((rgb, chosen, target))
            if not sum(len(c[1]) for c in chunk):
                continue
            images, rois, classes = _batch([(r, b) for r, b, _ in chunk], config.frame_wh, dev)
            target = torch.from_numpy(np.concatenate([t for _, _, t in chunk])).to(dev)
            loss = F.binary_cross_entropy_with_logits(head(images, rois, classes).float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(target)
            count += len(target)
        history.append({"epoch": epoch, "loss": total / max(1, count), "seconds": round(time.perf_counter() - t0, 3)})
        console.print(epoch_line(history[-1], epochs), markup=False, soft_wrap=True)
    preds = predict_box_ious(head, [r for r, _, _ in val], [b for _, b, _ in val])
    truth = [true_iou(b, g) for _, b, g in val]
    calibration = iou_calibration(np.concatenate(preds) if preds else np.zeros(0), np.concatenate(truth) if truth else np.zeros(0))
    scored = [b.replace(attributes={**b.attributes, "cls_score": b.attributes.get("cls_score", b.score), "iou_pred": p}) for (_, b, _), p in zip(val, preds, strict=True)]
    alphas = tune_alpha_per_class(scored, [g for _, _, g in val], [round(0.1 * i, 1) for i in range(11)], num_classes=len(config.class_names))
    final = IoUHeadConfig.from_dict({**config.to_dict(), "alphas": [float(a) for a in alphas]})
    head.config = final
    path = save_checkpoint(out_dir / "iou_head.safetensors", head, {**final.to_dict(), "metrics": calibration.to_dict(), "backbone_init": init})
    summary = {"checkpoint": str(path), "alphas": dict(zip(config.class_names, map(float, alphas), strict=True)),
               "calibration": calibration.to_dict(), "history": history}
    atomic.write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def load_iou_head(path: Path | str, *, device: str = "cpu") -> IoUHead:
    """Rebuild an IoU head from its checkpoint (eval mode) through `sitesight.models.checkpoint.load_checkpoint`.

    Raises:
        InputError: missing file, another model kind, or weights that do not fit.
    """
    head, _ = load_checkpoint(path, kind=KIND, device=device)
    return head  # type: ignore[return-value]

"""Image classifiers by transfer learning: a backbone, global average pooling and a new linear head.

`train_classifier` runs the shared loop (`sitesight.models.train.fit`) on image lists or a
folder-per-class tree, with class weights, a weighted sampler or focal loss for long tails and an
optional frozen-backbone warm-up; `predict_classifier` returns ``(N, K)`` probabilities.

Example:
    >>> from sitesight.models.classifier import ClassifierConfig, build_classifier
    >>> import torch
    >>> m = build_classifier(ClassifierConfig(backbone="tiny_cnn", class_names=("ok", "bad"), image_size=32)).eval()
    >>> tuple(m(torch.zeros(2, 3, 32, 32)).shape)
    (2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sitesight.models.augment import Augment
from sitesight.models.backbone import Backbone, build_backbone
from sitesight.models.data import FrameSource, ImageClassDataset, class_collate
from sitesight.models.train import FitConfig, FitResult, evaluate, fit, resolve_device

__all__ = ["ClassifierConfig", "ImageClassifier", "build_classifier", "train_classifier", "predict_classifier"]


@dataclass(frozen=True)
class ClassifierConfig:
    """What rebuilds a classifier: backbone name, class names, square input size, head dropout."""

    backbone: str = "resnet18"
    class_names: tuple[str, ...] = ()
    image_size: int = 224
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": "classifier"}

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


class ImageClassifier(nn.Module):
    """``forward(images (B, 3, S, S) float) -> logits (B, K)``: backbone map → mean over h, w → linear."""

    def __init__(self, backbone: Backbone, config: ClassifierConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(backbone.out_channels, len(config.class_names)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap, _ = self.backbone(images)
        return self.head(fmap.float().mean(dim=(2, 3)))


def build_classifier(config: ClassifierConfig, *, weights: Path | str | None = None) -> ImageClassifier:
    """A classifier with a fresh head; ``weights`` is an optional local backbone weights file."""
    if len(config.class_names) < 2:
        raise ValueError(f"ClassifierConfig.class_names: need at least 2 classes, got {config.class_names}")
    return ImageClassifier(build_backbone(config.backbone, weights=weights), config)


def train_classifier(
    train: tuple[Sequence[FrameSource], np.ndarray],
    val: tuple[Sequence[FrameSource], np.ndarray] | None,
    *,
    model: ClassifierConfig,
    fit_config: FitConfig,
    out_dir: Path | str,
    weights: Path | str | None = None,
    augment: Augment | None = None,
    resume: bool = False,
) -> FitResult:
    """Fine-tune a classifier on ``(images, labels (N,) int64)``; best epoch by validation macro AP.

    Args:
        train / val: image paths or uint8 arrays with their class indices into ``model.class_names``.
        model: architecture, classes and input size.
        fit_config: optimisation (class weights, sampler, focal loss, frozen warm-up…).
        out_dir: checkpoint, history and resume state.
        weights: local backbone weights (the "pretrained" part of transfer learning).
        augment: training augmentation (horizontal flips come with it); ``None`` = none.
    """
    torch.manual_seed(fit_config.seed)
    net = build_classifier(model, weights=weights)
    train_set = ImageClassDataset(train[0], train[1], image_size=model.image_size, augment=augment, hflip=augment is not None, seed=fit_config.seed)
    val_set = None if val is None else ImageClassDataset(val[0], val[1], image_size=model.image_size)
    return fit(net, train_set, val_set, collate=class_collate, config=fit_config, out_dir=out_dir, model_config=model.to_dict(), resume=resume)


def predict_classifier(
    model: ImageClassifier, images: Sequence[FrameSource], *, batch_size: int = 16, device: str = "auto"
) -> np.ndarray:
    """``(N, K)`` float32 class probabilities for image paths or ``(h, w, 3)`` uint8 arrays."""
    dev = resolve_device(device)
    model = model.to(dev)
    dataset = ImageClassDataset(images, None, image_size=model.config.image_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=class_collate)
    _, _, probs = evaluate(model, loader, device=dev)
    return probs.reshape(len(images), len(model.config.class_names))

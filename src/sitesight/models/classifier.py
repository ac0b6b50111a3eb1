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

from sitesight import atomic
from sitesight.models.augment import Augment
from sitesight.models.backbone import Backbone, build_backbone, describe_init, warn_if_random
from sitesight.models.data import FrameSource, ImageClassDataset, class_collate
from sitesight.models.train import FitConfig, FitResult, evaluate, fit, resolve_device

__all__ = [
    "ClassifierConfig",
    "ImageClassifier",
    "build_classifier",
    "classifier_from_config",
    "train_classifier",
    "train_and_evaluate_classifier",
    "predict_classifier",
    "write_class_csv",
    "predict_image_files",
]


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


def build_classifier(config: ClassifierConfig, *, weights: Path | str | None = None, pretrained: bool = False) -> ImageClassifier:
    """A classifier with a fresh head; backbone weights from a local file (``weights``) or the hub (``pretrained``)."""
    if len(config.class_names) < 2:
        raise ValueError(f"ClassifierConfig.class_names: need at least 2 classes, got {config.class_names}")
    return ImageClassifier(build_backbone(config.backbone, weights=weights, pretrained=pretrained), config)


def classifier_from_config(config: dict) -> ImageClassifier:
    """The network a stored ``classifier`` config describes (random init; `sitesight.models.checkpoint` loads the weights)."""
    return build_classifier(ClassifierConfig.from_dict(config))


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
    pretrained: bool = False,
) -> FitResult:
    """Fine-tune a classifier on ``(images, labels (N,) int64)``; best epoch by validation macro AP.

    Args:
        train / val: image paths or uint8 arrays with their class indices into ``model.class_names``.
        model: architecture, classes and input size.
        fit_config: optimisation (class weights, sampler, focal loss, frozen warm-up…).
        out_dir: checkpoint, history and resume state.
        weights: local backbone weights (the "pretrained" part of transfer learning, offline).
        augment: training augmentation (horizontal flips come with it); ``None`` = none.
        pretrained: the backbone name's pretrained weights from the hub (when ``weights`` is None);
            neither = random init, warned about and recorded as ``backbone_init`` in the checkpoint.
    """
    torch.manual_seed(fit_config.seed)
    init = describe_init(model.backbone, weights=weights, pretrained=pretrained)
    warn_if_random(init, model.backbone)
    net = build_classifier(model, weights=weights, pretrained=pretrained)
    train_set = ImageClassDataset(train[0], train[1], image_size=model.image_size, augment=augment, hflip=augment is not None, seed=fit_config.seed)
    val_set = None if val is None else ImageClassDataset(val[0], val[1], image_size=model.image_size)
    return fit(net, train_set, val_set, collate=class_collate, config=fit_config, out_dir=out_dir,
               model_config={**model.to_dict(), "backbone_init": init}, resume=resume)


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


def write_class_csv(path: Path | str, images: Sequence[FrameSource], probs: np.ndarray, class_names: Sequence[str], labels: np.ndarray | None = None) -> Path:
    """One row per image: ``image, label, pred`` and one probability column per class (``sitesight eval cls``)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.open_atomic(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", "pred", *class_names])
        for i, image in enumerate(images):
            true = "" if labels is None or labels[i] < 0 else class_names[int(labels[i])]
            name = image if not isinstance(image, np.ndarray) else f"array_{i}"
            writer.writerow([str(name), true, class_names[int(probs[i].argmax())], *(f"{float(v):.6f}" for v in probs[i])])
    return path


def train_and_evaluate_classifier(
    train: tuple[Sequence[FrameSource], np.ndarray],
    val: tuple[Sequence[FrameSource], np.ndarray],
    *,
    model: ClassifierConfig,
    fit_config: FitConfig,
    out_dir: Path | str,
    weights: Path | str | None = None,
    augment: Augment | None = None,
    resume: bool = False,
    pretrained: bool = False,
) -> dict:
    """`train_classifier`, then score the best checkpoint on ``val``.

    Writes ``predictions.csv`` and ``metrics.json`` beside the checkpoint and history; returns a
    flat summary (accuracy, macro AP / F1 over present classes, best epoch, checkpoint path).
    """
    import json

    from sitesight.evaluation.classification import classification_metrics
    from sitesight.models.checkpoint import load_checkpoint

    out_dir = Path(out_dir)
    result = train_classifier(train, val, model=model, fit_config=fit_config, out_dir=out_dir, weights=weights, augment=augment, resume=resume,
                              pretrained=pretrained)
    net, stored = load_checkpoint(result.checkpoint)
    probs = predict_classifier(net, val[0], batch_size=fit_config.batch_size, device=fit_config.device)
    y = np.asarray(val[1], np.int64)
    write_class_csv(out_dir / "predictions.csv", val[0], probs, model.class_names, y)
    metrics = classification_metrics(y, probs, model.class_names).to_dict()
    metrics["backbone_init"] = stored.get("backbone_init", "unknown")
    atomic.write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    return {
        "checkpoint": str(result.checkpoint),
        "backbone_init": metrics["backbone_init"],
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "accuracy": metrics["accuracy"],
        "macro_ap": metrics["macro_active"]["ap"],
        "macro_f1": metrics["macro_active"]["f1"],
    }


def predict_image_files(
    checkpoint: Path | str, images: Path | str, out_csv: Path | str, *, batch_size: int = 16, device: str = "auto"
) -> tuple[int, list[tuple[Path, str]]]:
    """Predict an image, a folder of images or a folder-per-class tree (true labels filled in) to a CSV.

    Returns ``(images predicted, [(skipped image, reason), ...])``: an image that cannot be read is
    skipped with its reason, not fatal. Class folders must match the checkpoint's class names to fill labels.
    """
    from sitesight.errors import InputError
    from sitesight.images import IMAGE_SUFFIXES, split_readable  # every image kind: a GIF is listed as skipped
    from sitesight.models.checkpoint import load_checkpoint
    from sitesight.models.data import scan_image_folder

    net, _ = load_checkpoint(checkpoint, kind="classifier")
    names = net.config.class_names
    images = Path(images)
    labels = None
    if images.is_file():
        paths = [images]
    elif images.is_dir() and any(p.is_dir() for p in images.iterdir()):
        paths, found, folders = scan_image_folder(images)
        lookup = {n: i for i, n in enumerate(names)}
        labels = np.array([lookup.get(folders[k], -1) for k in found], np.int64)
    elif images.is_dir():
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise InputError("no such image or folder", images)
    if not paths:
        raise InputError("no images found", images)
    readable, skipped = split_readable(list(paths))
    if not readable:
        raise InputError(f"none of the {len(paths)} images can be read (first: {skipped[0][1]})", images)
    if labels is not None:
        keep = {p: i for i, p in enumerate(paths)}
        labels = labels[[keep[p] for p in readable]]
    probs = predict_classifier(net, readable, batch_size=batch_size, device=device)
    write_class_csv(out_csv, readable, probs, names, labels)
    return len(readable), skipped

"""Training the IoU-aware RetinaNet from a `Dataset`: `detection_items`, `DetectionSet`, `fit_detector`, `train_detector`.

Read top to bottom: frames (optionally cut into slices with `sitesight.slice_grid` and
`sitesight.curation.tiling.tile_detections`, SAHI's labelling rule) become ``(rgb, gt)`` items;
each epoch they are augmented (horizontal flip, scale jitter as zoom-crop / shrink-pad at a fixed
input size, photometric and camera noise from `sitesight.models.augment`), the model is trained
with AdamW or SGD under a linear warm-up then cosine schedule, and evaluated on the validation
items with `sitesight.evaluation.coco.evaluate_coco` (the 12 pycocotools stats). The best epoch by
AP (ties: AP75) is written as ``best.safetensors`` (rebuilt by
`sitesight.models.detector.callable.load_detector`), the full training state as ``last.pt``
(``resume=True`` continues from it and repeats the uninterrupted run: every epoch reseeds from
``seed`` and the epoch number), the history as ``history.csv`` / ``history.json`` every epoch; training
stops after ``patience`` epochs without a better AP.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.models.augment import Augment
from sitesight.models.backbone import describe_init, warn_if_random
from sitesight.models.checkpoint import save_checkpoint
from sitesight.models.detector.callable import predict_images, to_input
from sitesight.models.detector.iou_aware import DetectorConfig, IoUAwareRetinaNet, build_iou_aware_retinanet
from sitesight.models.train import FitResult, load_last, resolve_device, write_history
from sitesight.progress import epoch_line, progress_reporter

__all__ = ["DetTrainConfig", "select_classes", "detection_items", "DetectionSet", "fit_detector", "train_detector"]

log = logging.getLogger(__name__)
Item = tuple[np.ndarray, Detections]
# photometric and camera noise only (no erasing: it would hide labelled objects)
DEFAULT_PHOTOMETRIC = Augment(p_erase=0.0, p_jpeg=0.1, p_noise=0.2, p_blur=0.1)


@dataclass(frozen=True)
class DetTrainConfig:
    """Optimisation and augmentation settings.

    Args:
        epochs / batch_size / lr / weight_decay: the schedule is a linear warm-up over
            ``warmup_steps`` then a cosine decay to 0 at the last step.
        optimizer: ``"adamw"`` or ``"sgd"`` (with ``momentum``, Nesterov off).
        patience: stop after this many epochs without a better validation AP.
        hflip: probability of a horizontal flip.
        scale: ``(low, high)`` zoom factor range; > 1 zooms in (random crop), < 1 shrinks (grey padding).
        photometric: apply `DEFAULT_PHOTOMETRIC` (brightness, contrast, saturation, blur, noise, JPEG, gamma).
        tile_wh / tile_overlap: train (and validate) on `sitesight.slice_grid` slices of this size
            instead of whole frames (None = whole frames).
        background_fraction: share of training items without any box that is kept (drawn once from
            ``seed``); sparse scenes cut into slices are mostly background, which starves the model
            of positives in a short training.
        grad_clip: max gradient norm (0 = off).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``…; seed: initialisation, data order and augmentation.
        progress: report progress and one line per epoch (`sitesight.progress`).
    """

    epochs: int = 12
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    warmup_steps: int = 50
    patience: int = 4
    hflip: float = 0.5
    scale: tuple[float, float] = (0.8, 1.25)
    photometric: bool = True
    tile_wh: tuple[int, int] | None = None
    tile_overlap: tuple[float, float] = (0.2, 0.2)
    background_fraction: float = 1.0
    grad_clip: float = 10.0
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise InputError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}", where="optimizer")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}", where="epochs")
        if not 0.0 <= self.background_fraction <= 1.0:
            raise InputError(f"background_fraction must lie in [0, 1], got {self.background_fraction}", where="background_fraction")
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        if self.tile_wh is not None:
            object.__setattr__(self, "tile_wh", tuple(int(v) for v in self.tile_wh))


def select_classes(dataset: Dataset, class_names: Sequence[str]) -> Dataset:
    """``dataset`` with only the boxes of ``class_names``, renumbered so ``class_id`` ``k`` is ``class_names[k]``.

    Raises:
        InputError: a name the dataset does not have.
    """
    missing = [name for name in class_names if name not in dataset.class_names]
    if missing or not class_names:
        raise InputError(f"classes {missing or '[]'} not among the dataset's {list(dataset.class_names)}", where="class_names")
    old = [dataset.class_names.index(name) for name in class_names]
    lut = np.full(len(dataset.class_names), -1, np.int64)
    lut[old] = np.arange(len(old))
    samples = []
    for sample in dataset.samples:
        new_id = lut[sample.gt.class_id]
        kept = sample.gt[new_id >= 0]
        samples.append(sample.replace(gt=kept.replace(class_id=new_id[new_id >= 0])))
    return dataset.replace(class_names=tuple(class_names), samples=samples)


def detection_items(
    dataset: Dataset,
    *,
    images: Sequence[np.ndarray] | None = None,
    tile_wh: tuple[int, int] | None = None,
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    min_area_ratio: float = 0.1,
    keep_empty: bool = True,
) -> list[Item]:
    """``(rgb uint8 (H, W, 3), gt in its pixels)`` items from a dataset, optionally cut into tiles.

    Args:
        dataset: labelled frames; images are read from disk unless ``images`` (aligned with the
            samples) are given. Unreadable images are logged and skipped.
        tile_wh: cut each frame on `sitesight.slice_grid`'s windows of this size (None = whole frames).
        overlap_ratio / min_area_ratio: as in `sitesight.curation.tiling.tile_detections`.
        keep_empty: keep tiles without boxes (background).
    """
    from sitesight.curation.tiling import tile_detections
    from sitesight.models.data import read_rgb
    from sitesight.sliced.slicing import slice_grid

    if images is not None and len(images) != len(dataset):
        raise InputError(f"{len(images)} images for {len(dataset)} samples", where="images")
    items: list[Item] = []
    skipped = 0
    for i, sample in enumerate(dataset.samples):
        try:
            rgb = images[i] if images is not None else read_rgb(dataset.image_path(sample))
        except InputError as exc:
            log.warning("skipping %s", exc)
            skipped += 1
            continue
        if tile_wh is None:
            items.append((rgb, sample.gt))
            continue
        tiles = slice_grid((rgb.shape[1], rgb.shape[0]), tile_wh, overlap_ratio)
        for (x1, y1, x2, y2), gt in zip(tiles.tolist(), tile_detections(sample.gt, tiles, min_area_ratio=min_area_ratio), strict=True):
            if len(gt) or keep_empty:
                items.append((rgb[y1:y2, x1:x2], gt))
    if skipped:
        log.warning("%d of %d frames could not be read and were skipped", skipped, len(dataset))
    return items


def _zoom(rgb: np.ndarray, gt: Detections, factor: float, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
    """Resize by ``factor`` then crop (factor > 1) or grey-pad (factor < 1) back to the original size."""
    h, w = rgb.shape[:2]
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    resized = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    xyxy = gt.xyxy * np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
    if factor >= 1:
        x0, y0 = int(rng.integers(0, nw - w + 1)), int(rng.integers(0, nh - h + 1))
        out = resized[y0 : y0 + h, x0 : x0 + w]
    else:
        x0, y0 = -int(rng.integers(0, w - nw + 1)), -int(rng.integers(0, h - nh + 1))
        out = np.full((h, w, 3), 114, np.uint8)
        out[-y0 : -y0 + nh, -x0 : -x0 + nw] = resized
    moved = gt.replace(xyxy=xyxy - np.array([x0, y0, x0, y0], np.float32))
    full = moved.area
    clipped = moved.clip((w, h))
    keep = clipped.area >= 0.4 * np.maximum(full, 1e-6)  # mostly cut-off objects are not kept as targets
    return out, clipped[keep]


class DetectionSet(torch.utils.data.Dataset):
    """``(image (3, H, W) float [0, 1], target {"boxes" (N, 4) float32 xyxy, "labels" (N,) int64})`` per item.

    Augmentation (when ``config`` is given) is drawn from ``np.random.default_rng((seed, epoch, index))``.
    Boxes narrower or shorter than 1 px are dropped (torchvision rejects them).
    """

    def __init__(self, items: Sequence[Item], config: DetTrainConfig | None = None) -> None:
        self.items = list(items)
        self.config = config
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rgb, gt = self.items[index]
        cfg = self.config
        if cfg is not None:
            rng = np.random.default_rng((cfg.seed, self.epoch, index))
            factor = float(rng.uniform(*cfg.scale))
            if abs(factor - 1.0) > 1e-3:
                rgb, gt = _zoom(rgb, gt, factor, rng)
            if rng.random() < cfg.hflip:
                w = rgb.shape[1]
                rgb = rgb[:, ::-1]
                gt = gt.replace(xyxy=np.stack([w - gt.xyxy[:, 2], gt.xyxy[:, 1], w - gt.xyxy[:, 0], gt.xyxy[:, 3]], axis=1))
            if cfg.photometric:
                rgb = DEFAULT_PHOTOMETRIC.apply(np.ascontiguousarray(rgb), rng)
        wh = gt.xyxy[:, 2:] - gt.xyxy[:, :2]
        gt = gt[(wh >= 1).all(axis=1)]
        target = {"boxes": torch.from_numpy(gt.xyxy.astype(np.float32)).reshape(-1, 4), "labels": torch.from_numpy(gt.class_id.astype(np.int64))}
        return to_input(np.ascontiguousarray(rgb)), target


def _collate(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    return [b[0] for b in batch], [b[1] for b in batch]


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))


def fit_detector(
    model: IoUAwareRetinaNet,
    train_items: Sequence[Item],
    val_items: Sequence[Item] | None,
    *,
    config: DetTrainConfig,
    out_dir: Path | str,
    resume: bool = False,
    backbone_init: str = "unknown",
) -> FitResult:
    """Train ``model`` on ``train_items``, keep the best epoch on ``val_items``; see the module docstring.

    ``backbone_init`` (`sitesight.models.backbone.describe_init`) is recorded in the checkpoint.

    Returns:
        `sitesight.models.train.FitResult` (history rows, best epoch, its COCO stats, checkpoint path).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    train_set = DetectionSet(train_items, config)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = max(1, steps_per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.warmup_steps, total))
    state: dict[str, Any] = {"epoch": 0, "history": [], "best": (-math.inf, -math.inf), "best_epoch": 0, "bad_epochs": 0, "best_metrics": None}
    last_path, best_path = out_dir / "last.pt", out_dir / "best.safetensors"
    if resume and last_path.is_file():
        state = load_last(last_path, model, optimizer, scheduler, device)
    model_config = {**model.config.to_dict(), "fit": asdict(config), "backbone_init": backbone_init}
    stopped_early = False
    pin = device.type == "cuda"
    with progress_reporter("train det", steps_per_epoch * (config.epochs - state["epoch"]), unit="steps", enabled=config.progress) as progress:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["bad_epochs"] >= config.patience:
                stopped_early = True
                break
            t0 = time.perf_counter()
            torch.manual_seed(config.seed * 1000 + epoch)
            train_set.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True, collate_fn=_collate,
                                                 generator=torch.Generator().manual_seed(config.seed * 1000 + epoch), pin_memory=pin)
            progress.update(description=f"train det epoch {epoch}/{config.epochs}")
            model.train()
            sums: dict[str, float] = {}
            for images, targets in loader:
                losses = model([im.to(device, non_blocking=True) for im in images],
                               [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets])
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                progress.advance()
            train_seconds = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch, **{f"loss_{k}": v / max(1, steps_per_epoch) for k, v in sums.items()},
                                   "lr": optimizer.param_groups[0]["lr"], "train_images_per_s": round(len(train_set) / train_seconds, 3)}
            metrics = None
            if val_items:
                preds = predict_images(model, [im for im, _ in val_items], batch_size=config.batch_size)
                from sitesight.evaluation.coco import evaluate_coco

                metrics = evaluate_coco([g for _, g in val_items], preds, class_names=model.config.class_names).named
                row |= {f"val_{k}": v for k, v in metrics.items() if k in ("AP", "AP50", "AP75")}
                score = (round(float(metrics["AP"]), 6), round(float(metrics["AP75"]), 6))
            else:
                score = (-sum(sums.values()), 0.0)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            progress.note(epoch_line(row, config.epochs))
            state["history"].append(row)
            if score > tuple(state["best"]):
                state |= {"best": score, "best_epoch": epoch, "bad_epochs": 0, "best_metrics": metrics}
                save_checkpoint(best_path, model, {**model_config, "epoch": epoch, "metrics": metrics})
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            with atomic.open_atomic(last_path, "wb") as fh:  # a kill mid-save keeps the previous last.pt whole
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "state": state}, fh)
            write_history(out_dir, state["history"])
    return FitResult(history=list(state["history"]), best_epoch=int(state["best_epoch"]), best_metrics=state["best_metrics"],
                     checkpoint=best_path, stopped_early=stopped_early)


def train_detector(
    train: Dataset,
    val: Dataset | None,
    *,
    config: DetectorConfig,
    train_config: DetTrainConfig,
    out_dir: Path | str,
    weights: Path | str | None = None,
    images: tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None] | None = None,
    resume: bool = False,
    pretrained: bool = False,
) -> FitResult:
    """Build an IoU-aware RetinaNet from ``config`` and train it on ``train``.

    Args:
        train / val: labelled frames (any format, `sitesight.formats.read_dataset`); val may be None.
        config: the model (its ``class_names`` must equal the datasets').
        train_config: optimisation and augmentation.
        out_dir: ``best.safetensors``, ``last.pt``, ``history.csv`` / ``.json``.
        weights: local backbone weights (timm layout).
        pretrained: the backbone name's pretrained weights from the hub (when ``weights`` is None);
            neither = random init, warned about and recorded as ``backbone_init`` in the checkpoint.
        images: decoded ``(train images, val images)`` aligned with the samples, to skip reading files.
        resume: continue from ``out_dir/last.pt`` when it exists.
    """
    for ds in (train, val):
        if ds is not None and tuple(ds.class_names) != tuple(config.class_names):
            raise InputError(f"dataset classes {list(ds.class_names)} differ from the model's {list(config.class_names)}", where="class_names")
    train_images, val_images = images if images is not None else (None, None)
    tile_wh, overlap = train_config.tile_wh, train_config.tile_overlap
    train_items = detection_items(train, images=train_images, tile_wh=tile_wh, overlap_ratio=overlap)
    if train_config.background_fraction < 1.0:
        keep = np.random.default_rng(train_config.seed).random(len(train_items)) < train_config.background_fraction
        train_items = [item for item, k in zip(train_items, keep, strict=True) if k or len(item[1])]
    val_items = None if val is None else detection_items(val, images=val_images, tile_wh=tile_wh, overlap_ratio=overlap, keep_empty=False)
    if not train_items:
        raise InputError("no readable training frames", where="train")
    torch.manual_seed(train_config.seed)
    init = describe_init(config.backbone, weights=weights, pretrained=pretrained)
    warn_if_random(init, config.backbone)
    model = build_iou_aware_retinanet(config, weights=weights, pretrained=pretrained)
    return fit_detector(model, train_items, val_items, config=train_config, out_dir=out_dir, resume=resume, backbone_init=init)

"""The training loop shared by the RoI head and the image classifier: `train_one_epoch`, `evaluate`, `fit`.

Contract: a dataset yields items that its ``collate`` turns into ``(inputs, labels)``;
``model(*inputs)`` returns ``(R, K)`` logits for ``(R,)`` int64 labels. The model has a
``backbone`` attribute (frozen for the first ``freeze_backbone_epochs`` epochs).

`fit` resolves the device once (`sitesight.device.resolve_device_name`: ``auto`` = CUDA, then
MPS, then the CPU); on CUDA it uses mixed precision (bfloat16 autocast where the GPU has it, else
float16 with a gradient scaler), pinned memory and, when asked, ``torch.compile``; DataLoader
workers (``num_workers``) prepare batches beside the model. It reports progress through
`sitesight.progress` (a bar on a terminal, timed plain lines in a pipe) and prints one line per
epoch with its metrics. It is deterministic under ``seed`` (each epoch reseeds torch and the data order with ``seed`` and the
epoch number, so a resumed run repeats the uninterrupted one); it keeps the best epoch by
validation macro AP over classes present in the validation set (`classification_metrics`), stops
after ``patience`` epochs without improvement, writes ``history.csv`` / ``history.json`` every
epoch, ``best.safetensors`` (rebuildable, see `sitesight.models.checkpoint`) and ``last.pt`` (the
full training state that ``resume=True`` continues from).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sitesight import atomic
from sitesight.evaluation.classification import classification_metrics
from sitesight.models.checkpoint import save_checkpoint
from sitesight.progress import epoch_line, progress_reporter

__all__ = ["FitConfig", "FitResult", "resolve_device", "amp_dtype", "loss_fn", "train_one_epoch", "evaluate", "fit"]


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings (defaults: the field's RoI-head recipe).

    Args:
        epochs / batch_size / lr / weight_decay: AdamW with a per-step cosine schedule to 0.
        backbone_lr_scale: the backbone's learning rate is ``lr * backbone_lr_scale`` (a pretrained
            backbone wants smaller steps than the new head; 1.0 = one rate for all).
        patience: stop after this many epochs without a better validation macro AP.
        class_weights: per-class cross-entropy weights (e.g. ``(1.0, 1.5, 1.5)``); ``None`` = equal.
        loss: ``"ce"`` or ``"focal"`` (``focal_gamma``) for long tails.
        weighted_sampler: draw training items inversely to their class frequency.
        freeze_backbone_epochs: keep the backbone frozen for the first N epochs.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        compile: ``torch.compile`` the model (CUDA only; the first epoch pays the compilation).
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        seed: fixes initialisation (callers), data order, augmentation and dropout.
        num_workers: DataLoader worker processes (0 = decode in the training process).
        progress: report progress and one line per epoch (`sitesight.progress`).
    """

    epochs: int = 20
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.01
    backbone_lr_scale: float = 1.0
    patience: int = 8
    class_weights: tuple[float, ...] | None = (1.0, 1.5, 1.5)
    loss: str = "ce"
    focal_gamma: float = 2.0
    weighted_sampler: bool = False
    freeze_backbone_epochs: int = 0
    device: str = "auto"
    compile: bool = False
    amp: bool = True
    seed: int = 0
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"FitConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.loss not in ("ce", "focal"):
            raise ValueError(f"FitConfig.loss: expected 'ce' or 'focal', got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"FitConfig: epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")


@dataclass(frozen=True)
class FitResult:
    """What `fit` produced: per-epoch history rows, the best epoch and its validation metrics."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, Any] | None
    checkpoint: Path
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "checkpoint": str(self.checkpoint),
            "stopped_early": self.stopped_early,
            **self.extra,
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → ``cuda``, then ``mps``, then ``cpu``; a named device is checked (`sitesight.device.resolve_device_name`)."""
    if isinstance(device, torch.device):
        return device
    from sitesight.device import resolve_device_name

    return torch.device(resolve_device_name(device))


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for training on ``device``: bfloat16 on CUDA GPUs that have it, float16 on
    older CUDA GPUs (with a gradient scaler), ``None`` (full float32) elsewhere or when not ``enabled``."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, *, weight: torch.Tensor | None, focal_gamma: float | None) -> torch.Tensor:
    """Mean (class-weighted) cross-entropy, or focal loss ``(1 - p_t)^gamma * CE`` when ``focal_gamma``."""
    logits = logits.float()
    if focal_gamma is None:
        return F.cross_entropy(logits, labels, weight=weight)
    ce = F.cross_entropy(logits, labels, weight=weight, reduction="none")
    p_t = torch.softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]
    focal = (1 - p_t).pow(focal_gamma) * ce
    denom = weight[labels].sum() if weight is not None else torch.tensor(float(len(labels)), device=logits.device)
    return focal.sum() / denom.clamp_min(1e-12)


def _to(inputs: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in inputs]


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    device: torch.device,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    amp: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[], None] | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss per labelled item.

    ``amp`` is the autocast dtype (`amp_dtype`; ``None`` = float32); ``scaler`` scales float16 losses.
    """
    model.train()
    total, count = 0.0, 0
    for inputs, labels in loader:
        labels = labels.to(device, non_blocking=True)
        if len(labels) == 0:
            continue
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(*_to(inputs, device))
        value = loss(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(value).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            value.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float(value.detach()) * len(labels)
        count += len(labels)
        if on_step is not None:
            on_step()
    return total / max(count, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    *,
    device: torch.device,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    amp: torch.dtype | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Predict ``loader``: ``(mean loss or nan, y_true (N,) int64, probs (N, K) float32)``; ``amp`` as in `train_one_epoch`."""
    model.eval()
    ys, ps, total = [], [], 0.0
    for inputs, labels in loader:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(*_to(inputs, device))
        logits = logits.float()
        if loss is not None and len(labels):
            total += float(loss(logits, labels.to(device))) * len(labels)
        ys.append(labels.numpy())
        ps.append(torch.softmax(logits, dim=1).cpu().numpy())
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    probs = np.concatenate(ps).astype(np.float32) if ps else np.zeros((0, 0), np.float32)
    return (total / len(y) if loss is not None and len(y) else float("nan")), y, probs


def _sample_weights(dataset: torch.utils.data.Dataset, num_classes: int) -> torch.Tensor:
    """Per-item weight = mean over its labels of 1 / class frequency (items are frames, crops or images)."""
    raw = dataset.item_labels() if hasattr(dataset, "item_labels") else getattr(dataset, "labels", None)
    labels = [] if raw is None else [np.atleast_1d(np.asarray(lab)) for lab in raw]
    if not labels:
        raise ValueError("weighted_sampler needs a dataset with a `labels` attribute")
    counts = np.bincount(np.concatenate(labels), minlength=num_classes).astype(np.float64)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return torch.tensor([inv[lab].mean() if len(lab) else 0.0 for lab in labels], dtype=torch.float64)


def load_last(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device) -> dict[str, Any]:
    """Restore model, optimizer and scheduler from a ``last.pt`` written by a loop; returns its loop state."""
    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return saved["state"]


def write_history(out_dir: Path, history: list[dict[str, Any]]) -> None:
    """``history.json`` and ``history.csv`` (one row per epoch, the union of all keys as columns)."""
    atomic.write_text(out_dir / "history.json", json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic.open_atomic(out_dir / "history.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def fit(
    model: nn.Module,
    train_set: torch.utils.data.Dataset,
    val_set: torch.utils.data.Dataset | None,
    *,
    collate: Callable,
    config: FitConfig,
    out_dir: Path | str,
    model_config: dict[str, Any],
    resume: bool = False,
) -> FitResult:
    """Train ``model`` on ``train_set``, keep the best epoch on ``val_set``; see the module docstring.

    Args:
        model: nn.Module with a ``backbone`` attribute, ``model(*inputs) -> (R, K)`` logits.
        train_set / val_set: datasets with ``set_epoch`` (optional) and ``collate``; without a
            validation set the best epoch is the one with the lowest training loss.
        model_config: JSON-able constructor config with ``class_names`` and ``kind``, stored in
            the checkpoint so `sitesight.models.checkpoint.load_checkpoint` rebuilds the model.
        resume: continue from ``out_dir/last.pt`` when it exists.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_names = tuple(model_config["class_names"])
    device = resolve_device(config.device)
    on_cuda = device.type == "cuda"
    amp = amp_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    model.to(device)
    run_model = torch.compile(model) if (config.compile and on_cuda) else model
    weight = None if config.class_weights is None else torch.tensor(config.class_weights, dtype=torch.float32, device=device)
    if weight is not None and len(weight) != len(class_names):
        raise ValueError(f"class_weights has {len(weight)} values for {len(class_names)} classes {class_names}")
    gamma = config.focal_gamma if config.loss == "focal" else None

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits, labels, weight=weight, focal_gamma=gamma)

    backbone_ids = {id(p) for p in model.backbone.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in backbone_ids], "lr": config.lr},
              {"params": list(model.backbone.parameters()), "lr": config.lr * config.backbone_lr_scale}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = max(1, steps_per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    state = {"epoch": 0, "history": [], "best_score": (-math.inf, -math.inf), "best_epoch": 0, "bad_epochs": 0, "best_metrics": None}
    last_path, best_path = out_dir / "last.pt", out_dir / "best.safetensors"
    if resume and last_path.is_file():
        state = load_last(last_path, model, optimizer, scheduler, device)
    sample_weights = _sample_weights(train_set, len(class_names)) if config.weighted_sampler else None
    stopped_early = False
    workers = {"num_workers": config.num_workers, "pin_memory": on_cuda, "persistent_workers": False}
    if config.num_workers > 0:
        workers["prefetch_factor"] = 2
    with progress_reporter("train", steps_per_epoch * (config.epochs - state["epoch"]), unit="steps", enabled=config.progress) as progress:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["bad_epochs"] >= config.patience:
                stopped_early = True
                break
            t0 = time.perf_counter()
            torch.manual_seed(config.seed * 1000 + epoch)
            for ds in (train_set, val_set):
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(epoch)
            generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            sampler = None
            if sample_weights is not None:
                sampler = torch.utils.data.WeightedRandomSampler(sample_weights, len(train_set), replacement=True, generator=generator)
            loader = torch.utils.data.DataLoader(
                train_set,
                batch_size=config.batch_size,
                shuffle=sampler is None,
                sampler=sampler,
                generator=generator,
                collate_fn=collate,
                **workers,
            )
            frozen = epoch <= config.freeze_backbone_epochs
            for p in model.backbone.parameters():
                p.requires_grad_(not frozen)
            progress.update(description=f"train epoch {epoch}/{config.epochs}")
            train_loss = train_one_epoch(
                run_model, loader, optimizer, scheduler, device=device, loss=loss, amp=amp, scaler=scaler, on_step=progress.advance
            )
            row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"], "backbone_frozen": frozen}
            metrics = None
            if val_set is not None:
                val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.batch_size, collate_fn=collate, **workers)
                val_loss, y, probs = evaluate(run_model, val_loader, device=device, loss=loss, amp=amp)
                metrics = classification_metrics(y, probs, class_names).to_dict()
                ap = metrics["macro_active"]["ap"]
                # ties in AP (it saturates at 1.0 on easy sets) go to the lower validation loss
                score = (-math.inf if ap is None else round(float(ap), 6), -val_loss)
                row |= {"val_loss": val_loss, "val_accuracy": metrics["accuracy"], "val_macro_ap": ap, "val_macro_f1": metrics["macro_active"]["f1"]}
            else:
                score = (-train_loss, 0.0)
            row["seconds"] = round(time.perf_counter() - t0, 3)
            progress.note(epoch_line(row, config.epochs))
            state["history"].append(row)
            if score > tuple(state["best_score"]):
                state |= {"best_score": score, "best_epoch": epoch, "bad_epochs": 0, "best_metrics": metrics}
                save_checkpoint(best_path, model, {**model_config, "epoch": epoch, "fit": asdict(config)})
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch
            with atomic.open_atomic(last_path, "wb") as fh:  # a kill mid-save keeps the previous last.pt whole
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "state": state}, fh)
            write_history(out_dir, state["history"])
    return FitResult(
        history=list(state["history"]),
        best_epoch=int(state["best_epoch"]),
        best_metrics=state["best_metrics"],
        checkpoint=best_path,
        stopped_early=stopped_early or state["bad_epochs"] >= config.patience and state["epoch"] < config.epochs,
    )

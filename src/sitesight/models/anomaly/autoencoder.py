"""Convolutional autoencoder trained on normal images only: reconstruction error as the anomaly map.

The encoder halves the resolution ``depth`` times (4x4 stride-2 convolutions, BatchNorm, LeakyReLU),
a 1x1 convolution squeezes the result into ``bottleneck`` channels at ``S / 2**depth`` pixels, and
the decoder mirrors it with transposed convolutions back to ``(3, S, S)`` in [0, 1] (sigmoid). The
per-pixel error is L2 (squared difference averaged over RGB) or SSIM-based (``(1 - SSIM) / 2``); the
image score is the mean of the top ``top_percent`` % pixel errors, so a small defect is not averaged
away by a large normal background.

Training is a plain loop (`train_one_epoch`, `evaluate`, `fit_autoencoder`) with a seed, a per-epoch
callback for progress bars and a history of losses.

Example:
    >>> import numpy as np
    >>> from sitesight.models.anomaly.autoencoder import AutoencoderConfig, fit_autoencoder
    >>> normals = [np.full((32, 32, 3), 128, np.uint8)] * 4
    >>> det = fit_autoencoder(normals, config=AutoencoderConfig(image_size=32, depth=2), epochs=1)
    >>> det.predict(normals).scores.shape
    (4,)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sitesight.errors import InputError
from sitesight.models.anomaly.maps import (
    AnomalyPrediction,
    l2_error_map,
    maps_to_images,
    ssim_map,
    to_batch,
    top_percent_mean,
)
from sitesight.models.train import resolve_device

__all__ = ["AutoencoderConfig", "ConvAutoencoder", "AutoencoderDetector", "fit_autoencoder", "train_one_epoch", "evaluate"]

ERROR_KINDS = ("l2", "ssim")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Constructor arguments and scoring settings (saved as the checkpoint's JSON config).

    Args:
        image_size: square input side ``S`` images are resized to; divisible by ``2**depth``.
        depth: number of stride-2 stages in the encoder (and the decoder).
        base_channels: channels of the first stage; doubled at each stage.
        bottleneck: channels of the code at ``S / 2**depth`` pixels (smaller = stronger bottleneck).
        error: per-pixel error, ``"l2"`` or ``"ssim"``.
        top_percent: image score = mean of the top ``top_percent`` % pixel errors.
        ssim_weight: weight of ``1 - SSIM`` in the training loss, next to MSE (0 = MSE only).
    """

    image_size: int = 64
    depth: int = 3
    base_channels: int = 32
    bottleneck: int = 16
    error: str = "l2"
    top_percent: float = 1.0
    ssim_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.error not in ERROR_KINDS:
            raise InputError(f"error must be one of {list(ERROR_KINDS)}, got {self.error!r}", where="error")
        if self.depth < 1 or self.image_size % (2**self.depth):
            raise InputError(f"image_size {self.image_size} must be divisible by 2**depth = {2 ** self.depth}", where="image_size")
        if not 0 < self.top_percent <= 100:
            raise InputError(f"top_percent must be in (0, 100], got {self.top_percent}", where="top_percent")
        if self.bottleneck < 1 or self.base_channels < 1:
            raise InputError("bottleneck and base_channels must be positive", where="bottleneck")


class ConvAutoencoder(nn.Module):
    """``(B, 3, S, S)`` in [0, 1] → reconstruction ``(B, 3, S, S)`` in [0, 1].

    Args:
        depth: stride-2 stages; the code is ``(B, bottleneck, S / 2**depth, S / 2**depth)``.
        base_channels: channels after the first stage, doubled per stage.
        bottleneck: code channels.
    """

    def __init__(self, depth: int = 3, base_channels: int = 32, bottleneck: int = 16) -> None:
        super().__init__()
        chans = [base_channels * 2**i for i in range(depth)]
        enc: list[nn.Module] = []
        c_in = 3
        for c in chans:
            enc += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        enc += [nn.Conv2d(c_in, bottleneck, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(bottleneck, chans[-1], 1), nn.BatchNorm2d(chans[-1]), nn.ReLU(inplace=True)]
        for i in reversed(range(depth)):
            c_out = chans[i - 1] if i > 0 else base_channels // 2 or 1
            dec += [nn.ConvTranspose2d(chans[i], c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i == 0:
                dec += [nn.Conv2d(c_out, 3, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _error_maps(config: AutoencoderConfig, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """``(B, S, S)`` per-pixel error of ``recon`` against ``x``."""
    if config.error == "ssim":
        return ((1.0 - ssim_map(x, recon)) / 2.0).clamp(0, 1).mean(dim=1)
    return l2_error_map(x, recon)


def _loss(config: AutoencoderConfig, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    loss = ((x - recon) ** 2).mean()
    if config.ssim_weight > 0:
        loss = loss + config.ssim_weight * (1.0 - ssim_map(x, recon)).mean()
    return loss


@dataclass(frozen=True)
class AutoencoderDetector:
    """A trained autoencoder and its settings; `predict` scores images.

    Attributes:
        model: the `ConvAutoencoder` (kept in eval mode).
        config: the `AutoencoderConfig` it was built and is scored with.
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss`` or None, ``seconds``).
    """

    model: ConvAutoencoder
    config: AutoencoderConfig
    history: tuple[dict[str, Any], ...] = field(default=())

    method = "ae"

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], *, batch_size: int = 32) -> AnomalyPrediction:
        """Score uint8 ``(H, W, 3)`` RGB images; maps come back at each image's own size."""
        self.model.eval()
        device = next(self.model.parameters()).device
        scores, maps = [], []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            x = to_batch(chunk, self.config.image_size, device)
            err = _error_maps(self.config, x, self.model(x))
            scores.append(top_percent_mean(err, self.config.top_percent).cpu().numpy())
            maps.extend(maps_to_images(err, chunk))
        s = np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)
        return AnomalyPrediction(scores=s, maps=tuple(maps))

    def config_dict(self) -> dict[str, Any]:
        """JSON-ready constructor arguments and settings."""
        return {"method": self.method, **asdict(self.config)}


def build_autoencoder(config: AutoencoderConfig) -> ConvAutoencoder:
    """A fresh `ConvAutoencoder` for ``config``."""
    return ConvAutoencoder(depth=config.depth, base_channels=config.base_channels, bottleneck=config.bottleneck)


def train_one_epoch(
    model: ConvAutoencoder,
    config: AutoencoderConfig,
    batches: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over ``batches`` ``(N, 3, S, S)`` in a seeded random order (no flips: parts have a
    fixed orientation); returns the mean training loss."""
    model.train()
    n = batches.shape[0]
    batch_size = max(1, min(n, batch_size))
    order = torch.randperm(n, generator=generator).to(batches.device)
    total, seen = 0.0, 0
    for start in range(0, n, batch_size):
        x = batches[order[start : start + batch_size]]
        if x.shape[0] < 2 and n >= 2:  # BatchNorm needs two samples: drop a trailing singleton this epoch
            continue
        loss = _loss(config, x, model(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * x.shape[0]
        seen += x.shape[0]
    return total / max(1, seen)


@torch.no_grad()
def evaluate(model: ConvAutoencoder, config: AutoencoderConfig, batches: torch.Tensor) -> float:
    """Mean loss of ``model`` on ``(N, 3, S, S)`` images, in eval mode."""
    model.eval()
    if batches.shape[0] == 0:
        return float("nan")
    return float(_loss(config, batches, model(batches)))


def fit_autoencoder(
    images: Sequence[np.ndarray],
    *,
    config: AutoencoderConfig = AutoencoderConfig(),
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "auto",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> AutoencoderDetector:
    """Train an autoencoder on normal images only.

    Args:
        images: normal uint8 ``(H, W, 3)`` RGB images (resized to ``config.image_size``).
        config: architecture and scoring settings.
        epochs: passes over the images (Adam, cosine learning-rate decay to 5 % of ``lr``).
        batch_size: images per step.
        lr: initial learning rate.
        seed: seeds weights, shuffling and the 10 % validation split (none below 10 images).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``…
        on_epoch: called after each epoch with that epoch's history row (for progress bars).

    Returns:
        `AutoencoderDetector` in eval mode, with the per-epoch history.
    """
    if len(images) < 2:
        raise InputError(f"need at least 2 normal images to train an autoencoder, got {len(images)}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = to_batch(images, config.image_size, dev)
    perm = torch.randperm(len(images), generator=generator).to(dev)
    n_val = len(images) // 10 if len(images) >= 10 else 0
    val, train = data[perm[:n_val]], data[perm[n_val:]]
    model = build_autoencoder(config).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=0.05 * lr)
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_one_epoch(model, config, train, optimizer, batch_size=batch_size, generator=generator)
        scheduler.step()
        val_loss = evaluate(model, config, val) if n_val else None
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    model.eval()
    return AutoencoderDetector(model=model, config=config, history=tuple(history))

"""What both anomaly detectors share: image batches in, per-pixel error maps and image scores out.

Frames: images come in as uint8 ``(H, W, 3)`` RGB arrays of any size; inside, a batch is a float32
``(B, 3, S, S)`` tensor resized to the model's square input side ``S``; anomaly maps go back out at
each image's own ``(H, W)``. Higher scores mean more anomalous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sitesight.errors import InputError

__all__ = [
    "AnomalyPrediction",
    "to_batch",
    "gaussian_blur",
    "ssim_map",
    "l2_error_map",
    "top_percent_mean",
    "maps_to_images",
]


@dataclass(frozen=True)
class AnomalyPrediction:
    """Scores and maps for a list of images.

    Attributes:
        scores: ``(N,)`` float32 image scores, higher = more anomalous.
        maps: N float32 ``(H_i, W_i)`` anomaly maps, each at its image's own resolution.
    """

    scores: np.ndarray
    maps: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def stacked_maps(self) -> np.ndarray:
        """``(N, H, W)`` float32; all images must share one size."""
        shapes = {m.shape for m in self.maps}
        if len(shapes) > 1:
            raise ValueError(f"maps differ in size: {sorted(shapes)}")
        return np.stack(self.maps) if self.maps else np.zeros((0, 0, 0), np.float32)


def to_batch(images: Sequence[np.ndarray], size: int, device: torch.device) -> torch.Tensor:
    """Stack uint8 RGB images into ``(B, 3, size, size)`` float32 in [0, 1] (bilinear, antialiased).

    Raises:
        InputError: an image that is not ``(H, W, 3)`` uint8, naming its index.
    """
    tensors = []
    for i, image in enumerate(images):
        a = np.asarray(image)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise InputError(f"image {i}: expected an (H, W, 3) uint8 RGB image, got shape {a.shape} dtype {a.dtype}")
        t = torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else a.copy()).to(device).permute(2, 0, 1)[None].float() / 255.0
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        tensors.append(t)
    if not tensors:
        return torch.zeros((0, 3, size, size), device=device)
    return torch.cat(tensors)


def _gaussian_kernel1d(sigma: float, like: torch.Tensor) -> torch.Tensor:
    # scipy's gaussian_filter radius: int(truncate * sigma + 0.5) with truncate = 4
    radius = max(1, int(4.0 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding (as scipy's ``gaussian_filter``
    with ``mode="reflect"``, ``truncate=4``); ``sigma <= 0`` returns ``x``."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel1d(sigma, x)
    r = k.numel() // 2
    c = x.shape[1]
    # scipy's "reflect" repeats the edge pixel (half-sample symmetric): torch's "replicate"+"reflect" mix
    # is not it, so pad by flipping explicitly.
    y = _pad_symmetric(x, r)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y


def _pad_symmetric(x: torch.Tensor, r: int) -> torch.Tensor:
    """Half-sample symmetric padding (``abcd`` → ``ba|abcd|dc``) by ``r`` on H and W; ``r`` may exceed the size."""
    h, w = x.shape[-2:]

    def index(n: int) -> torch.Tensor:
        i = torch.arange(-r, n + r, device=x.device)
        period = 2 * n
        i = torch.remainder(i, period)
        return torch.where(i >= n, period - 1 - i, i)

    return x[..., index(h)[:, None], index(w)[None, :]]


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004, Gaussian window) of ``(B, C, H, W)`` tensors → ``(B, C, H, W)``.

    Local means, variances and covariance use `gaussian_blur` with ``sigma``; constants
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = data_range``.
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = gaussian_blur(x, sigma), gaussian_blur(y, sigma)
    sxx = gaussian_blur(x * x, sigma) - mu_x**2
    syy = gaussian_blur(y * y, sigma) - mu_y**2
    sxy = gaussian_blur(x * y, sigma) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def l2_error_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over channels: ``(B, C, H, W)`` x2 → ``(B, H, W)``."""
    return ((x - y) ** 2).mean(dim=1)


def top_percent_mean(maps: torch.Tensor, percent: float) -> torch.Tensor:
    """Mean of the top ``percent`` % values of each map: ``(B, H, W)`` → ``(B,)`` (at least one pixel)."""
    flat = maps.flatten(1)
    k = max(1, int(round(flat.shape[1] * percent / 100.0)))
    return flat.topk(k, dim=1).values.mean(dim=1)


def maps_to_images(maps: torch.Tensor, images: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Resize ``(B, h, w)`` maps to each image's own ``(H, W)`` (bilinear) as float32 numpy arrays."""
    out = []
    for m, image in zip(maps, images, strict=True):
        h, w = np.asarray(image).shape[:2]
        if m.shape != (h, w):
            m = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        out.append(m.detach().float().cpu().numpy().astype(np.float32))
    return tuple(out)

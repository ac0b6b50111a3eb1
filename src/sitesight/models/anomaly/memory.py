"""Feature-memory anomaly detector (PatchCore, Roth et al. 2022): nearest normal patch as the score.

Fitting is one pass over normal images, no training loop:

1. patch features from two mid levels of a timm backbone (``layers``, default ResNet ``layer2`` and
   ``layer3``), each made locally aware by a 3x3 average pool, the deeper one upsampled to the finer
   grid, concatenated (and optionally averaged down to ``embed_dim`` channels);
2. a memory bank of all normal patches reduced by greedy coreset sampling (k-center: farthest point
   first, distances in a Gaussian random projection of ``projection_dim`` dimensions, as the paper
   does). Each step is one small matrix-vector product over every patch, so the loop runs on one
   torch thread (threads only synchronise over such small products: ~10x slower on a busy 2-core
   machine) and the projection has 64 dimensions (the projected patches of a few hundred images stay
   in the CPU cache: 300 tiles of 128 px, 77k patches, select 10 % in ~10 s instead of minutes);
   progress is reported per percent;
3. at test time every patch's Euclidean distance to its nearest memory patch (a matrix product in
   chunks, the closest few re-measured exactly) is its score; the patch map is upsampled to the input size and Gaussian-smoothed into the
   anomaly map, and the image score is the largest patch score.

Features: an ImageNet-pretrained backbone is what PatchCore's numbers assume (``pretrained=True``:
timm's weights from the Hugging Face cache, `pretrained_cached` says whether they are there), or a
local file (``weights=``, timm key layout). Without either the backbone is random-initialised: it
still separates local texture statistics on synthetic parts, but on real parts it is far weaker,
so `fit_memory` logs a loud warning and the detector records ``backbone_init="random"``.

Example:
    >>> import numpy as np
    >>> from sitesight.models.anomaly.memory import MemoryConfig, fit_memory
    >>> normals = [np.full((64, 64, 3), 128, np.uint8)] * 2
    >>> det = fit_memory(normals, config=MemoryConfig(image_size=64))
    >>> det.predict(normals).scores.shape
    (2,)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sitesight.errors import InputError
from sitesight.models.anomaly.maps import AnomalyPrediction, gaussian_blur, maps_to_images, to_batch
from sitesight.models.train import resolve_device

__all__ = ["MemoryConfig", "MemoryDetector", "fit_memory", "build_feature_extractor", "patch_features", "greedy_coreset",
           "nearest_distances", "pretrained_cached"]

log = logging.getLogger(__name__)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of a feature-memory detector (saved as the checkpoint's JSON config).

    Args:
        backbone: timm architecture name with ``forward_intermediates`` (ResNets, ConvNeXt, ViTs…).
        layers: feature levels (timm ``feature_info`` indices; ResNet 2 = ``layer2``, 3 = ``layer3``).
        image_size: square input side ``S`` images are resized to.
        embed_dim: channels after averaging the concatenated features down (0 = keep them all).
        coreset_ratio: fraction of normal patches kept in the memory bank (1 = all).
        max_memory: upper bound on memory-bank size (0 = no bound).
        projection_dim: dimensions of the random projection used only for coreset distances.
        smoothing_sigma: Gaussian sigma of the anomaly map, in input pixels (PatchCore uses 4).
    """

    backbone: str = "resnet18"
    layers: tuple[int, ...] = (2, 3)
    image_size: int = 128
    embed_dim: int = 0
    coreset_ratio: float = 0.1
    max_memory: int = 0
    projection_dim: int = 64
    smoothing_sigma: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if not self.layers:
            raise InputError("layers must name at least one feature level", where="layers")
        if not 0 < self.coreset_ratio <= 1:
            raise InputError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}", where="coreset_ratio")
        if self.image_size < 16:
            raise InputError(f"image_size must be at least 16, got {self.image_size}", where="image_size")


def pretrained_cached(backbone: str) -> bool:
    """Whether timm's pretrained weights of ``backbone`` lie in the local Hugging Face cache (no network)."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(backbone)
    except Exception:  # noqa: BLE001 - an unknown name or a broken install: not available
        return False
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return False
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in ("model.safetensors", "pytorch_model.bin"))


def build_feature_extractor(config: MemoryConfig, *, weights: Path | str | None = None, pretrained: bool = False) -> nn.Module:
    """The timm model of ``config.backbone`` (local weights, pretrained or random init), pruned after the last layer used.

    Raises:
        InputError: unknown backbone, one without ``forward_intermediates``, bad ``layers``, or
            pretrained weights that are neither cached nor downloadable.
    """
    from sitesight.models.backbone import build_backbone

    model = build_backbone(config.backbone, weights=weights, pretrained=pretrained).model
    if not hasattr(model, "forward_intermediates") or not hasattr(model, "prune_intermediate_layers"):
        raise InputError(f"backbone {config.backbone!r} has no forward_intermediates; pick a timm ResNet/ConvNeXt/ViT", where="backbone")
    n_levels = len(getattr(model, "feature_info", [])) or None
    if n_levels is not None and any(not 0 <= i < n_levels for i in config.layers):
        raise InputError(f"layers {list(config.layers)} outside 0..{n_levels - 1} for {config.backbone!r}", where="layers")
    model.prune_intermediate_layers(indices=list(config.layers), prune_head=True)
    return model.eval()


@torch.no_grad()
def patch_features(model: nn.Module, x: torch.Tensor, config: MemoryConfig) -> torch.Tensor:
    """Locally aware patch features: ``(B, 3, S, S)`` in [0, 1] → ``(B, h, w, D)`` float32.

    ``(h, w)`` is the grid of the first (finest) level in ``config.layers``.
    """
    x = (x - _MEAN.to(x.device)) / _STD.to(x.device)
    levels = model.forward_intermediates(x, indices=list(config.layers), intermediates_only=True)
    feats = []
    ref = levels[0].shape[-2:]
    for f in levels:
        f = F.avg_pool2d(f, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        if f.shape[-2:] != ref:
            f = F.interpolate(f, size=ref, mode="bilinear", align_corners=False)
        feats.append(f)
    out = torch.cat(feats, dim=1).permute(0, 2, 3, 1)  # (B, h, w, C)
    if config.embed_dim and out.shape[-1] > config.embed_dim:
        b, h, w, c = out.shape
        out = F.adaptive_avg_pool1d(out.reshape(-1, 1, c), config.embed_dim).reshape(b, h, w, config.embed_dim)
    return out.contiguous().float()


def greedy_coreset(
    features: torch.Tensor,
    n_select: int,
    *,
    projection_dim: int = 64,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Greedy k-center coreset: indices ``(n_select,)`` int64 into ``features`` ``(N, D)``.

    Starts from a seeded random point and repeatedly adds the point farthest from everything chosen so
    far. Distances are measured after a Gaussian random projection to ``projection_dim`` dimensions
    when ``D`` is larger (Johnson-Lindenstrauss), as PatchCore does to keep this cheap. The loop runs
    on one torch thread (module notes); ``on_progress(selected, n_select)`` is called every percent.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _greedy(features, n_select, projection_dim=projection_dim, seed=seed, on_progress=on_progress)
    finally:
        torch.set_num_threads(threads)


def _greedy(
    features: torch.Tensor, n_select: int, *, projection_dim: int, seed: int, on_progress: Callable[[int, int], None] | None
) -> torch.Tensor:
    n = features.shape[0]
    n_select = int(min(max(n_select, 1), n))
    g = torch.Generator(device="cpu").manual_seed(seed)
    z = features.float()
    if projection_dim and z.shape[1] > projection_dim:
        proj = torch.randn(z.shape[1], projection_dim, generator=g) / math.sqrt(projection_dim)
        z = z @ proj.to(z.device)
    first = int(torch.randint(n, (1,), generator=g))
    chosen = torch.empty(n_select, dtype=torch.long)
    chosen[0] = first
    # Squared distances via |a|^2 + |b|^2 - 2ab: one matrix-vector product per step.
    sq = (z * z).sum(dim=1)
    min_d2 = (z - z[first]).pow(2).sum(dim=1)
    every = max(1, n_select // 100)
    for i in range(1, n_select):
        idx = int(torch.argmax(min_d2))
        chosen[i] = idx
        d2 = sq - 2.0 * (z @ z[idx]) + sq[idx]  # plain matmul: torch.addmv is ~10x slower on CPU here
        min_d2 = torch.minimum(min_d2, d2)
        if on_progress is not None and (i + 1) % every == 0:
            on_progress(i + 1, n_select)
    if on_progress is not None:
        on_progress(n_select, n_select)
    return chosen


def nearest_distances(queries: torch.Tensor, memory: torch.Tensor, *, chunk: int = 4096, candidates: int = 4) -> torch.Tensor:
    """Euclidean distance from each query ``(Q, D)`` to its nearest row of ``memory`` ``(M, D)`` → ``(Q,)``.

    Squared distances come from one matrix product per chunk of queries (``|q|^2 + |m|^2 - 2 q·m``,
    fast but prone to cancellation in float32); the ``candidates`` closest rows by that estimate are
    then measured exactly as ``|q - m|`` and the smallest is returned. At most ``chunk x M``
    distances exist at once.
    """
    out = torch.empty(queries.shape[0], dtype=torch.float32, device=queries.device)
    if queries.shape[0] == 0:
        return out
    k = max(1, min(candidates, memory.shape[0]))
    m_sq = (memory * memory).sum(dim=1)
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        d2 = torch.addmm(m_sq[None, :], q, memory.T, alpha=-2.0)  # |q|^2 is constant per row: not needed to rank
        idx = d2.topk(k, dim=1, largest=False).indices  # (q, k)
        exact = (q[:, None, :] - memory[idx]).norm(dim=2)  # (q, k, D) -> (q, k)
        out[start : start + q.shape[0]] = exact.amin(dim=1)
    return out


@dataclass(frozen=True)
class MemoryDetector:
    """A fitted feature-memory detector.

    Attributes:
        model: the pruned timm feature extractor (eval mode).
        memory: ``(M, D)`` float32 memory bank of normal patch features.
        config: its `MemoryConfig`.
    """

    model: nn.Module
    memory: torch.Tensor
    config: MemoryConfig
    init: str = "random"

    method = "memory"

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray], *, batch_size: int = 16) -> AnomalyPrediction:
        """Score uint8 ``(H, W, 3)`` RGB images; maps come back at each image's own size."""
        device = self.memory.device
        s = self.config.image_size
        scores, maps = [], []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            feats = patch_features(self.model, to_batch(chunk, s, device), self.config)
            b, h, w, d = feats.shape
            patch = nearest_distances(feats.reshape(-1, d), self.memory).reshape(b, 1, h, w)
            scores.append(patch.flatten(1).amax(dim=1).cpu().numpy())
            full = F.interpolate(patch, size=(s, s), mode="bilinear", align_corners=False)
            full = gaussian_blur(full, self.config.smoothing_sigma)[:, 0]
            maps.extend(maps_to_images(full, chunk))
        out = np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)
        return AnomalyPrediction(scores=out, maps=tuple(maps))

    def config_dict(self) -> dict[str, Any]:
        """JSON-ready settings, with the memory-bank shape."""
        d = asdict(self.config)
        d["layers"] = list(self.config.layers)
        return {"method": self.method, **d, "memory_shape": list(self.memory.shape), "backbone_init": self.init}


def fit_memory(
    images: Sequence[np.ndarray],
    *,
    config: MemoryConfig = MemoryConfig(),
    weights: Path | str | None = None,
    pretrained: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    on_batch: Callable[[int], None] | None = None,
    on_coreset: Callable[[int, int], None] | None = None,
) -> MemoryDetector:
    """Build the memory bank from normal images in one pass.

    Args:
        images: normal uint8 ``(H, W, 3)`` RGB images (resized to ``config.image_size``).
        config: backbone, levels and sampling settings.
        weights: local weights file for the backbone (timm key layout); wins over ``pretrained``.
        pretrained: timm's pretrained weights (Hugging Face cache, or downloaded); with neither,
            random init (seeded by ``seed``) and a loud warning.
        seed: seeds the random initialisation, the projection and the coreset's first point.
        batch_size: images per forward pass.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``…
        on_batch: called with the number of images just processed (for progress bars).
        on_coreset: called with ``(selected, to select)`` while the coreset is chosen.

    Returns:
        `MemoryDetector` with ``max(1, round(coreset_ratio * patches))`` memory rows (capped by
        ``max_memory``).
    """
    if len(images) < 1:
        raise InputError("need at least one normal image to build a memory bank")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    from sitesight.models.backbone import describe_init

    init = describe_init(config.backbone, weights=weights, pretrained=pretrained)
    if init == "random":
        log.warning("feature memory on RANDOM features: backbone %r has no pretrained weights here and no --weights file; "
                    "on real parts expect far lower accuracy than PatchCore's ImageNet features give "
                    "(recorded as backbone_init='random')", config.backbone)
    model = build_feature_extractor(config, weights=weights, pretrained=pretrained).to(dev)
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        feats = patch_features(model, to_batch(chunk, config.image_size, dev), config)
        chunks.append(feats.reshape(-1, feats.shape[-1]))
        if on_batch is not None:
            on_batch(len(chunk))
    bank = torch.cat(chunks)
    n_keep = max(1, int(round(config.coreset_ratio * bank.shape[0])))
    if config.max_memory:
        n_keep = min(n_keep, config.max_memory)
    if n_keep < bank.shape[0]:
        bank = bank[greedy_coreset(bank, n_keep, projection_dim=config.projection_dim, seed=seed, on_progress=on_coreset).to(dev)]
    return MemoryDetector(model=model, memory=bank.contiguous(), config=config, init=init)

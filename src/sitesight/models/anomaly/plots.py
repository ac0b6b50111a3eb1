"""Pictures for the report: anomaly-map overlays and score histograms (matplotlib, Agg; no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sitesight import atomic

__all__ = ["overlay_heatmap", "plot_heatmaps", "plot_score_histogram"]


def overlay_heatmap(image: np.ndarray, anomaly_map: np.ndarray, *, vmin: float, vmax: float, alpha: float = 0.5) -> np.ndarray:
    """Blend a jet-coloured anomaly map over an image.

    Args:
        image: uint8 ``(H, W, 3)`` RGB.
        anomaly_map: float ``(H, W)`` at the image's resolution.
        vmin, vmax: map values shown as the coldest / hottest colour (shared across images so that
            colours compare).
        alpha: opacity of the map where it is hottest (cold areas fade out).

    Returns:
        uint8 ``(H, W, 3)`` RGB.
    """
    from matplotlib import colormaps

    a = np.clip((np.asarray(anomaly_map, np.float64) - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    colour = colormaps["jet"](a)[..., :3] * 255
    weight = (alpha * (0.25 + 0.75 * a))[..., None]
    return np.clip(image * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)


def plot_heatmaps(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    path: Path | str,
    *,
    titles: Sequence[str],
    masks: Sequence[np.ndarray | None] | None = None,
    vmax: float | None = None,
) -> Path:
    """One PNG with a row per image: the image (defect mask outlined in green when given) and the overlay.

    ``vmax`` (default: the 99.5th percentile over all maps) fixes the hottest colour for every row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("plot_heatmaps: no images")
    flat = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps])
    lo = float(np.percentile(flat, 1))
    hi = float(np.percentile(flat, 99.5)) if vmax is None else float(vmax)
    fig, axes = plt.subplots(n, 2, figsize=(4.4, 2.2 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        if masks is not None and masks[i] is not None and np.any(masks[i]):
            axes[i, 0].contour(np.asarray(masks[i], float), levels=[0.5], colors="lime", linewidths=0.8)
        axes[i, 1].imshow(overlay_heatmap(images[i], maps[i], vmin=lo, vmax=hi))
        axes[i, 0].set_title(titles[i], fontsize=7, loc="left")
        for ax in axes[i]:
            ax.set_axis_off()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out


def plot_score_histogram(
    scores: np.ndarray,
    labels: np.ndarray | None,
    path: Path | str,
    *,
    thresholds: Mapping[str, float] | None = None,
    title: str = "anomaly scores",
) -> Path:
    """Histogram of image scores, normal and anomalous apart when labels are known, thresholds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.asarray(scores, np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(s.min(), s.max(), 31) if s.size and s.max() > s.min() else 30
    if labels is None:
        ax.hist(s, bins=bins, color="tab:gray", alpha=0.8, label=f"unlabelled ({s.size})")
    else:
        y = np.asarray(labels, bool)
        ax.hist(s[~y], bins=bins, color="tab:blue", alpha=0.6, label=f"normal ({int((~y).sum())})")
        ax.hist(s[y], bins=bins, color="tab:red", alpha=0.6, label=f"anomalous ({int(y.sum())})")
    styles = ("--", ":", "-.", "-")
    for i, (name, t) in enumerate((thresholds or {}).items()):
        if np.isfinite(t):
            ax.axvline(t, color="black", linestyle=styles[i % len(styles)], linewidth=1, label=f"{name}: {t:.4g}")
    ax.set_xlabel("image score (higher = more anomalous)")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out

"""Plots for the report as PNG data URIs, drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects on a `FigureCanvasAgg`, so no global
backend is switched and nothing is drawn at import time (matplotlib is imported inside the
functions). Each function takes plain numbers and returns ``data:image/png;base64,...``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_heatmap", "training_curves", "pr_curves", "f1_vs_conf", "prf_vs_conf", "score_histogram", "bar_chart", "forest"]

DPI = 90


def _figure(w: float = 5.2, h: float = 3.4) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[str], *, xlabels: Sequence[str] | None = None, title: str = "") -> str:
    """``(R, C)`` count matrix as a heatmap with the count in every cell; rows = true, columns = predicted."""
    m = np.asarray(matrix, np.int64)
    xl = list(xlabels) if xlabels is not None else list(labels)
    side = max(3.2, 0.55 * max(m.shape) + 1.8)
    fig = _figure(side + 0.8, side)
    ax = fig.add_subplot()
    row_sum = m.sum(axis=1, keepdims=True)
    shade = np.divide(m, row_sum, out=np.zeros(m.shape), where=row_sum > 0)  # colour by row fraction
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=9, color="white" if shade[i, j] > 0.55 else "black")
    ax.set_xticks(range(m.shape[1]), xl, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), list(labels), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    return _uri(fig)


def training_curves(history: Sequence[Mapping[str, Any]]) -> str:
    """Losses (left axis) and validation metrics in [0, 1] (right axis) per epoch."""
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
    keys = list(dict.fromkeys(k for r in history for k in r))
    right = ax.twinx()
    colour = 0
    for k in keys:
        values = [r.get(k) for r in history]
        if k in ("epoch", "seconds", "lr", "backbone_frozen") or not all(isinstance(v, (int, float)) or v is None for v in values):
            continue
        y = [np.nan if v is None else float(v) for v in values]
        target, style = (ax, "-") if "loss" in k else (right, "--")
        target.plot(epochs, y, style, marker="o", markersize=3, label=k, color=f"C{colour % 10}")
        colour += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    right.set_ylabel("validation metric")
    right.set_ylim(0, 1.02)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="center right")
    return _uri(fig)


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "precision–recall") -> str:
    """name → ``(recall, precision)`` arrays, one line each."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, marker=".", markersize=3, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _uri(fig)


def f1_vs_conf(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "F1 vs confidence threshold") -> str:
    """name → ``(conf, f1)`` arrays, one line each; the best point of each line is marked."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, (conf, f1) in curves.items():
        line = ax.plot(conf, f1, label=name)[0]
        if len(f1):
            i = int(np.argmax(f1))
            ax.plot([conf[i]], [f1[i]], "o", color=line.get_color())
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _uri(fig)


def score_histogram(groups: Mapping[str, np.ndarray], *, thresholds: Mapping[str, float] | None = None, title: str = "") -> str:
    """Overlaid histograms of scores per group, with vertical lines at named thresholds."""
    fig = _figure()
    ax = fig.add_subplot()
    values = [np.asarray(v, np.float64) for v in groups.values() if len(v)]
    if values:
        allv = np.concatenate(values)
        bins = np.linspace(allv.min(), allv.max() if allv.max() > allv.min() else allv.min() + 1, 31)
        for name, v in groups.items():
            if len(v):
                ax.hist(np.asarray(v, np.float64), bins=bins, alpha=0.55, label=f"{name} ({len(v)})")
    for i, (name, t) in enumerate((thresholds or {}).items()):
        ax.axvline(float(t), color=f"C{i + 3}", linestyle="--", label=f"{name} = {float(t):.3g}")
    ax.set_xlabel("score")
    ax.set_ylabel("count")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _uri(fig)


def bar_chart(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str = "", ylabel: str = "") -> str:
    """Grouped bars: one group per label, one bar per series."""
    fig = _figure()
    ax = fig.add_subplot()
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (n - 1) / 2) * width, [float(v) for v in values], width, label=name)
    ax.set_xticks(x, list(labels), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _uri(fig)


def prf_vs_conf(conf: np.ndarray, precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, *, chosen: float | None = None,
                title: str = "precision, recall and F1 vs confidence") -> str:
    """Three lines over the confidence threshold (as Ultralytics' P/R/F1 curves), the chosen threshold dashed."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, y in (("precision", precision), ("recall", recall), ("F1", f1)):
        ax.plot(conf, y, label=name)
    if chosen is not None:
        ax.axvline(float(chosen), color="k", linestyle="--", linewidth=1, label=f"operating point {float(chosen):.2f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _uri(fig)


def forest(rows: Sequence[tuple[str, float, float, float]], *, title: str = "B − A with 95 % intervals") -> str:
    """``(label, delta, lo, hi)`` rows as points with horizontal interval bars and a line at zero
    (green: interval above 0, red: below, grey: includes 0)."""
    fig = _figure(5.8, max(1.6, 0.32 * len(rows) + 0.9))
    ax = fig.add_subplot()
    for i, (_, d, lo, hi) in enumerate(rows):
        colour = "#1e8449" if lo > 0 else "#c0392b" if hi < 0 else "#7f8c8d"
        ax.plot([lo, hi], [i, i], color=colour, linewidth=2)
        ax.plot([d], [i], "o", color=colour)
    ax.axvline(0, color="k", linewidth=1)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("B − A")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _uri(fig)

"""Report section for anomaly runs: score histograms, thresholds side by side, heatmaps.

Input (see `sitesight.report.runs`): the run's ``scores`` CSV (``image``, ``label``, ``score``,
optional ``heatmap`` file per row: ``.npy`` float map or grey PNG) and ``config.thresholds``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.anomaly import anomaly_metrics
from sitesight.evaluation.inputs import ANOMALOUS, NORMAL
from sitesight.report import plots
from sitesight.report.crops import FrameCache, draw_thumbnail, heatmap_overlay
from sitesight.report.runs import ReportRun

__all__ = ["read_table", "parse_number", "load_anomaly", "anomaly_section"]


def read_table(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """CSV rows as dicts; InputError naming the line when a required column or field is missing."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for name in required:
                if name not in header:
                    raise InputError(f"missing column {name!r}; columns are {header}", path, "line 1")
            rows = []
            for line, r in enumerate(reader, start=2):
                if None in r or any(r.get(h) is None for h in header):
                    raise InputError(f"expected {len(header)} fields", path, f"line {line}")
                rows.append({k: (v or "").strip() for k, v in r.items()})
            return rows
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path) from None


def parse_number(value: str, path: Path, line: int, column: str = "score") -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(f"column {column!r}: not a number: {value!r}", path, f"line {line}") from None


def load_anomaly(run: ReportRun) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
    """``(rows, labels (N,) bool True = anomalous, scores (N,) float64)`` of the run's scores CSV."""
    path = run.artefact("scores")
    assert path is not None
    rows = read_table(path, ("label", "score"))
    labels = np.zeros(len(rows), bool)
    scores = np.zeros(len(rows))
    for i, r in enumerate(rows):
        v = r["label"].lower()
        if v not in ANOMALOUS and v not in NORMAL:
            raise InputError(f"label {r['label']!r}: expected normal or anomalous", path, f"line {i + 2}")
        labels[i] = v in ANOMALOUS
        scores[i] = parse_number(r["score"], path, i + 2)
    return rows, labels, scores


def _heatmap(path: Path) -> np.ndarray | None:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float32).squeeze()
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("L"), np.float32)
    except (OSError, ValueError):
        return None


def anomaly_section(run: ReportRun, *, top_k: int = 8, cache: FrameCache | None = None) -> dict[str, Any]:
    """Metrics at every named threshold (plus the best-F1 one), histograms, and the top-scored images."""
    cache = cache or FrameCache()
    rows, labels, scores = load_anomaly(run)
    given = run.config.get("thresholds", {})
    thresholds = {str(k): float(v) for k, v in given.items()} if isinstance(given, dict) else {}
    results = []
    if labels.any() and (~labels).any():
        best = anomaly_metrics(labels, scores)
        thresholds = {**thresholds, "best F1 (on these labels)": best.threshold}
    for name, t in thresholds.items():
        results.append({"name": name, **anomaly_metrics(labels, scores, threshold=t).to_dict()})
    base = Path(str(run.artefact("scores"))).parent
    order = np.argsort(-scores, kind="stable")[:top_k]
    cards = []
    for i in order:
        r = rows[int(i)]
        image = Path(r.get("image", ""))
        image = image if image.is_absolute() else base / image
        frame = cache.get(image) if r.get("image") else None
        if frame is None:
            continue
        hm = None
        if r.get("heatmap"):
            hp = Path(r["heatmap"])
            hm = _heatmap(hp if hp.is_absolute() else base / hp)
        cards.append({"src": heatmap_overlay(frame, hm) if hm is not None else draw_thumbnail(frame, side=320),
                      "where": image.name, "score": float(scores[i]), "label": "anomalous" if labels[i] else "normal",
                      "heatmap": hm is not None})
    hist = plots.score_histogram({"normal": scores[~labels], "anomalous": scores[labels]}, thresholds=thresholds,
                                 title="image scores by true label")
    return {"kind": "anomaly", "name": run.name, "path": str(run.path), "n": len(rows), "n_anomalous": int(labels.sum()),
            "thresholds": results, "hist_png": hist, "top": cards,
            "config_json": json.dumps(run.config, indent=1, default=str) if run.config else ""}

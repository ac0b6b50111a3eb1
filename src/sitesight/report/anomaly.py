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
from sitesight.report.headline import anomaly_headline, init_warnings
from sitesight.report.runs import ReportRun, resolve_listed_path

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
    """``(rows, labels (N,) int8: 1 anomalous, 0 normal, -1 unlabelled, scores (N,) float64)``.

    The image column is ``image`` or ``path`` (as `sitesight predict anomaly` writes it).
    """
    path = run.artefact("scores")
    assert path is not None
    rows = read_table(path, ("label", "score"))
    labels = np.full(len(rows), -1, np.int8)
    scores = np.zeros(len(rows))
    for i, r in enumerate(rows):
        v = r["label"].lower()
        if v and v not in ANOMALOUS and v not in NORMAL:
            raise InputError(f"label {r['label']!r}: expected normal or anomalous", path, f"line {i + 2}")
        labels[i] = -1 if not v else int(v in ANOMALOUS)
        scores[i] = parse_number(r["score"], path, i + 2)
        r.setdefault("image", r.get("path", ""))
    return rows, labels, scores


def _thresholds(run: ReportRun) -> dict[str, float]:
    """Named thresholds from ``config.thresholds`` and from the run's ``summary.json``."""
    out: dict[str, float] = {}
    given = run.config.get("thresholds", {})
    if isinstance(given, dict):
        out.update({str(k): float(v) for k, v in given.items() if isinstance(v, (int, float))})
    summary_path = run.artefact("summary")
    if summary_path is not None:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if isinstance(summary, dict):
            if isinstance(summary.get("threshold"), (int, float)):
                out[f"operating ({summary.get('threshold_source') or 'stored'})"] = float(summary["threshold"])
            for row in summary.get("thresholds") or []:
                if isinstance(row, dict) and isinstance(row.get("threshold"), (int, float)) and "labels" not in str(row.get("source", "")):
                    out[str(row.get("name"))] = float(row["threshold"])
    return out


def _picture(path: Path | None, width: int = 1000) -> str | None:
    """A PNG the run drew itself (e.g. ``heatmaps.png``), downscaled and re-encoded as JPEG."""
    if path is None or not path.is_file():
        return None
    from PIL import Image

    from sitesight.report.crops import jpeg_data_uri

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.width > width:
                im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)
            return jpeg_data_uri(im, quality=80)
    except OSError:
        return None


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
    thresholds = _thresholds(run)
    known = labels >= 0
    y, s = labels[known] == 1, scores[known]
    results = []
    if y.any() and (~y).any():
        best = anomaly_metrics(y, s)
        tuned = "best F1 (tuned on test labels)"
        thresholds = {**thresholds, tuned: best.threshold}
        for name, t in thresholds.items():
            m = anomaly_metrics(y, s, threshold=t).to_dict()
            results.append({"name": name, **m, "false_alarm_rate": m["fp"] / (m["fp"] + m["tn"]) if m["fp"] + m["tn"] else None,
                            "tuned_on_test_labels": name == tuned})
    base = Path(str(run.artefact("scores"))).parent
    order = np.argsort(-scores, kind="stable")[:top_k]
    cards = []
    for i in order:
        r = rows[int(i)]
        image = resolve_listed_path(r.get("image", ""), base)
        frame = cache.get(image) if r.get("image") else None
        if frame is None:
            continue
        hm = None
        if r.get("heatmap"):
            hm = _heatmap(resolve_listed_path(r["heatmap"], base))
        cards.append({"src": heatmap_overlay(frame, hm) if hm is not None else draw_thumbnail(frame, side=320),
                      "where": image.name, "score": float(scores[i]), "label": ("normal", "anomalous", "unlabelled")[int(labels[i])],
                      "heatmap": hm is not None})
    groups = {"normal": scores[labels == 0], "anomalous": scores[labels == 1], "unlabelled": scores[labels < 0]}
    hist = plots.score_histogram({k: v for k, v in groups.items() if len(v)}, thresholds=thresholds, title="image scores by true label")
    given = _thresholds(run)
    op_name = next(iter(given), None)
    summary = run.json_artefact("summary")
    headline = anomaly_headline(run.name, labels, scores, given.get(op_name) if op_name else None, op_name or "",
                                warnings=init_warnings(run.config, summary))
    return {"kind": "anomaly", "name": run.name, "headline": headline,
            "pixel_auroc": summary.get("pixel_auroc") if isinstance(summary.get("pixel_auroc"), (int, float)) else None,
            "false_alarms": [{"set": k, **v} for k, v in (summary.get("false_alarms") or {}).items() if isinstance(v, dict)], "path": str(run.path), "n": len(rows), "n_anomalous": int(np.sum(labels == 1)),
            "n_unlabelled": int(np.sum(labels < 0)), "thresholds": results, "hist_png": hist, "top": cards,
            "heatmaps_png": _picture(run.artefact("heatmaps")),
            "config_json": json.dumps(run.config, indent=1, default=str) if run.config else ""}

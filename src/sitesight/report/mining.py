"""Report section for mining runs: the ranking table and a mosaic of the hardest images.

Input (see `sitesight.report.runs`): the run's ``ranking`` CSV (``image``, ``score`` = hardness,
higher first; further columns are shown as they are).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.report import plots
from sitesight.report.anomaly import parse_number, read_table
from sitesight.report.crops import FrameCache, draw_thumbnail
from sitesight.report.runs import ReportRun, resolve_listed_path

__all__ = ["mining_section"]


def mining_section(run: ReportRun, *, top_k: int = 24, cache: FrameCache | None = None) -> dict[str, Any]:
    """Ranking table (top rows, highest score first) and a mosaic of the top ``top_k`` images."""
    cache = cache or FrameCache()
    path = run.artefact("ranking")
    assert path is not None
    rows = read_table(path, ("image", "score"))
    scores = np.array([parse_number(r["score"], path, i + 2) for i, r in enumerate(rows)])
    order = np.argsort(-scores, kind="stable")
    columns = list(rows[0]) if rows else ["image", "score"]
    mosaic = []
    for i in order[:top_k]:
        image = Path(rows[int(i)]["image"])
        frame = cache.get(resolve_listed_path(str(image), path.parent))
        if frame is not None:
            mosaic.append({"src": draw_thumbnail(frame, side=240), "where": image.name, "score": float(scores[i]), "rank": len(mosaic) + 1})
    headline = {"model": run.name, "data": [f"{len(rows):,} ranked images"], "operating": "hardness: the models' disagreement (higher = harder)",
                "metrics": [], "missed": None, "notes": []}
    return {"kind": "mining", "name": run.name, "headline": headline, "path": str(run.path), "n": len(rows), "columns": columns,
            "rows": [rows[int(i)] for i in order[:50]], "mosaic": mosaic,
            "hist_png": plots.score_histogram({"pool": scores}, title="hardness scores over the pool") if len(scores) else None,
            "config_json": json.dumps(run.config, indent=1, default=str) if run.config else ""}

"""The verdict of a paired comparison (`sitesight.compare.Comparison`) as a report section, and the
comparison page ``sitesight compare --html`` writes: the verdict first, then every metric with its
95 % interval (a forest plot and a table), what was held fixed, and the notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sitesight.compare.result import Comparison
from sitesight.report import plots

__all__ = ["verdict_section", "write_comparison_page"]


def _rows(estimates: Any) -> list[dict[str, Any]]:
    return [{**e.to_dict(), "sentence": e.sentence()} for e in estimates]


def verdict_section(cmp: Comparison) -> dict[str, Any]:
    """Plain values for the ``verdict`` template."""
    shown = [e for e in cmp.estimates if e.lo is not None][:24]
    forest = plots.forest([(e.metric, e.delta, e.lo, e.hi) for e in shown]) if shown else None
    others = {u: _rows(es) for u, es in cmp.by_unit.items() if u != cmp.unit}
    ops = cmp.settings.get("operating_points") or {}
    return {
        "kind": "verdict", "name": f"{cmp.a} → {cmp.b}", "a": cmp.a, "b": cmp.b, "run_kind": cmp.kind,
        "verdict": cmp.verdict, "sentence": cmp.sentence(), "data_line": cmp.data_line(), "primary": cmp.primary,
        "headline": cmp.headline.to_dict(), "unit": cmp.unit, "rows": _rows(cmp.estimates), "others": others,
        "operating_points": [{"model": k, **v} for k, v in ops.items()], "notes": list(cmp.notes), "forest_png": forest,
        "coverage": cmp.settings.get("gt_coverage"),
        "settings_json": json.dumps({k: v for k, v in cmp.settings.items() if k != "operating_points"}, indent=1, default=str),
    }


def write_comparison_page(cmp: Comparison, out: Path | str, *, title: str | None = None) -> Path:
    """One self-contained HTML page that leads with the verdict."""
    from sitesight.atomic import write_text
    from sitesight.report.html import render_report

    section = verdict_section(cmp)
    section["anchor"] = "s1"
    text = render_report([section], title=title or f"{cmp.a} → {cmp.b}: {cmp.verdict} ({cmp.primary})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, text)

"""The demo's report and comparison, run as a user runs the demo (a relative ``--out``): the report has no
"image not readable" entry (the anomaly section once doubled its path prefix), and the compare step gives
its verdict in the terminal, the JSON and the page. The detector and RoI-head training steps are left out
(minutes on a CPU); every step that writes images the report reads is in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

pytestmark = pytest.mark.slow


def test_demo_report_reads_every_image_and_compare_gives_a_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitesight.demo import STEPS, DemoContext

    monkeypatch.chdir(tmp_path)
    console = Console(record=True, width=200)
    ctx = DemoContext(out=Path("demo_out"), frames=12, seed=0, console=console)
    skip = ("step_detector", "step_roi_head", "step_curation", "step_scale")  # scale: tests/engines checks Ray == local
    names = [step.__name__ for _, step in STEPS]
    assert "step_compare" in names and names.index("step_compare") < names.index("step_report")
    for _, step in STEPS:
        if step.__name__ not in skip:
            step(ctx)
    html = (tmp_path / "demo_out" / "report.html").read_text(encoding="utf-8")
    assert "not readable" not in html
    assert 'data-kind="anomaly"' in html
    terminal = console.export_text()
    verdict = json.loads((tmp_path / "demo_out" / "compare" / "compare.json").read_text())["verdict"]
    assert verdict in ("better", "worse", "no detectable difference")
    assert f"verdict: {verdict}" in terminal
    page = (tmp_path / "demo_out" / "compare" / "compare.html").read_text(encoding="utf-8")
    assert f'data-verdict="{verdict}"' in page

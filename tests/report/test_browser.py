"""The report in a real browser: headless Chromium loads it without console errors, every section and
image is in the rendered DOM, and a screenshot is drawn. Skips cleanly without Chromium."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from sitesight.report import build_report

from .browser import chromium, console_errors, run_chromium
from .runs_in_code import anomaly_run, classification_run, detection_run, mining_run, write_frames
from .test_report import parse

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    frames = write_frames(root / "frames", 4)
    runs = [classification_run(root, frames, name="v9", n_boxes=30, skill=1.0),
            classification_run(root, frames, name="v10", n_boxes=30, skill=3.0),
            detection_run(root, frames), anomaly_run(root, frames), mining_run(root, frames)]
    return build_report(runs, root / "report.html")


def test_page_loads_with_every_section_and_image(report: Path) -> None:
    proc, _ = run_chromium(report, "--dump-dom", "--virtual-time-budget=2000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_errors(proc.stderr) == []
    dom = report.with_name("dom.html")
    dom.write_text(proc.stdout)
    page, source = parse(dom), parse(report)
    assert page.sections == source.sections and len(page.sections) == 6  # 5 runs + 1 comparison
    assert len(page.images) == len(source.images) > 20
    for src in page.images:  # every picture decodes to a non-empty image
        head, data = src.split(",", 1)
        assert head in ("data:image/jpeg;base64", "data:image/png;base64")
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            assert im.size[0] > 10 and im.size[1] > 10


def test_screenshot(report: Path) -> None:
    shot = report.with_name("shot.png")
    proc, _ = run_chromium(report, f"--screenshot={shot}", "--window-size=1280,2400")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        extrema = im.convert("L").getextrema()
    assert extrema[0] < 100 and extrema[1] > 200  # text and plots drawn, not a blank page


def test_2000_person_report_is_small_and_opens_fast(tmp_path: Path) -> None:
    frames = write_frames(tmp_path / "frames", 6, wh=(1920, 1080))
    run = classification_run(tmp_path, frames, n_boxes=2000, name="big")
    out = build_report([run], tmp_path / "big.html", audit_per_class=8)
    assert out.stat().st_size < 10e6
    page = parse(out)
    assert len(page.images) == 3 * (4 + 8) + 2  # samples + audit crops per class, confusion, curves
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body>x</body></html>")
    empty = min(run_chromium(blank, "--dump-dom")[1] for _ in range(2))
    proc, seconds = run_chromium(out, "--dump-dom")
    assert proc.returncode == 0
    assert seconds - empty < 2.0

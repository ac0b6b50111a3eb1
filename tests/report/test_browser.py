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


HARNESS = """<!DOCTYPE html><html><body><pre id="result">pending</pre><iframe id="page" src="%s" width="1280" height="900"></iframe>
<script>
function out(value) { document.getElementById("result").textContent = JSON.stringify(value); }
window.addEventListener("load", async function () {  // the page's load waits for the iframe's
  try {
    const frame = document.getElementById("page"), d = frame.contentDocument, w = frame.contentWindow;
    const r = {};
    const first = d.querySelector("section.run");
    const afterTitle = first.querySelector("h2").nextElementSibling;
    r.first_is_headline = afterTitle !== null && afterTitle.hasAttribute("data-headline");
    r.sections_with_headline_first = Array.from(d.querySelectorAll("section.run")).map(function (s) {
      const e = s.querySelector("h2").nextElementSibling; return e !== null && e.hasAttribute("data-headline"); });
    const g = d.querySelector("[data-gallery]");
    const cards = g.querySelectorAll(".gcard");
    r.cards = cards.length;
    r.shown_all = Number(g.getAttribute("data-shown"));
    const type = g.querySelector("select[data-filter=type]");
    type.value = type.options[type.options.length - 1].value;
    type.dispatchEvent(new w.Event("change"));
    r.type_value = type.value;
    r.shown_type = Number(g.getAttribute("data-shown"));
    r.hidden_type = g.querySelectorAll(".gcard[hidden]").length;
    type.value = ""; type.dispatchEvent(new w.Event("change"));
    const score = g.querySelector("input[data-filter=score]");
    score.value = "0.9"; score.dispatchEvent(new w.Event("input"));
    r.shown_score = Number(g.getAttribute("data-shown"));
    score.value = "0"; score.dispatchEvent(new w.Event("input"));
    const visible = Array.from(cards).filter(function (c) { return !c.hidden; });
    visible[0].focus();
    visible[0].dispatchEvent(new w.KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
    r.focus_moved = d.activeElement === visible[1];
    visible[1].dispatchEvent(new w.KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
    r.enlarged = visible[1].classList.contains("big");
    const imgs = Array.from(d.querySelectorAll("img"));
    r.images = imgs.length;
    // a load (not decode()): a pending image load holds Chromium's virtual time, so the dump waits for it
    const sizes = await Promise.all(imgs.map(function (img) {
      return new Promise(function (done) {
        const copy = new Image();
        copy.onload = function () { done(copy.naturalWidth); };
        copy.onerror = function () { done(0); };
        copy.src = img.src; }); }));
    r.broken = sizes.filter(function (s) { return s < 8; }).length;
    r.verdict = (d.querySelector("[data-verdict]") || {getAttribute: function () { return null; }}).getAttribute("data-verdict");
    out(r);
  } catch (e) { out({error: String(e)}); }
});
</script></body></html>"""


@pytest.fixture(scope="module")
def gallery_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    frames = write_frames(root / "frames", 6)
    runs = [detection_run(root, frames, name="v9", noise=0.12), detection_run(root, frames, name="v10", seed=1, noise=0.03, sweep=False)]
    return build_report(runs, root / "report.html")


def test_gallery_filters_keys_images_and_headline_in_chromium(gallery_report: Path) -> None:
    import json

    harness = gallery_report.with_name("harness.html")
    harness.write_text(HARNESS % gallery_report.name)
    proc, _ = run_chromium(harness, "--dump-dom", "--virtual-time-budget=30000", "--allow-file-access-from-files")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_errors(proc.stderr) == []
    text = proc.stdout[proc.stdout.index('id="result">') + len('id="result">'):]
    r = json.loads(text[: text.index("</pre>")].replace("&quot;", '"'))
    assert "error" not in r, r
    assert r["first_is_headline"] and all(r["sections_with_headline_first"])
    assert r["cards"] > 5 and r["shown_all"] == r["cards"]
    assert 0 < r["shown_type"] < r["cards"] and r["hidden_type"] == r["cards"] - r["shown_type"]  # a filter changes the count
    assert r["shown_score"] < r["cards"]
    assert r["focus_moved"] and r["enlarged"]
    assert r["images"] > 20 and r["broken"] == 0
    assert r["verdict"] in ("better", "worse", "no detectable difference")


def test_2000_person_detection_report_with_gallery_is_small_and_opens_fast(tmp_path: Path) -> None:
    """A detection run with 2,000 workers over 20 1080p frames (misses, false alarms, duplicates): the
    report with its error gallery stays within the budgets (≤ 10 MB, ≤ 2 s to open beyond an empty page)."""
    import numpy as np

    from sitesight import Detections
    from sitesight.dataset import Dataset, Sample
    from sitesight.formats.coco import write_coco, write_coco_results
    from sitesight.report import write_run_info

    frames = write_frames(tmp_path / "frames", 20, wh=(1920, 1080))
    rng = np.random.default_rng(0)
    samples, preds = [], []
    for i, p in enumerate(frames):
        xy = rng.uniform(0, [1850, 960], (100, 2))
        gt = np.c_[xy, xy + rng.uniform([12, 30], [60, 120], (100, 2))]
        samples.append(Sample(path=p, image_wh=(1920, 1080), gt=Detections(xyxy=gt, class_id=np.zeros(100, np.int64)), image_id=i + 1))
        keep = rng.random(100) > 0.2
        wh = np.tile(gt[keep, 2:] - gt[keep, :2], 2)
        fp = rng.uniform(0, 1800, (15, 2))
        xyxy = np.r_[gt[keep] + rng.normal(0, 0.1, wh.shape) * wh, np.c_[fp, fp + 40]]
        preds.append(Detections(xyxy=xyxy, score=rng.uniform(0.2, 1.0, len(xyxy)), class_id=np.zeros(len(xyxy), np.int64)))
    ds = Dataset(class_names=("person",), samples=tuple(samples))
    run = tmp_path / "big_det"
    run.mkdir()
    gt_path = write_coco(ds, run / "gt.json")  # inside the run folder (artefacts outside it are refused)
    res = write_coco_results(ds, preds, run / "results.json")
    write_run_info(run, kind="detection", artefacts={"gt": gt_path, "predictions": res})
    out = build_report([run], tmp_path / "big_det.html")
    assert out.stat().st_size < 10e6
    page = parse(out)
    assert len(page.images) > 100  # the gallery's crops
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body>x</body></html>")
    empty = min(run_chromium(blank, "--dump-dom")[1] for _ in range(2))
    proc, seconds = run_chromium(out, "--dump-dom")
    assert proc.returncode == 0 and console_errors(proc.stderr) == []
    assert seconds - empty < 2.0

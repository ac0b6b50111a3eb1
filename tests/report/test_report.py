"""Reports built from small runs made in code; numbers checked against scikit-learn, pycocotools-parity
evaluation and hand-made cases, never against the report's own output."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.evaluation.errors import error_breakdown
from sitesight.report import build_report, load_report_run
from sitesight.report.classification import classification_section, load_classification
from sitesight.report.error_examples import classify_errors

from .runs_in_code import (
    CLASSES,
    anomaly_run,
    classification_run,
    detection_dataset,
    detection_predictions,
    detection_run,
    mining_run,
    write_frames,
)


class _Page(HTMLParser):
    """Collects section ids/kinds, img srcs and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append((a.get("id") or "", a.get("data-kind") or ""))
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            v = a.get(key) or ""
            if v and not v.startswith(("data:", "#")):
                self.external.append(v)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def decoded_sizes(srcs: list[str]) -> list[int]:
    return [len(base64.b64decode(s.split(",", 1)[1])) for s in srcs]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    frames = write_frames(root / "frames", 6)
    return {
        "cls_a": classification_run(root, frames, name="v9", skill=1.0),
        "cls_b": classification_run(root, frames, name="v10", skill=3.0, run_json=True),
        "det_a": detection_run(root, frames, name="det_a"),
        "det_b": detection_run(root, frames, name="det_b", seed=1, noise=0.12, sweep=False),
        "anomaly": anomaly_run(root, frames),
        "mining": mining_run(root, frames),
        "root": root,
    }


def test_kinds_are_recognised(runs: dict[str, Path]) -> None:
    assert load_report_run(runs["cls_a"]).kind == "classification"  # from metrics.json + predictions.csv
    assert load_report_run(runs["cls_b"]).kind == "classification"  # from run.json
    assert load_report_run(runs["det_a"]).kind == "detection"
    assert load_report_run(runs["anomaly"]).kind == "anomaly"
    assert load_report_run(runs["mining"]).kind == "mining"
    with pytest.raises(InputError, match="cannot tell"):
        load_report_run(runs["root"] / "frames")
    with pytest.raises(InputError, match="run not found"):
        load_report_run(runs["root"] / "nope")


def test_classification_numbers_match_sklearn(runs: dict[str, Path]) -> None:
    from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_fscore_support

    run = load_report_run(runs["cls_a"])
    data = load_classification(run)
    section = classification_section(run, samples_per_class=2, audit_per_class=3)
    y, probs = data.y_true, data.probs
    pred = probs.argmax(axis=1)
    p, r, f1, support = precision_recall_fscore_support(y, pred, labels=range(3), zero_division=0)
    for k, row in enumerate(section["per_class"]):
        assert row["support"] == support[k]
        assert row["f1"] == pytest.approx(f1[k])
        assert row["ap"] == pytest.approx(average_precision_score(y == k, probs[:, k]))
    assert section["macro_all"]["f1"] == pytest.approx(f1.mean())
    assert section["accuracy"] == pytest.approx(np.mean(pred == y))
    # the audit: per true class, the wrong predictions in descending confidence, capped at 3
    for k, group in enumerate(section["audit"]):
        wrong = np.flatnonzero((y == k) & (pred != k))
        assert group["errors"] == wrong.size
        confs = [max(p for _, p in c["probs"]) for c in group["cards"]]
        assert confs == pytest.approx(np.sort(probs[wrong].max(axis=1))[::-1][:3])
        assert all(not c["correct"] and c["true"] == CLASSES[k] for c in group["cards"])
    assert confusion_matrix(y, pred).sum() == section["n"]
    assert all(c["src"].startswith("data:image/jpeg;base64,") for g in section["samples"] for c in g["cards"])


def test_box_errors_agree_with_error_breakdown(runs: dict[str, Path]) -> None:
    frames = sorted((runs["root"] / "frames").glob("*.jpg"))
    ds = detection_dataset(frames)
    gts = [s.gt for s in ds.samples]
    preds = detection_predictions(ds, seed=3, noise=0.15)
    for conf in (0.0, 0.5):
        errs = classify_errors(gts, preds, iou=0.5, conf=conf)
        ref = error_breakdown(gts, preds, iou=0.5, conf=conf, class_names=ds.class_names)
        counts = {t: sum(e.type == t for e in errs) for t in ("localisation", "class", "background", "both", "missed")}
        for t, n in counts.items():
            assert n == ref.counts[t], t
        dup = [e for e in errs if e.type.startswith("duplicate")]
        assert len(dup) == ref.counts["duplicate"]
        assert sum(e.type == "duplicate_border" for e in dup) == ref.duplicate_cross_slice


def test_box_errors_by_hand() -> None:
    gt = [Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]], class_id=[0, 0, 1])]
    pred = [Detections(
        xyxy=[[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 54, 60], [100, 100, 110, 110], [200, 200, 210, 210]],
        score=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], class_id=[0, 0, 0, 0, 0, 0],
        attributes={"source": [0, 0, 1, 0, 0, 0]},
    )]
    errs = {(e.type, e.pred, e.gt) for e in classify_errors(gt, pred)}
    # pred 1: same slice as the match → duplicate_same; pred 2: other slice → duplicate_border;
    # pred 3: IoU 0.4 with gt 1 → localisation; pred 4: right box, wrong class → class; pred 5: background.
    assert errs == {("duplicate_same", 1, 0), ("duplicate_border", 2, 0), ("localisation", 3, 1), ("class", 4, 2),
                    ("background", 5, None)}


def test_detection_section_uses_coco_parity_numbers(runs: dict[str, Path]) -> None:
    import json

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from sitesight.report.detection import detection_section

    run = load_report_run(runs["det_a"])
    section = detection_section(run)
    gt = COCO(str(run.artefact("gt")))
    dt = gt.loadRes(json.loads(run.artefact("predictions").read_text()))
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = dict(section["coco_stats"])
    assert stats["AP"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert stats["AP50"] == pytest.approx(ev.stats[1], abs=1e-9)
    assert section["merge_sweep"]["rows"][0]["best"] == 1  # best F1 first
    kinds = {g["type"]: g for g in section["examples"]}
    assert kinds["duplicate_border"]["count"] == section["errors"]["duplicate_cross_slice"]


def test_full_report_is_self_contained(runs: dict[str, Path], tmp_path: Path) -> None:
    out = build_report([runs[k] for k in ("cls_a", "cls_b", "det_a", "det_b", "anomaly", "mining")], tmp_path / "r.html")
    page = parse(out)
    kinds = [k for _, k in page.sections]
    assert kinds.count("classification") == 2 and kinds.count("detection") == 2
    assert "anomaly" in kinds and "mining" in kinds and kinds.count("comparison") == 2
    assert page.external == [] and page.scripts == 1  # the inline gallery script; nothing fetched
    assert page.images and all(s.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for s in page.images)
    assert min(decoded_sizes(page.images)) > 100
    text = out.read_text()
    assert "macro AP over 3 active classes" in text and "macro AP over all 3 classes" in text
    assert re.search(r"Mistake audit", text) and "Merge × gate sweep" in text and "Where they disagree" in text
    # both comparisons (classification, detection) lead with the paired bootstrap verdict
    for part in text.split('data-kind="comparison"')[1:]:
        assert part.index("data-verdict=") < part.index("Point metrics side by side")


def test_comparison_deltas_by_hand(runs: dict[str, Path]) -> None:
    from sitesight.report.comparison import comparison_section

    a, b = load_report_run(runs["cls_a"]), load_report_run(runs["cls_b"])
    section = comparison_section(a, b)
    ya, pa = load_classification(a).y_true, load_classification(a).probs.argmax(1)
    yb, pb = load_classification(b).y_true, load_classification(b).probs.argmax(1)
    acc = section["headline"][0]
    assert acc["a"] == pytest.approx(np.mean(ya == pa)) and acc["delta"] == pytest.approx(np.mean(yb == pb) - np.mean(ya == pa))
    assert section["disagree"] == int(np.sum(pa != pb))  # same boxes in both runs (same seed)
    with pytest.raises(InputError, match="cannot compare"):
        comparison_section(a, load_report_run(runs["det_a"]))


def test_bad_runs_are_skipped_and_listed(runs: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text('{"kind": "classification", "artefacts": {"predictions": "missing.csv"}}')
    out = build_report([runs["mining"], bad], tmp_path / "r.html")
    assert "missing.csv" in out.read_text()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scores.csv").write_text("image,label,score\na.jpg,normal,xx\n")
    with pytest.raises(InputError, match="line 2"):
        build_report([broken], tmp_path / "r2.html")


def test_cli_report(runs: dict[str, Path], tmp_path: Path) -> None:
    from sitesight.cli.main import main

    out = tmp_path / "cli.html"
    assert main(["report", str(runs["det_a"]), str(runs["det_b"]), "--out", str(out)]) == 0
    assert [k for _, k in parse(out).sections] == ["detection", "detection", "comparison"]
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 1


def test_paths_relative_to_where_the_command_ran_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sitesight predict anomaly demo/parts` writes ``demo/parts/...`` into ``demo/pred/scores.csv``: read against
    the CSV's folder that path was doubled (the demo report opened with 16 "image not readable" lines)."""
    monkeypatch.chdir(tmp_path)
    frames = [p.relative_to(tmp_path) for p in write_frames(tmp_path / "demo" / "parts", 4)]
    run = anomaly_run(tmp_path / "demo", frames, name="pred")
    assert (tmp_path / "demo" / "pred" / "scores.csv").read_text().splitlines()[1].startswith("demo/parts/")
    text = build_report([run], tmp_path / "r.html").read_text()
    assert "not readable" not in text
    assert len(parse(tmp_path / "r.html").images) >= 1 + 4  # histogram + the top-scored frames
    monkeypatch.chdir(tmp_path / "demo")  # built later from elsewhere: the CSV folder's ancestors still hold it
    assert "not readable" not in build_report([run], tmp_path / "r2.html").read_text()


def test_headline_first_and_operating_point_options(runs: dict[str, Path], tmp_path: Path) -> None:
    """The headline is the first thing of a detection section; --conf moves the operating point and says so,
    and the headline's numbers at that point equal the plain operating-point matcher's."""
    import json

    from sitesight.cli.main import main
    from sitesight.evaluation.detection import operating_point
    from sitesight.formats import read_dataset

    out = tmp_path / "conf.html"
    assert main(["report", str(runs["det_a"]), "--conf", "0.6", "--out", str(out)]) == 0
    text = out.read_text()
    section = text[text.index('data-kind="detection"'):]
    assert section.index("data-headline") < section.index("<h3>Dataset</h3>")
    assert "--conf 0.6" in section and "cameras: None" not in text and "camera unknown" in section
    run = load_report_run(runs["det_a"])
    ds = read_dataset(run.artefact("gt"))
    from sitesight.sliced.evaluate import scored
    from sitesight.sliced.spec import PostprocessSpec

    s = scored(ds, run.artefact("predictions"), spec=PostprocessSpec(conf=0.6))
    ref = operating_point(s.gts, s.preds, conf=0.6, class_names=s.class_names)
    assert f"{ref.precision:.3f}" in section and f"{ref.f1:.3f}" in section
    assert f"workers missed of {ref.tp + ref.fn}" in section
    assert json.dumps(ref.fn) in section


@pytest.mark.parametrize("init", ["random", "pretrained:resnet18"])
def test_headline_warns_when_the_backbone_started_from_random_weights(tmp_path: Path, init: str) -> None:
    import json

    frames = write_frames(tmp_path / "frames", 6)
    run = classification_run(tmp_path, frames, name="cls")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "backbone_init": init}))
    text = build_report([run], tmp_path / "r.html").read_text()
    section = text[text.index('data-kind="classification"'):]
    head = section[section.index("data-headline"):section.index('class="kpis"')]  # the headline, before its numbers
    assert ("data-warning" in head and "RANDOM weights" in head) == (init == "random")
    assert ("RANDOM weights" in text) == (init == "random")

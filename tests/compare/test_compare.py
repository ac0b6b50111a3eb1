"""`sitesight compare` and the library functions against independent references: pycocotools for AP,
scikit-learn for F1 / AUROC, hand-computed cases for the engine and the verdict rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sitesight import Detections
from sitesight.compare import compare_anomaly, compare_classifications, compare_detections, estimate, frames_needed
from sitesight.compare.bootstrap import group_sums, paired_bootstrap, resample_weights
from sitesight.compare.detection_table import detection_table
from sitesight.dataset import Dataset, Sample

from . import simulate as sim


def test_resample_weights_keep_each_camera_count() -> None:
    strata = np.array(["a"] * 7 + ["b"] * 3 + ["c"] * 10)
    for w in resample_weights(20, n_resamples=300, seed=0, strata=strata, chunk=128):
        assert w.shape[1] == 20 and np.all(w.sum(1) == 20)
        assert np.all(w[:, :7].sum(1) == 7) and np.all(w[:, 7:10].sum(1) == 3)
    # without strata, each unit is drawn 1 time on average (multinomial)
    w = np.concatenate(list(resample_weights(50, n_resamples=2000, seed=1)))
    assert abs(w.mean() - 1) < 1e-6 and 0.9 < w.var() < 1.1


def test_cluster_bootstrap_resamples_whole_cameras() -> None:
    """With groups, a resample is a multiset of cameras: the summed count is a sum of whole camera totals."""
    table = np.array([[1.0], [2.0], [10.0], [20.0], [100.0]])
    groups = np.array(["x", "x", "y", "y", "z"])
    sums, labels = group_sums(table, groups)
    assert labels.tolist() == ["x", "y", "z"] and sums[:, 0].tolist() == [3.0, 30.0, 100.0]
    _, _, d = paired_bootstrap(table, 2 * table, lambda s: s, lambda s: s, n_resamples=400, seed=0, groups=groups)
    # delta = total of B − A = total of A = 3a + 30b + 100c with a + b + c = 3 cameras drawn
    totals = {3 * a + 30 * b + 100 * c for a in range(4) for b in range(4) for c in range(4) if a + b + c == 3}
    assert set(d[:, 0].tolist()) <= totals and len(set(d[:, 0].tolist())) > 3


def test_verdict_rules_by_hand() -> None:
    e = estimate("AP", 0.5, 0.6, np.linspace(0.02, 0.18, 1001), n_frames=100)
    assert e.verdict == "better" and e.lo == pytest.approx(0.024) and e.hi == pytest.approx(0.176) and e.more_frames == 0
    e = estimate("AP", 0.6, 0.5, -np.linspace(0.02, 0.18, 1001), n_frames=100)
    assert e.verdict == "worse"
    e = estimate("AP", 0.5, 0.52, np.linspace(-0.03, 0.07, 1001), n_frames=100)
    assert e.verdict == "no detectable difference"
    # 80 % power: n * ((1.96 + 0.84) * se / delta)^2
    assert e.frames_needed == frames_needed(0.02, e.se, 100) == int(np.ceil(100 * ((1.959964 + 0.841621) * e.se / 0.02) ** 2))
    assert e.more_frames == e.frames_needed - 100
    # the exact estimate differs from the table's: the interval moves by the gap
    moved = estimate("AP", 0.5, 0.6, np.linspace(0.02, 0.18, 1001), n_frames=100, table_delta=0.09)
    assert moved.lo == pytest.approx(0.034) and moved.hi == pytest.approx(0.186)
    assert estimate("AP", float("nan"), 0.5, np.zeros(100), n_frames=10).verdict == "undefined"


def test_binned_ap_equals_pycocotools() -> None:
    """With one bin per distinct score the table's AP is pycocotools' AP (per size bucket too)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    fr = sim.frames(rng, 60)
    preds = sim.detect(rng, fr["gts"], fr["difficulty"], skill=1.0)
    table = detection_table(fr["gts"], preds, class_names=("person",), conf=0.5, n_bins=10**6)
    values = dict(zip(table.metric_names(), table.statistic(table.counts.sum(0, keepdims=True, dtype=np.float64))[0], strict=True))
    images = [{"id": i + 1, "width": 1920, "height": 1080} for i in range(60)]
    anns, res = [], []
    for i, (g, p) in enumerate(zip(fr["gts"], preds, strict=True)):
        for b in g.xyxy.tolist():
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                         "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0})
        for b, s in zip(p.xyxy.tolist(), p.score.tolist(), strict=True):
            res.append({"image_id": i + 1, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(res), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for name, k in (("AP", 0), ("AP50", 1), ("AP[small]", 3), ("AP[medium]", 4), ("AP[large]", 5)):
        assert values[name] == pytest.approx(ev.stats[k], abs=1e-9), name
    assert table.exact[0] == pytest.approx(ev.stats[0], abs=1e-12)


def test_detection_f1_per_frame_counts_equal_a_plain_matcher() -> None:
    from sitesight.evaluation.detection import operating_point

    rng = np.random.default_rng(1)
    fr = sim.frames(rng, 40)
    preds = sim.detect(rng, fr["gts"], fr["difficulty"], skill=0.5)
    table = detection_table(fr["gts"], preds, class_names=("person",), conf=0.6)
    blk = table.blocks(table.counts.astype(np.float64))
    for f in (0, 7, 21):
        op = operating_point([fr["gts"][f]], [preds[f]], conf=0.6, class_names=("person",))
        assert (blk["op_tp"][f, 0, 0], blk["op_fp"][f, 0, 0], blk["n_gt"][f, 0, 0] - blk["op_tp"][f, 0, 0]) == (op.tp, op.fp, op.fn)


def test_compare_detections_states_exact_values_and_a_clear_verdict() -> None:
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.detection import operating_point

    rng = np.random.default_rng(2)
    fr = sim.frames(rng, 300, n_cameras=12)
    pa = sim.detect(rng, fr["gts"], fr["difficulty"], skill=0.0)
    pb = sim.detect(rng, fr["gts"], fr["difficulty"], skill=2.0)
    cmp = compare_detections(fr["gts"], pa, pb, class_names=("person",), conf_a=0.4, conf_b=0.6, cameras=fr["camera"],
                             n_resamples=400, names=("v9", "v10"))
    assert cmp.verdict == "better" and cmp.unit == "camera" and cmp.n_cameras == 12 and set(cmp.by_unit) == {"frame", "camera"}
    ap = cmp.get("AP")
    assert ap.a == pytest.approx(evaluate_coco(fr["gts"], pa, class_names=("person",)).stats[0], abs=1e-12)
    assert ap.b == pytest.approx(evaluate_coco(fr["gts"], pb, class_names=("person",)).stats[0], abs=1e-12)
    assert ap.lo <= ap.delta <= ap.hi
    assert cmp.get("F1").b == pytest.approx(operating_point(fr["gts"], pb, conf=0.6, class_names=("person",)).f1)
    assert cmp.get("F1").a == pytest.approx(operating_point(fr["gts"], pa, conf=0.4, class_names=("person",)).f1)
    doc = json.loads(json.dumps(cmp.to_dict()))
    assert doc["verdict"] == "better" and doc["estimates"][0]["metric"] == "AP"
    # the same model against itself: nothing to detect
    same = compare_detections(fr["gts"], pa, pa, class_names=("person",), conf_a=0.4, conf_b=0.4, n_resamples=200)
    assert same.verdict == "no detectable difference" and same.headline.delta == 0 and same.headline.more_frames is None


def test_classification_and_anomaly_point_values_match_sklearn() -> None:
    from sklearn.metrics import f1_score, recall_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400)
    pa = np.where(rng.random(400) < 0.6, y, rng.integers(0, 3, 400))
    pb = np.where(rng.random(400) < 0.8, y, rng.integers(0, 3, 400))
    cmp = compare_classifications(y, pa, pb, class_names=("a", "b", "c"), images=[str(i // 4) for i in range(400)], n_resamples=300)
    assert cmp.get("macro_F1").a == pytest.approx(f1_score(y, pa, average="macro"))
    assert cmp.get("macro_F1").b == pytest.approx(f1_score(y, pb, average="macro"))
    assert cmp.get("F1[b]").b == pytest.approx(f1_score(y, pb, average=None)[1])
    assert cmp.verdict == "better"
    labels = rng.random(300) < 0.3
    sa = rng.normal(0, 1, 300) + labels
    sb = np.round(rng.normal(0, 1, 300) + 2 * labels, 1)  # ties
    an = compare_anomaly(labels, sa, sb, false_alarm_rate=0.1, n_resamples=300)
    assert an.get("AUROC").a == pytest.approx(roc_auc_score(labels, sa))
    assert an.get("AUROC").b == pytest.approx(roc_auc_score(labels, sb))
    for scores, value in ((sa, an.get("recall@FAR0.1").a), (sb, an.get("recall@FAR0.1").b)):
        fpr, tpr, _ = roc_curve(labels, scores)
        assert value == pytest.approx(tpr[fpr <= 0.1].max())
    assert recall_score(labels, sb >= 100) == 0  # (sklearn imported for the reference above)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from sitesight.formats.coco import write_coco
    from sitesight.sliced.store import write_run

    root = tmp_path_factory.mktemp("compare")
    rng = np.random.default_rng(4)
    fr = sim.frames(rng, 150)
    samples = [Sample(path=f"site/f{i:03d}.jpg", image_wh=sim.FRAME_WH, gt=g, image_id=i + 1) for i, g in enumerate(fr["gts"])]
    ds = Dataset(class_names=("person",), samples=samples, root=root)
    gt = write_coco(ds, root / "gt.json")
    keys = [(str(ds.image_path(s)), s.image_wh) for s in samples]
    out = {"gt": gt, "root": root}
    for name, skill in (("v9", 0.0), ("v10", 2.0)):
        raw = sim.detect(rng, fr["gts"], fr["difficulty"], skill=skill)
        raw = [d.replace(attributes={"source": np.full(len(d), -1, np.int64)}) for d in raw]
        out[name] = write_run(root / name, keys, raw, model=name, parameters={}, class_names=("person",)).run_dir
    return out


def test_cli_compare_runs_verdict_json_and_page(two_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from sitesight.cli.main import main
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.detection import operating_point
    from sitesight.sliced.evaluate import scored
    from sitesight.sliced.spec import PostprocessSpec

    out, page = two_runs["root"] / "cmp.json", two_runs["root"] / "cmp.html"
    code = main(["compare", str(two_runs["v9"]), str(two_runs["v10"]), "--gt", str(two_runs["gt"]), "--conf", "0.5",
                 "--resamples", "300", "--out", str(out), "--html", str(page)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "verdict: better" in text and "v10 is better than v9 on AP" in text
    assert "AP[small]" in text and "F1[large]" in text  # per-size rows, brackets printed (not read as markup)
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "better" and doc["settings"]["operating_points"]["v9"]["conf"] == 0.5
    # AP over every detection the spec keeps down to 0.05; F1 of the run post-processed at the operating point
    s = scored(two_runs["gt"], two_runs["v9"], spec=PostprocessSpec(conf=0.05))
    assert doc["estimates"][0]["a"] == pytest.approx(evaluate_coco(s.gts, s.preds, class_names=("person",)).stats[0], abs=1e-12)
    s = scored(two_runs["gt"], two_runs["v9"], spec=PostprocessSpec(conf=0.5))
    f1 = next(e for e in doc["estimates"] if e["metric"] == "F1")
    assert f1["a"] == pytest.approx(operating_point(s.gts, s.preds, conf=0.5, class_names=("person",)).f1)
    html = page.read_text()
    assert html.index('data-verdict="better"') < html.index("Every metric")
    # default operating point: no sweep, no --conf → best-F1 confidence, said so
    assert main(["compare", str(two_runs["v9"]), str(two_runs["v10"]), "--gt", str(two_runs["gt"]), "--resamples", "200",
                 "--out", str(out)]) == 0
    assert "best-F1" in json.loads(out.read_text())["settings"]["operating_points"]["v10"]["source"]
    # one-line errors
    assert main(["compare", str(two_runs["v9"]), str(two_runs["v10"]), "--out", str(out)]) == 1
    assert "--gt" in capsys.readouterr().err
    assert main(["compare", str(two_runs["v9"]), str(two_runs["root"] / "missing.csv"), "--gt", str(two_runs["gt"])]) == 1


def test_cli_compare_csvs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sitesight.cli.main import main

    rng = np.random.default_rng(5)
    labels = rng.random(200) < 0.3
    for name, lift in (("a", 0.5), ("b", 2.5)):
        # the layout `sitesight predict anomaly` writes
        rows = ["path,label,defect,score,flagged"] + [f"img{i}.png,{'anomalous' if y else 'normal'},,{rng.normal(0, 1) + lift * y:.4f},"
                                                       for i, y in enumerate(labels)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--resamples", "300", "--out", str(tmp_path / "an.json")]) == 0
    doc = json.loads((tmp_path / "an.json").read_text())
    assert doc["kind"] == "anomaly" and doc["verdict"] == "better" and doc["primary"] == "AUROC"
    y = rng.integers(0, 2, 120)
    for name, acc in (("a", 0.5), ("b", 0.95)):
        pred = np.where(rng.random(120) < acc, y, 1 - y)
        rows = ["image,box_index,label,ok,bad"] + [f"f{i // 3}.jpg,{i % 3},{('ok', 'bad')[t]},{1.0 - p:.1f},{float(p):.1f}" for i, (t, p) in enumerate(zip(y, pred, strict=True))]
        (tmp_path / f"cls_{name}.csv").write_text("\n".join(rows) + "\n")
    assert main(["compare", str(tmp_path / "cls_a.csv"), str(tmp_path / "cls_b.csv"), "--resamples", "300", "--out", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["kind"] == "classification" and doc["primary"] == "macro_F1" and doc["verdict"] == "better"
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "cls_b.csv")]) == 1
    assert "cannot compare" in capsys.readouterr().err


def test_detections_only_in_one_run_are_dropped_from_the_pairing() -> None:
    with pytest.raises(Exception, match="frames"):
        compare_detections([Detections.empty()], [], [Detections.empty()], class_names=("p",), conf_a=0.5, conf_b=0.5)

"""Mining on each model's own score scale, and verdict intervals that say when the sets are too small.

References: the planted weaknesses of `planted.py` (truth known by construction) and
`scipy.stats.bootstrap` for the percentile intervals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from sitesight import Detections
from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.mining import Diversity, mine_pool, pool_from_detections, random_control, verdict
from sitesight.mining.confident import ConfidentPoint, confident_points, operating_conf
from sitesight.mining.verdict import bootstrap_f1_diff, image_errors

from .planted import CLASSES, planted_pool


def _scaled(p, factor):
    """The same predictions with every score multiplied by ``factor`` (a detector on another scale)."""
    return {m: [d.replace(score=d.score * factor) for d in dets] for m, dets in p.preds.items()}


def _pool(p, preds):
    return pool_from_detections(p.keys, p.image_wh, preds, camera=p.camera, timestamp=p.timestamp, class_names=CLASSES)


def test_low_scoring_models_still_yield_mined_frames(tmp_path, caplog):
    p = planted_pool(200, seed=3)
    low = _scaled(p, 0.7)  # planted scores are 0.75-0.97, so every score is now below 0.68
    assert max(float(d.score.max()) for dets in low.values() for d in dets if len(d)) < 0.7
    pool = _pool(p, low)
    # the old fixed rule (yes >= 0.6, no < 0.3) cannot be met by the "yes" side often: nothing from the planted weakness
    fixed = {m: ConfidentPoint(0.75, 0.3, "fixed") for m in pool.runs}
    empty = mine_pool(pool, tmp_path / "fixed", budget=30, confident=fixed)
    assert empty.mined.size == 0
    assert len(empty.warnings) == 3 and all("confident about" in w and "--any-dispute" in w for w in empty.warnings)
    assert json.loads((tmp_path / "fixed" / "manifest.json").read_text())["warnings"] == list(empty.warnings)
    # the default: each model's own scale
    result = mine_pool(pool, tmp_path / "auto", budget=30)
    assert all(frames.size == 10 for frames in result.pairs.values()) and not result.warnings
    planted = {"A~B": p.dark | p.small, "A~C": p.dark, "B~C": p.small}
    for pair, frames in result.pairs.items():
        assert planted[pair][frames].mean() >= 0.8, pair
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    for m in ("A", "B", "C"):
        point = manifest["confident"][m]
        top = np.quantile([float(d.score.max()) for d in low[m] if len(d)], 0.95)  # the rule, by hand
        assert point["hi"] == pytest.approx(0.6 * top) and point["lo"] == pytest.approx(0.3 * top)
        assert "top score" in point["source"]


def test_operating_point_from_number_spec_and_sweep_table(tmp_path):
    assert operating_conf("0.35")[0] == 0.35
    (tmp_path / "spec.json").write_text(json.dumps({"spec": {"conf": 0.4, "merge": "nms"}}))
    assert operating_conf(tmp_path / "spec.json")[0] == 0.4
    (tmp_path / "sweep.json").write_text(json.dumps({"best": 1, "rows": [{"conf": 0.2}, {"conf": 0.45}]}))
    assert operating_conf(tmp_path / "sweep.json")[0] == 0.45
    (tmp_path / "sweep.csv").write_text("method,metric,threshold,conf,gate,f1,best\nnms,iou,0.5,0.2,,0.5,0\nnms,iou,0.5,0.3,,0.7,1\n")
    assert operating_conf(f"{tmp_path / 'sweep.csv'}:best")[0] == 0.3 and operating_conf(f"{tmp_path / 'sweep.csv'}:0")[0] == 0.2
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(InputError, match="no 'conf'"):
        operating_conf(tmp_path / "bad.json")
    p = planted_pool(20, seed=1)
    points = confident_points(_pool(p, p.preds), operating={"A": "0.5"})
    assert (points["A"].hi, points["A"].lo) == (0.5, 0.25) and "operating point" in points["A"].source
    with pytest.raises(InputError, match="unknown model"):
        confident_points(_pool(p, p.preds), operating={"Z": 0.5})


@pytest.mark.parametrize("paired", [False, True])
def test_bootstrap_interval_matches_scipy(paired):
    rng = np.random.default_rng(0)
    n = 60
    err_x = {k: rng.integers(0, 4, n) for k in ("tp", "fp", "fn")}
    err_y = {k: rng.integers(0, 4, n) for k in ("tp", "fp", "fn")}
    rows_x = np.arange(0, 40) if not paired else np.arange(n)
    rows_y = np.arange(20, 60) if not paired else np.arange(n)

    def f1(tp, fp, fn):
        return 2 * tp.sum(-1) / (2 * tp.sum(-1) + fp.sum(-1) + fn.sum(-1))

    def statistic(*cols, axis=-1):
        if paired:
            tx, fx, nx, ty, fy, ny = cols
        else:
            (tx, fx, nx), (ty, fy, ny) = cols  # each sample: (3, ..., n)
        return f1(tx, fx, nx) - f1(ty, fy, ny)

    if paired:
        data = tuple(err_x[k][rows_x] for k in ("tp", "fp", "fn")) + tuple(err_y[k][rows_y] for k in ("tp", "fp", "fn"))
    else:
        data = (np.stack([err_x[k][rows_x] for k in ("tp", "fp", "fn")]), np.stack([err_y[k][rows_y] for k in ("tp", "fp", "fn")]))
    ref = stats.bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=20000, method="percentile",
                          random_state=1, axis=-1).confidence_interval
    low, high = bootstrap_f1_diff(err_x, rows_x, err_y, rows_y, paired=paired, n_boot=20000, seed=2)
    assert low == pytest.approx(ref.low, abs=0.01) and high == pytest.approx(ref.high, abs=0.01)


@pytest.fixture(scope="module")
def planted_mined(tmp_path_factory):
    p = planted_pool(400, seed=7)
    result = mine_pool(_pool(p, _scaled(p, 0.7)), tmp_path_factory.mktemp("mined"), budget=90,
                       diversity=Diversity(window_s=3600, max_per_window=3))
    return p, result


def _labelled(p, frames):
    gts: list[Detections | None] = [None] * len(p.gts)
    for f in frames:
        gts[f] = p.gts[f]
    return gts


def test_verdict_interval_excludes_zero_for_the_planted_weaknesses(planted_mined):
    p, result = planted_mined
    preds = _scaled(p, 0.7)
    pair_sets = {tuple(name.split("~")): frames for name, frames in result.pairs.items()}
    v = verdict(_labelled(p, np.union1d(result.mined, result.control)), preds, pair_sets, result.control, conf=0.35)
    assert v.control_frames >= 50 and min(v.mined_frames.values()) >= 30
    assert not any("too few" in w for w in v.warnings)
    for m in ("A", "B"):  # blind in dark frames / to small workers: the mined frames are harder, and the interval says so
        lo, hi = v.drop_ci[m]
        assert 0 < lo <= v.drop[m] <= hi and v.conclusive[m], (m, v.drop_ci[m])
    ab = next(pv for pv in v.pairs if (pv.a, pv.b) == ("A", "C"))
    assert ab.f1_a_minus_b_ci[1] < 0  # C beats A on their mined set, with the interval below 0
    # the pair's paired interval against scipy's paired percentile bootstrap on the same images
    frames = result.pairs["A~C"]
    ea, ec = (image_errors([p.gts[f] for f in frames], [preds[m][f] for f in frames], conf=0.35) for m in ("A", "C"))

    def f1_diff(ta, fa, na, tc, fc, nc, axis=-1):
        return 2 * ta.sum(axis) / (2 * ta.sum(axis) + fa.sum(axis) + na.sum(axis)) - 2 * tc.sum(axis) / (2 * tc.sum(axis) + fc.sum(axis) + nc.sum(axis))

    data = tuple(e[k] for e in (ea, ec) for k in ("tp", "fp", "fn"))
    ref = stats.bootstrap(data, f1_diff, paired=True, vectorized=True, n_resamples=5000, method="percentile", random_state=0).confidence_interval
    assert ab.f1_a_minus_b_ci == pytest.approx((ref.low, ref.high), abs=0.02)
    d = v.to_dict()
    assert d["f1_random_minus_mined"]["A"] == pytest.approx(v.control_f1["A"] - v.mined_f1["A"])
    assert "> 0: the mined frames are harder" in d["drop_reads"] and "drop" not in d


def test_verdict_on_ten_plus_ten_frames_warns(planted_mined):
    p, result = planted_mined
    preds = _scaled(p, 0.7)
    mined = result.pairs["A~C"][:10]
    control = result.control[:10]
    v = verdict(_labelled(p, np.union1d(mined, control)), preds, {("A", "C"): mined}, control, conf=0.35)
    assert any(w.startswith("too few labelled frames") for w in v.warnings)
    assert not any(v.conclusive.values())
    # a "mined" set that is just another random draw of 10: one dark frame in it moves A's F1 a lot, and
    # a bootstrap over 10 images cannot tell that from a real drop; the verdict must not call it one
    other = random_control(len(p.gts), 10, exclude=control, seed=11)
    v = verdict(_labelled(p, np.union1d(other, control)), preds, {("A", "B"): other, ("B", "C"): other}, control, conf=0.35)
    assert p.dark[other].any() and v.drop_ci["A"][0] > 0  # the chance effect this test is about
    assert not any(v.conclusive.values())
    assert any(w.startswith("too few labelled frames") for w in v.warnings)
    # with 60 + 60 random frames the same question gets intervals that contain 0
    other = random_control(len(p.gts), 60, exclude=control, seed=11)
    control60 = random_control(len(p.gts), 60, exclude=other, seed=12)
    v = verdict(_labelled(p, np.union1d(other, control60)), preds, {("A", "B"): other, ("B", "C"): other}, control60, conf=0.35)
    assert not any(v.conclusive.values()) and not any("too few" in w for w in v.warnings)
    assert all(v.drop_ci[m][0] <= 0 <= v.drop_ci[m][1] for m in ("A", "B", "C"))


def test_cli_verdict_prints_intervals_and_warning(tmp_path, capsys):
    from sitesight import Dataset, Sample
    from sitesight.formats.coco import write_coco

    from .test_cli_pool import _write_runs

    p = planted_pool(60, seed=5)
    p = p.__class__(**{**p.__dict__, "preds": _scaled(p, 0.65)})
    keys, runs = _write_runs(tmp_path, p)
    out = tmp_path / "MINED"
    assert main(["mine", *[f"--run={n}={r}" for n, r in runs.items()], "--budget", "12", "--out", str(out),
                 "--no-package", "--operating-point", "C=0.4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["confident"]["C"]["hi"] == 0.4 and "top score" in manifest["confident"]["A"]["source"]
    assert sum(len(pr["frames"]) for pr in manifest["pairs"].values()) > 0
    wanted = {k for pr in manifest["pairs"].values() for k in pr["frames"]} | set(manifest["control"])
    samples = [Sample(path=k, image_wh=p.image_wh[i], gt=p.gts[i]) for i, k in enumerate(keys) if k in wanted]
    labels = write_coco(Dataset(class_names=CLASSES, samples=tuple(samples)), tmp_path / "labels.json")
    capsys.readouterr()
    assert main(["mine", "verdict", str(out), "--gt", str(labels), "--conf", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "random - mined" in printed and "too few labelled frames" in printed
    assert json.loads((out / "verdict.json").read_text())["warnings"]

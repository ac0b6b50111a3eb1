"""supervision and pandas bridges: values checked against supervision's own functions and against
counts made by hand from the containers."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sitesight import Dataset, Detections, Sample
from sitesight.errors import MissingExtraError

sv = pytest.importorskip("supervision")
pd = pytest.importorskip("pandas")


def _dets(rng, n=6):
    xy = rng.uniform(0, 100, (n, 2))
    return Detections(xyxy=np.c_[xy, xy + rng.uniform(5, 50, (n, 2))], score=rng.random(n), class_id=rng.integers(0, 3, n),
                      attributes={"source": np.arange(n, dtype=np.int64), "rope": np.array(["ok", None] * (n // 2), object)})


def test_supervision_round_trip_and_iou_agree_with_supervision():
    rng = np.random.default_rng(0)
    d = _dets(rng)
    s = d.to_supervision(class_names=["person", "helmet", "vest"])
    assert isinstance(s, sv.Detections) and len(s) == len(d)
    np.testing.assert_array_equal(s.xyxy, d.xyxy)
    np.testing.assert_array_equal(s.confidence, d.score)
    assert s.class_id.tolist() == d.class_id.tolist()
    assert s.data["class_name"].tolist() == [["person", "helmet", "vest"][c] for c in d.class_id]
    assert s.data["source"].tolist() == list(range(6))
    # supervision's own operations work on it: IoU as supervision computes it
    from sitesight.boxes import pairwise_iou

    np.testing.assert_allclose(sv.box_iou_batch(s.xyxy, s.xyxy), pairwise_iou(d.xyxy, d.xyxy), atol=1e-6)
    back = Detections.from_supervision(s, class_names=["person", "helmet", "vest"])
    assert back.equals(d)  # class_name consumed by the lookup, every attribute back


def test_from_supervision_defaults_tracker_and_unknown_names():
    s = sv.Detections(xyxy=np.array([[0, 0, 10, 10], [5, 5, 20, 20]], float), tracker_id=np.array([7, 9]),
                      data={"class_name": np.array(["helmet", "dog"])})
    d = Detections.from_supervision(s)
    assert d.score.tolist() == [1.0, 1.0] and d.class_id.tolist() == [0, 0]
    assert d.attributes["tracker_id"].tolist() == [7, 9] and d.attributes["class_name"].tolist() == ["helmet", "dog"]
    with pytest.raises(ValueError, match="dog"):
        Detections.from_supervision(s, class_names=["person", "helmet"])
    assert d.to_supervision().tracker_id.tolist() == [7, 9]


def test_dataset_and_run_to_pandas(tmp_path):
    rng = np.random.default_rng(1)
    samples = [Sample(path=f"f{i}.jpg", image_wh=(640, 480), gt=_dets(rng, n=2 * i).replace(score=None), subset="train")
               for i in range(4)]  # the first has no box
    ds = Dataset(class_names=("person", "helmet", "vest"), samples=samples)
    df = ds.to_pandas()
    assert len(df) == ds.box_count() == 12
    assert df.groupby("class_name").size().reindex(ds.class_names, fill_value=0).tolist() == list(ds.class_counts().values())
    assert df.loc[df.image == "f2.jpg", ["x1", "y1", "x2", "y2"]].to_numpy().tolist() == samples[2].gt.xyxy.tolist()
    assert set(df.columns) >= {"frame", "image", "subset", "width", "height", "class_id", "class_name", "source", "rope"}

    from sitesight.sliced.store import load_run, write_run

    write_run(tmp_path / "run", [(s.path, s.image_wh) for s in samples], [s.gt for s in samples], model="m",
              parameters={}, class_names=ds.class_names)
    rdf = load_run(tmp_path / "run").to_pandas()
    assert len(rdf) == 12 and rdf.groupby("key").size().to_dict() == {"f1.jpg": 2, "f2.jpg": 4, "f3.jpg": 6}
    assert rdf.class_name.tolist() == df.class_name.tolist()

    import sitesight

    run = sitesight.load_run(tmp_path / "run")
    sweep = sitesight.sweep(run, sitesight.align_gt(run, ds), merges=sitesight.merge_grid(["nms"], ["iou"], [0.5]),
                            confs=[0.1, 0.5], class_names=ds.class_names)
    table = sweep.to_pandas()
    assert len(table) == 2 and table["best"].sum() == 1 and table["f1"].tolist() == [r.f1 for r in sweep.rows]


def test_eval_results_to_pandas():
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.voc import voc_average_precision

    rng = np.random.default_rng(2)
    gts = [_dets(rng).replace(score=None) for _ in range(5)]
    preds = [g.replace(xyxy=g.xyxy + rng.normal(0, 2, g.xyxy.shape), score=rng.random(len(g))) for g in gts]
    names = ["person", "helmet", "vest"]
    coco = evaluate_coco(gts, preds, class_names=names).to_pandas()
    assert coco.index.tolist() == names and coco.loc["helmet", "AP"] == pytest.approx(evaluate_coco(gts, preds, class_names=names).per_class["helmet"]["AP"])
    voc = voc_average_precision(gts, preds, class_names=names).to_pandas()
    assert voc["gt"].sum() == sum(len(g) for g in gts)


def test_missing_pandas_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingExtraError, match="pip install 'sitesight\\[pandas\\]'"):
        Dataset(class_names=("a",), samples=()).to_pandas()

"""`BoxTable.from_frame_table`: the engine's index of a `FrameTable`, against hand-computed columns
and against pycocotools (frames that disagree on which attributes they carry included)."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.evaluation.boxtable import BoxTable, table_from_detections
from sitesight.evaluation.coco import evaluate_coco, evaluate_tables
from sitesight.evaluation.detection import operating_point
from sitesight.frametable import FrameTable

from .cocoref import coco_dicts, pycocotools_eval
from .test_readers_parity import _plain_tp_fp_fn

TOL = 1e-9


def test_from_frame_table_columns_by_hand() -> None:
    gt = FrameTable.from_frames([
        Detections(xyxy=[[0, 0, 10, 5], [2, 2, 4, 6]], class_id=[1, 0],
                   attributes={"iscrowd": np.array([0, 1]), "coco_area": np.array([None, 7.5], object)}),
        Detections.empty(),
        Detections(xyxy=[[1, 1, 3, 2]], attributes={"iscrowd": np.array([0]), "coco_area": np.array([None], object)}),
    ])
    b = BoxTable.from_frame_table(gt, gt=True)
    assert b.frame.tolist() == [0, 0, 2]
    assert b.class_id.tolist() == [1, 0, 0]
    assert b.xyxy.dtype == np.float64 and b.xyxy.tolist() == [[0, 0, 10, 5], [2, 2, 4, 6], [1, 1, 3, 2]]
    assert b.area.tolist() == [50.0, 8.0, 2.0]
    assert b.range_area.tolist() == [50.0, 7.5, 2.0]  # coco_area where given, else w * h
    assert b.crowd.tolist() == [False, True, False]
    assert b.score.tolist() == [1.0, 1.0, 1.0]

    pred = FrameTable(np.array([2, 0]), Detections(xyxy=[[0, 0, 2, 2], [0, 0, 1, 1]], score=[0.25, 0.5],
                                                   attributes={"source": np.array([3, -1])}), 3)
    p = BoxTable.from_frame_table(pred, gt=False)
    assert p.frame.tolist() == [0, 2]  # the FrameTable's order: frame ascending
    assert p.score.tolist() == [0.5, 0.25] and p.source.tolist() == [-1, 3]
    assert not p.crowd.any()


def test_area_attribute_when_no_coco_area() -> None:
    t = FrameTable.from_frames([Detections(xyxy=[[0, 0, 10, 10], [0, 0, 2, 2]], attributes={"area": np.array([np.nan, 30.0])})])
    assert BoxTable.from_frame_table(t, gt=True).range_area.tolist() == [100.0, 30.0]


def _frames(rng: np.random.Generator, n: int) -> tuple[list[Detections], list[Detections]]:
    """Frames where only some ground truth carries iscrowd/area and only some predictions carry source."""
    gts, preds = [], []
    for i in range(n):
        k = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (k, 2))
        g = np.c_[xy, xy + rng.uniform(10, 120, (k, 2))].astype(np.float32)
        attrs = {}
        if i % 3 == 0:
            attrs = {"iscrowd": (rng.random(k) < 0.2).astype(np.int64), "area": rng.uniform(50, 20000, k)}
        gts.append(Detections(xyxy=g, class_id=rng.integers(0, 2, k), attributes=attrs))
        m = int(rng.integers(0, 8))
        base = g[rng.integers(0, k, m)] if k else rng.uniform(0, 300, (m, 4))
        p = (base + rng.normal(0, 6, (m, 4))).astype(np.float32)
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        pattrs = {"source": rng.integers(-1, 4, m)} if i % 2 else {}
        preds.append(Detections(xyxy=p, score=np.round(rng.random(m), 2), class_id=rng.integers(0, 2, m), attributes=pattrs))
    return gts, preds


@pytest.mark.parametrize("seed", range(4))
def test_frame_table_route_equals_pycocotools(seed: int) -> None:
    gts, preds = _frames(np.random.default_rng(seed), 9)
    ref = pycocotools_eval(*coco_dicts(gts, preds, 2))
    # mixed attribute keys: FrameTable.from_frames cannot stack them, table_from_detections can
    with pytest.raises(ValueError, match="attribute keys differ"):
        FrameTable.from_frames(gts)
    np.testing.assert_allclose(evaluate_coco(gts, preds, class_names=["c0", "c1"]).stats, ref.stats, atol=TOL, rtol=0)
    # the FrameTable route: frames given the same keys (defaults: not crowd, area w * h)
    same = [g if "iscrowd" in g.attributes else g.with_attributes(iscrowd=np.zeros(len(g), np.int64),
                                                                   area=np.full(len(g), np.nan)) for g in gts]
    gt = BoxTable.from_frame_table(FrameTable.from_frames(same), gt=True)
    pred = BoxTable.from_frame_table(FrameTable.from_frames([p.replace(attributes={}) for p in preds]), gt=False)
    ours = evaluate_tables(gt, pred, n_images=len(gts), class_names=("c0", "c1"))
    np.testing.assert_allclose(ours.stats, ref.stats, atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)


def test_table_from_detections_keeps_source_where_some_frames_lack_it() -> None:
    preds = [Detections(xyxy=[[0, 0, 1, 1]], attributes={"source": np.array([2])}), Detections(xyxy=[[0, 0, 2, 2]])]
    t = table_from_detections(preds, gt=False)
    assert t.frame.tolist() == [0, 1] and t.source.tolist() == [2, -1]


def test_table_from_detections_when_unread_attributes_do_not_stack() -> None:
    # per-box class probabilities of different widths: evaluation reads neither, so they are left out
    preds = [Detections(xyxy=[[0, 0, 1, 1]], score=[0.5], attributes={"probs": np.ones((1, 2)), "source": np.array([1])}),
             Detections(xyxy=[[0, 0, 2, 2]], score=[0.25], attributes={"probs": np.ones((1, 3)), "source": np.array([-1])})]
    t = table_from_detections(preds, gt=False)
    assert t.frame.tolist() == [0, 1] and t.source.tolist() == [1, -1] and t.score.tolist() == [0.5, 0.25]


@pytest.mark.parametrize("seed", range(3))
def test_entry_points_take_a_frame_table(seed: int) -> None:
    """A run's boxes at hand as a `FrameTable` go in without a per-frame split: COCO stats equal
    pycocotools', the operating point equals a plain greedy matcher."""
    gts, preds = _frames(np.random.default_rng(10 + seed), 12)
    gts = [g.replace(attributes={}) for g in gts]
    preds = [p.replace(attributes={}) for p in preds]
    gt_doc, results = coco_dicts(gts, preds, 2)
    gt_table, pred_table = FrameTable.from_frames(gts), FrameTable.from_frames(preds)
    ref = pycocotools_eval(gt_doc, results)
    np.testing.assert_allclose(evaluate_coco(gt_table, pred_table, class_names=["c0", "c1"]).stats, ref.stats, atol=TOL, rtol=0)
    for conf in (0.0, 0.3, 0.7):
        op = operating_point(gt_table, pred_table, iou=0.5, conf=conf, class_names=["c0", "c1"])
        assert (op.tp, op.fp, op.fn) == _plain_tp_fp_fn(gt_doc, results, conf)
        assert conf > 0 or (op.tp > 0 and op.fp > 0 and op.fn > 0)  # not a degenerate case
    # a FrameTable counts frames, not boxes
    with pytest.raises(InputError, match="12 ground-truth images but 11"):
        evaluate_coco(gt_table, preds[:11])

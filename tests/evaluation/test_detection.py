"""Operating point, sweep, thresholds, error breakdown and confusion: pycocotools matches and hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.evaluation.confusion import confusion_matrix
from sitesight.evaluation.detection import confidence_sweep, match_detections, operating_point, parse_sweep
from sitesight.evaluation.errors import error_breakdown

from .cocoref import coco_dicts, pycocotools_eval
from .test_coco_parity import _case, _d


def _reference_counts(gts, preds, k, iou, conf):
    """TP/FP/FN per class from pycocotools' own per-image matches (one IoU, one area range, no cap)."""
    gd, res = coco_dicts(gts, preds, k)
    ev = pycocotools_eval(gd, res, max_dets=(10_000,), iou_thresholds=[iou], area_ranges=[[0, 1e10]])
    tp = np.zeros(k, int)
    fp = np.zeros(k, int)
    npos = np.zeros(k, int)
    for e in ev.evalImgs:
        if e is None:
            continue
        c = e["category_id"] - 1
        s = np.asarray(e["dtScores"])
        counted = (s >= conf) & ~e["dtIgnore"][0].astype(bool)
        tp[c] += int(np.sum(counted & (e["dtMatches"][0] > 0)))
        fp[c] += int(np.sum(counted & (e["dtMatches"][0] == 0)))
        npos[c] += int(np.sum(e["gtIgnore"] == 0))
    return tp, fp, npos - tp


@pytest.mark.parametrize("seed", range(25))
def test_operating_point_and_sweep_match_pycocotools_matches(seed: int) -> None:
    gts, preds, k = _case(np.random.default_rng(seed), dense=seed % 2 == 1)
    for iou, conf in ((0.5, 0.5), (0.3, 0.0), (0.75, 0.35)):
        tp, fp, fn = _reference_counts(gts, preds, k, iou, conf)
        r = operating_point(gts, preds, iou=iou, conf=conf, num_classes=k)
        assert (r.tp, r.fp, r.fn) == (tp.sum(), fp.sum(), fn.sum())
        for c in range(k):
            pc = r.per_class[f"c{c}"]
            assert (pc.tp, pc.fp, pc.fn) == (tp[c], fp[c], fn[c])
    rows = confidence_sweep(gts, preds, [0.1, 0.35, 0.5, 0.9], iou=0.5, num_classes=k)
    for row in rows:  # sweep from one matching == matching the filtered predictions from scratch
        kept = [p.filter(min_score=row["conf"]) for p in preds]
        again = operating_point(gts, kept, iou=0.5, conf=0.0, num_classes=k)
        assert (row["tp"], row["fp"], row["fn"]) == (again.tp, again.fp, again.fn)


def test_hand_computed_operating_point() -> None:
    gt = [_d([[0, 0, 10, 10], [20, 0, 30, 10]], cls=[0, 1]), _d([[0, 0, 10, 10]], cls=[0])]
    pred = [
        _d([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], cls=[0, 0, 1], score=[0.9, 0.6, 0.3]),
        _d([[100, 100, 110, 110]], cls=[0], score=[0.8]),
    ]
    r = operating_point(gt, pred, iou=0.5, conf=0.5, num_classes=2)
    assert (r.tp, r.fp, r.fn) == (1, 2, 2)
    assert r.precision == pytest.approx(1 / 3) and r.recall == pytest.approx(1 / 3) and r.f1 == pytest.approx(1 / 3)
    d = r.to_dict()
    assert {"tp", "fp", "fn", "precision", "recall", "f1", "per_class"} <= set(d)
    m = match_detections(gt, pred, iou=0.5, num_classes=2)
    best = m.best_thresholds(target_recall=0.6)
    # thresholds 0.9 (1 TP), 0.8 (+FP), 0.6 (+dup FP), 0.3 (+TP class 1): F1 = 2/4, 2/5, 2/6, 4/7
    assert best["all"]["best_f1"]["threshold"] == pytest.approx(0.3)
    assert best["all"]["best_f1"]["f1"] == pytest.approx(4 / 7)
    assert best["all"]["at_target_recall"]["threshold"] == pytest.approx(0.3)
    assert best["c1"]["best_f1"]["f1"] == pytest.approx(1.0)
    curve = m.pr_curve(0)
    np.testing.assert_allclose(curve["precision"], [1, 0.5, 1 / 3])
    np.testing.assert_allclose(curve["recall"], [0.5, 0.5, 0.5])


def test_parse_sweep() -> None:
    np.testing.assert_allclose(parse_sweep("0.15:0.5:0.05"), [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
    np.testing.assert_allclose(parse_sweep("0.2,0.5"), [0.2, 0.5])
    with pytest.raises(InputError):
        parse_sweep("a:b")


def test_error_breakdown_hand_case() -> None:
    gt = [_d([[0, 0, 10, 10], [20, 0, 30, 10], [50, 0, 60, 10], [80, 0, 90, 10]], cls=[0, 0, 1, 0])]
    pred = [
        Detections(
            xyxy=np.array(
                [
                    [0, 0, 10, 10],  # TP on gt0
                    [0, 0, 10, 10],  # duplicate of gt0, from another slice
                    [20, 0, 26, 10],  # localisation on gt1 (IoU 0.6 < 0.7)
                    [50, 0, 60, 10],  # class confusion on gt2 (class 1, predicted 0)
                    [200, 200, 210, 210],  # background
                    [53, 0, 60, 10],  # both: class 1 box at IoU 0.7... predicted 0 with IoU 0.7 → class
                ],
                np.float32,
            ),
            class_id=[0, 0, 0, 0, 0, 1],
            score=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            attributes={"source": np.array([0, 1, 0, 0, 0, 0])},
        )
    ]
    r = error_breakdown(gt, pred, iou=0.7, background_iou=0.1, class_names=["a", "b"])
    assert r.counts["duplicate"] == 1 and r.duplicate_cross_slice == 1
    assert r.counts["localisation"] == 1
    assert r.counts["class"] == 1
    assert r.counts["background"] == 1
    # pred 5 (class 1) overlaps gt2 (class 1) with IoU 0.7 → TP, so nothing is "both"; gt3 is missed
    assert r.counts["both"] == 0 and r.counts["missed"] == 1
    # the duplicate ranks below the only TP of its class with no TP after it: removing it changes no AP
    assert r.delta_ap["duplicate"] == 0 and r.delta_ap["localisation"] > 0 and r.delta_ap["missed"] > 0
    assert set(r.to_dict()["counts"]) == {"localisation", "class", "duplicate", "background", "both", "missed"}


def test_error_breakdown_both() -> None:
    gt = [_d([[0, 0, 10, 10]], cls=[1])]
    pred = [_d([[0, 0, 6, 10]], cls=[0], score=[0.9])]  # wrong class, IoU 0.6 < 0.7
    r = error_breakdown(gt, pred, iou=0.7, class_names=["a", "b"])
    assert r.counts["both"] == 1 and r.counts["missed"] == 1


def test_error_breakdown_background_iou_zero_has_no_phantom_target() -> None:
    # gt only of class 1; a class-0 box far away has no class-0 gt to be "localisation" of,
    # and with background_iou=0 it must still count as background, claiming nothing.
    gt = [_d([[0, 0, 10, 10]], cls=[1])]
    pred = [_d([[100, 100, 110, 110]], cls=[0], score=[0.9])]
    r = error_breakdown(gt, pred, iou=0.5, background_iou=0.0, class_names=["a", "b"])
    assert r.counts["localisation"] == 0 and r.counts["missed"] == 1
    assert r.counts["background"] + r.counts["both"] == 1


def test_confusion_matrix_hand_case() -> None:
    gt = [_d([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], cls=[0, 1, 1])]
    pred = [_d([[0, 0, 10, 10], [20, 0, 30, 10], [100, 0, 110, 10], [40, 0, 50, 10]], cls=[0, 0, 1, 1], score=[0.9, 0.8, 0.7, 0.1])]
    r = confusion_matrix(gt, pred, iou=0.5, conf=0.25, num_classes=2)
    # rows true (a, b, background), columns predicted (a, b, background)
    assert r.matrix.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
    assert "background" in r.to_dict()["semantics"]


def test_default_class_names_shared() -> None:
    from sitesight.evaluation.boxtable import class_names_for
    from sitesight.evaluation.matching import table_from_detections

    gt = table_from_detections([_d([[0, 0, 10, 10]], cls=[2])], gt=True)
    pred = table_from_detections([Detections.empty()], gt=False)
    assert class_names_for(gt, pred) == ("c0", "c1", "c2")
    assert class_names_for(gt, pred, num_classes=4) == ("c0", "c1", "c2", "c3")
    assert class_names_for(gt, pred, class_names=["a"], num_classes=4) == ("a",)
    assert class_names_for(pred, pred) == ()

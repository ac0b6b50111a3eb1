"""COCO bbox stats against pycocotools on random, degenerate and real cases (|Δ| ≤ 1e-9)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.evaluation.coco import evaluate_coco, voc_ap
from sitesight.evaluation.coco_files import evaluate_coco_files

from .cocoref import coco_dicts, pycocotools_eval

TOL = 1e-9


def _case(rng: np.random.Generator, dense: bool) -> tuple[list[Detections], list[Detections], int]:
    n_img = int(rng.integers(1, 4 if dense else 5))
    k = int(rng.integers(1, 3 if dense else 4))
    gts, preds = [], []
    grid = rng.random() < 0.5
    for _ in range(n_img):
        ng = int(rng.integers(0, 30 if dense else 9))
        npd = int(rng.integers(0, 60 if dense else 25))

        def boxes(n: int) -> np.ndarray:
            if grid:  # integer grid: touching boxes, zero-size boxes, IoU exactly at thresholds
                xy = rng.integers(0, 6, (n, 2)) * 10
                wh = rng.choice([0, 10, 20, 40], (n, 2)) if dense else rng.choice([10, 20, 40, 120], (n, 2))
            else:
                xy = rng.random((n, 2)) * 150
                wh = rng.random((n, 2)) * rng.choice([30, 120])
            return np.c_[xy, xy + wh].astype(np.float32)

        g = boxes(ng)
        if ng and not dense:  # predictions near ground truth
            jitter = g[rng.integers(0, ng, npd)] + rng.integers(-6, 7, (npd, 4))
            p = np.where(rng.random((npd, 1)) < 0.7, jitter, boxes(npd)).astype(np.float32)
            p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        else:
            p = boxes(npd)
        crowd = (rng.random(ng) < (0.3 if dense else 0.1)).astype(np.int64)
        gts.append(Detections(xyxy=g, class_id=rng.integers(0, k, ng), attributes={"iscrowd": crowd}))
        score = np.round(rng.random(npd), 1) if rng.random() < 0.7 else np.full(npd, 0.5)  # ties
        preds.append(Detections(xyxy=p, score=score, class_id=rng.integers(0, k, npd)))
    return gts, preds, k


def _compare(gts: list[Detections], preds: list[Detections], k: int, max_dets=(1, 10, 100), **kw) -> None:
    gd, res = coco_dicts(gts, preds, k)
    ref = pycocotools_eval(gd, res, max_dets=max_dets)
    ours = evaluate_coco(gts, preds, class_names=[f"c{i}" for i in range(k)], max_dets=max_dets, **kw)
    np.testing.assert_allclose(ours.stats, ref.stats, atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=TOL, rtol=0)


@pytest.mark.parametrize("seed", range(150))
def test_random_near_gt(seed: int) -> None:
    gts, preds, k = _case(np.random.default_rng(seed), dense=False)
    _compare(gts, preds, k, max_dets=[(1, 10, 100), (1, 2, 5), (1, 3, 10)][seed % 3])


@pytest.mark.parametrize("seed", range(150))
def test_random_dense_crowd_ties(seed: int) -> None:
    gts, preds, k = _case(np.random.default_rng(10_000 + seed), dense=True)
    _compare(gts, preds, k, max_dets=[(1, 10, 100), (1, 2, 5), (1, 3, 10)][seed % 3])


def _d(xyxy, cls=None, score=None, crowd=None) -> Detections:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    attrs = {} if crowd is None else {"iscrowd": np.asarray(crowd)}
    return Detections(xyxy=xyxy, class_id=cls, score=score, attributes=attrs)


def test_degenerate_cases() -> None:
    empty = _d(np.zeros((0, 4)))
    one = _d([[0, 0, 10, 10]])
    pred = _d([[0, 0, 10, 10]], score=[0.9])
    # no boxes at all
    r = evaluate_coco([empty, empty], [empty, empty], class_names=["a"])
    assert np.all(r.stats == -1)
    _compare([empty, empty], [empty, empty], 1)
    _compare([one], [empty], 1)  # no predictions
    _compare([empty], [pred], 1)  # no ground truth
    _compare([_d([[0, 0, 10, 10]], crowd=[1])], [pred], 1)  # crowd only
    # touching boxes (IoU 0), ties in score, several predictions on one crowd region
    _compare([_d([[0, 0, 10, 10], [10, 0, 20, 10]])], [_d([[10, 0, 20, 10], [0, 0, 10, 10], [20, 0, 30, 10]], score=[0.5, 0.5, 0.5])], 1)
    _compare(
        [_d([[0, 0, 100, 100], [5, 5, 15, 15]], crowd=[1, 0])],
        [_d([[0, 0, 10, 10], [2, 2, 12, 12], [50, 50, 60, 60], [5, 5, 15, 15]], score=[0.9, 0.8, 0.7, 0.6])],
        1,
    )
    # IoU exactly 0.5 and 0.75
    _compare([_d([[0, 0, 20, 10], [0, 0, 40, 10]])], [_d([[0, 0, 10, 10], [0, 0, 30, 10]], score=[0.3, 0.2])], 1)
    for md in [(1, 10, 100), (1, 1, 1), (2, 5, 20), (1, 10, 100, 300)]:
        _compare([one, one], [_d([[0, 0, 10, 10], [1, 1, 9, 9]], score=[0.4, 0.8])] * 2, 1, max_dets=md)


def test_iou_list_area_ranges_and_real_area_field() -> None:
    rng = np.random.default_rng(7)
    gts, preds, k = _case(rng, dense=False)
    gd, res = coco_dicts(gts, preds, k)
    ious = [0.3, 0.5, 0.9]
    ranges = {"all": (0, 1e10), "tiny": (0, 100), "rest": (100, 1e10)}
    ref = pycocotools_eval(gd, res, iou_thresholds=ious, area_ranges=[list(v) for v in ranges.values()])
    ours = evaluate_coco(gts, preds, class_names=[f"c{i}" for i in range(k)], iou_thresholds=ious, area_ranges=ranges)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)
    # relative ranges on 2000x2000 frames equal absolute ranges scaled by the frame area
    rel = {"all": (0, 1e10 / 4e6), "tiny": (0, 100 / 4e6), "rest": (100 / 4e6, 1e10 / 4e6)}
    ours_rel = evaluate_coco(gts, preds, class_names=[f"c{i}" for i in range(k)], iou_thresholds=ious, area_ranges=rel, frame_wh=[(2000, 2000)] * len(gts))
    np.testing.assert_allclose(ours_rel.precision, ref.eval["precision"], atol=TOL, rtol=0)


def test_json_path_matches_pycocotools_including_area_field_and_zero_id(tmp_path: Path) -> None:
    for seed in range(20):
        rng = np.random.default_rng(500 + seed)
        gts, preds, k = _case(rng, dense=seed % 2 == 0)
        gd, res = coco_dicts(gts, preds, k)
        for i, a in enumerate(gd["annotations"]):
            a["area"] = float(a["area"] * rng.uniform(0.5, 2.0)) if i % 3 == 0 else a["area"]
            a["id"] = i  # starts at 0: pycocotools treats a match to annotation 0 as no match
        rng.shuffle(gd["images"])
        (tmp_path / "gt.json").write_text(json.dumps(gd))
        (tmp_path / "res.json").write_text(json.dumps(res))
        if not res:
            continue
        ref = pycocotools_eval(gd, res)
        ours = evaluate_coco_files(tmp_path / "gt.json", tmp_path / "res.json")
        np.testing.assert_allclose(ours.stats, ref.stats, atol=TOL, rtol=0)
        np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)


def test_real_visdrone_pair(shared_data: Path) -> None:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    folder = shared_data / "coco" / "sahi_visdrone_eval"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(folder / "dataset.json"))
        ev = COCOeval(gt, gt.loadRes(str(folder / "result.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = evaluate_coco_files(folder / "dataset.json", folder / "result.json")
    np.testing.assert_allclose(ours.stats, ev.stats, atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.precision, ev.eval["precision"], atol=TOL, rtol=0)
    assert ours.stats[1] > 0.1  # a real, non-trivial AP50


def test_bad_json_raises_input_error(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, "x", 1]}]}))
    with pytest.raises(InputError, match=r"annotations\[0\]"):
        evaluate_coco_files(gt, gt)
    gt.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": []}))
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    with pytest.raises(InputError, match=r"results\[0\].*image_id 2"):
        evaluate_coco_files(gt, res)
    res.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        evaluate_coco_files(gt, res)


def test_voc_ap_hand_computed() -> None:
    gt = [_d([[0, 0, 10, 10], [20, 0, 30, 10]]), _d([[0, 0, 10, 10]])]
    # image 0: TP (0.9), FP (0.8); image 1: TP (0.7); 3 GT → recall 1/3, 1/3, 2/3
    pred = [_d([[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.9, 0.8]), _d([[0, 0, 10, 10]], score=[0.7])]
    all_point = voc_ap(gt, pred)["c0"]
    assert all_point == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    eleven = voc_ap(gt, pred, eleven_point=True)["c0"]
    assert eleven == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)


def test_honour_max_dets_in_headline() -> None:
    gts, preds, k = _case(np.random.default_rng(3), dense=False)
    md = (1, 10, 300)
    gd, res = coco_dicts(gts, preds, k)
    ref = pycocotools_eval(gd, res, max_dets=md)
    plain = evaluate_coco(gts, preds, max_dets=md)
    assert plain.stats[0] == ref.stats[0] == -1  # pycocotools looks for maxDets == 100 in the headline
    honoured = evaluate_coco(gts, preds, max_dets=md, honour_max_dets=True)
    p = ref.eval["precision"][:, :, :, 0, 2]
    assert honoured.stats[0] == pytest.approx(np.mean(p[p > -1]), abs=TOL)


def test_fractional_ids_are_input_errors(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1.5}], "categories": [{"id": 1, "name": "a"}], "annotations": []}))
    with pytest.raises(InputError, match=r"images\[0\]"):
        evaluate_coco_files(gt, gt)


def test_fast_and_plain_results_readers_agree(tmp_path: Path) -> None:
    from sitesight.evaluation.coco_files import load_coco_gt, load_coco_results
    from sitesight.evaluation.coco_json import read_flat_results

    gts, preds, k = _case(np.random.default_rng(77), dense=False)
    gd, res = coco_dicts(gts, preds, k)
    (tmp_path / "gt.json").write_text(json.dumps(gd))
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps([{**r, "category_name": "x{y}"[:1], "segmentation": []} for r in res], indent=4))
    nested = tmp_path / "nested.json"  # RLE-like dicts force the plain reader
    nested.write_text(json.dumps([{**r, "segmentation": {"size": [1, 1], "counts": "0"}} for r in res]))
    assert read_flat_results(flat.read_bytes()) is not None  # extra scalar keys and [] (SAHI's shape)
    assert read_flat_results(nested.read_bytes()) is None
    gt = load_coco_gt(tmp_path / "gt.json")
    a, b = load_coco_results(flat, gt), load_coco_results(nested, gt)
    for col in ("frame", "class_id", "xyxy", "score", "area"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
    ref = pycocotools_eval(gd, res)
    np.testing.assert_allclose(evaluate_coco_files(tmp_path / "gt.json", flat).stats, ref.stats, atol=TOL, rtol=0)

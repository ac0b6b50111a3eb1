"""The sparse matching engine against pycocotools' per-image matches and numpy's own sorts."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sitesight import Detections
from sitesight.evaluation.assignment import match_sparse
from sitesight.evaluation.candidates import descending_ranks, stable_order
from sitesight.evaluation.coco import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, evaluate_coco
from sitesight.evaluation.matching import match_boxes, table_from_detections

from .cocoref import coco_dicts, pycocotools_eval

TOL = 1e-9


@pytest.mark.parametrize("n_keys", [1, 7, 60_000, 3_000_000, 2**40])
def test_stable_order_equals_numpy_stable_argsort(n_keys: int) -> None:
    rng = np.random.default_rng(n_keys % 1000)
    key = rng.integers(0, n_keys, 5000) if n_keys < 2**40 else rng.integers(0, 50, 5000) * (2**34)
    np.testing.assert_array_equal(stable_order(key, n_keys), np.argsort(key, kind="stable"))


def test_descending_ranks_equal_unique_ranks() -> None:
    rng = np.random.default_rng(1)
    score = np.round(rng.random(3000), 2)
    score[:5] = np.nan
    ranks, n = descending_ranks(score)
    s = np.nan_to_num(score, nan=-np.inf)
    distinct = np.unique(s)[::-1]  # highest first
    assert n == distinct.size
    np.testing.assert_array_equal(ranks, np.searchsorted(-distinct, -s))


def _crowded(rng: np.random.Generator, n_img: int) -> tuple[list[Detections], list[Detections]]:
    """Clusters of ground truth of mixed sizes around the small/medium/large borders, with crowd,
    and predictions that overlap several of them at once (contested matches)."""
    gts, preds = [], []
    for _ in range(n_img):
        centres = rng.uniform(50, 400, (int(rng.integers(1, 4)), 2))
        g, p = [], []
        for c in centres:
            for side in rng.choice([24.0, 31.0, 33.0, 40.0, 90.0, 97.0, 110.0], int(rng.integers(2, 6))):
                xy = c + rng.normal(0, side / 6, 2)
                g.append(np.r_[xy, xy + side * rng.uniform(0.8, 1.25, 2)])
            for _ in range(int(rng.integers(3, 12))):
                base = g[int(rng.integers(len(g)))]
                p.append(base + rng.normal(0, 4, 4))
        g_arr, p_arr = np.array(g, np.float32), np.array(p, np.float32)
        p_arr[:, 2:] = np.maximum(p_arr[:, 2:], p_arr[:, :2] + 1)
        crowd = (rng.random(len(g)) < 0.15).astype(np.int64)
        gts.append(Detections(xyxy=g_arr, class_id=rng.integers(0, 2, len(g)), attributes={"iscrowd": crowd}))
        score = np.round(rng.random(len(p)), 1)
        preds.append(Detections(xyxy=p_arr, class_id=rng.integers(0, 2, len(p)), score=score))
    return gts, preds


@pytest.mark.parametrize("seed", range(12))
def test_contested_matches_and_per_range_rematch_equal_pycocotools(seed: int) -> None:
    gts, preds = _crowded(np.random.default_rng(seed), 6)
    gd, res = coco_dicts(gts, preds, 2)
    ref = pycocotools_eval(gd, res, max_dets=(1, 3, 100))
    ours = evaluate_coco(gts, preds, class_names=["c0", "c1"], max_dets=(1, 3, 100))
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.stats, ref.stats, atol=TOL, rtol=0)


def test_crowded_cases_exercise_the_rematch_path() -> None:
    """At least one of the cases above is matched differently per area range (not only shared)."""
    differs = 0
    for seed in range(12):
        gts, preds = _crowded(np.random.default_rng(seed), 6)
        gt, pred = table_from_detections(gts, gt=True), table_from_detections(preds, gt=False)
        ranges = np.array(list(COCO_AREA_RANGES.values()))
        m = match_sparse(gt, pred, num_classes=2, n_images=6, iou_thresholds=COCO_IOU_THRESHOLDS,
                         area_lo=ranges[:, :1], area_hi=ranges[:, 1:], max_det=100)
        differs += int(np.any(m.entry_gt != m.entry_gt[:1]))
    assert differs >= 3


def _eval_imgs(gts: list[Detections], preds: list[Detections], k: int) -> COCOeval:
    gd, res = coco_dicts(gts, preds, k)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gd
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(res), "bbox")
        ev.evaluate()
    return ev


@pytest.mark.parametrize("seed", range(8))
def test_match_boxes_equals_pycocotools_dt_matches(seed: int) -> None:
    """Per prediction, threshold and area range: the matched annotation and the ignore flag."""
    gts, preds = _crowded(np.random.default_rng(100 + seed), 4)
    ev = _eval_imgs(gts, preds, 2)
    gt, pred = table_from_detections(gts, gt=True), table_from_detections(preds, gt=False)
    ranges = np.array(list(COCO_AREA_RANGES.values()))
    n = len(gts)
    m = match_boxes(gt, pred, iou_thresholds=COCO_IOU_THRESHOLDS, area_lo=np.repeat(ranges[:, :1], n, 1),
                    area_hi=np.repeat(ranges[:, 1:], n, 1), max_det=100)
    position = {int(row): i for i, row in enumerate(m.pred_index)}
    checked = 0
    for e in ev.evalImgs:
        if e is None:
            continue
        a = [tuple(r) for r in ev.params.areaRng].index(tuple(e["aRng"]))
        for col, dt_id in enumerate(e["dtIds"]):
            d = position[dt_id - 1]  # results are in table order, ids from 1
            expected_gt = e["dtMatches"][:, col].astype(np.int64) - 1  # annotation id = row + 1
            np.testing.assert_array_equal(m.pred_gt[a, :, d], expected_gt)
            np.testing.assert_array_equal(m.pred_ignored[a, :, d], e["dtIgnore"][:, col].astype(bool))
            checked += 1
    assert checked > 100


def test_unsorted_and_repeated_iou_thresholds_equal_pycocotools() -> None:
    gts, preds = _crowded(np.random.default_rng(42), 5)
    gd, res = coco_dicts(gts, preds, 2)
    ious = [0.9, 0.5, 0.75, 0.5, 0.3, 1.0]
    ref = pycocotools_eval(gd, res, iou_thresholds=ious)
    ours = evaluate_coco(gts, preds, class_names=["c0", "c1"], iou_thresholds=ious)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=TOL, rtol=0)

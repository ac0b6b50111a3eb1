"""The sweep's shortcuts give exactly what the plain per-confidence, per-frame computation gives.

References: `sitesight.sliced.merge.merge` run on ``drop_cut_twins(raw, conf)`` for every confidence
(merge is parity-tested against SAHI in tests/test_merge.py), `sitesight.sliced.gate.gate_mask` frame by
frame, and `sitesight.evaluation.detection.operating_point` (parity-tested against pycocotools).
"""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Detections
from sitesight.evaluation.detection import operating_point
from sitesight.frametable import FrameTable
from sitesight.sliced.border import MergeSpec, annotate_border, drop_cut_twins, merge_by_confidence, postprocess_frame
from sitesight.sliced.gate import GateParams, gate_candidates, gate_mask, gate_mask_frames
from sitesight.sliced.merge import merge
from sitesight.sliced.slicing import slice_grid
from sitesight.sliced.store import write_run
from sitesight.sliced.sweep import merge_grid, sweep_run

WH = (400, 300)
PARAMS = {"slice_wh": [160, 160], "overlap_ratio": [0.2, 0.2], "full_frame": True}
SLICES = slice_grid(WH, slice_wh=(160, 160), overlap_ratio=(0.2, 0.2))


def _frame(rng: np.random.Generator, n_objects: int = 12) -> tuple[Detections, Detections]:
    """Raw sliced boxes (several sightings per object, some cut at slice borders) and ground truth.

    Scores are coarse (multiples of 0.05) so that ties, which decide SAHI's visiting order, abound.
    """
    xy = rng.uniform(0, 340, (n_objects, 2)).round()
    wh = rng.uniform(10, 50, (n_objects, 2)).round()
    gt_xyxy = np.concatenate([xy, np.minimum(xy + wh, [WH[0], WH[1]])], axis=1)
    gt_cls = rng.integers(0, 2, n_objects)
    boxes, scores, classes, sources = [], [], [], []
    for box, cls in zip(gt_xyxy, gt_cls, strict=True):
        base = rng.uniform(0.1, 0.95)
        for _ in range(rng.integers(1, 5)):
            src = int(rng.integers(-1, len(SLICES)))
            b = box + rng.normal(0, 2, 4).round(1)
            if src >= 0 and rng.random() < 0.4:  # cut by its slice's border
                s = SLICES[src]
                b = np.array([max(b[0], s[0]), max(b[1], s[1]), min(b[2], s[2]), min(b[3], s[3])])
            if b[2] - b[0] < 2 or b[3] - b[1] < 2:
                continue
            boxes.append(b)
            scores.append(np.clip(np.round((base + rng.normal(0, 0.1)) * 20) / 20, 0.05, 1))
            classes.append(cls if rng.random() < 0.9 else 1 - cls)
            sources.append(src)
    for _ in range(rng.integers(2, 8)):  # background false positives
        p = rng.uniform(0, 370, 2)
        boxes.append(np.concatenate([p, p + rng.uniform(5, 30, 2)]))
        scores.append(np.round(rng.uniform(0.05, 0.6) * 20) / 20)
        classes.append(int(rng.integers(0, 2)))
        sources.append(int(rng.integers(-1, len(SLICES))))
    raw = Detections(xyxy=np.array(boxes, np.float32), score=np.array(scores, np.float32),
                     class_id=np.array(classes), attributes={"source": np.array(sources, np.int32)})
    crowd = (rng.random(n_objects) < 0.15).astype(np.int64)
    gt = Detections(xyxy=gt_xyxy, class_id=gt_cls, attributes={"iscrowd": crowd})
    return raw.clip(WH), gt


def _canvas(raws: list[Detections], agnostic: bool) -> Detections:
    parts = [annotate_border(r, SLICES, WH, class_agnostic=agnostic).with_attributes(
        frame=np.full(len(r), k, np.int64)).shift(1000.0 * k, 0.0) for k, r in enumerate(raws)]
    return Detections.concat(parts)


def _by_frame(det: Detections, k: int) -> Detections:
    return det[det.attributes["frame"] == k]


@pytest.mark.parametrize("method", ["nms", "greedy_nmm", "nmm"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_merge_by_confidence_equals_merging_at_each_confidence(method, metric):
    rng = np.random.default_rng(11)
    raws = [_frame(rng)[0] for _ in range(8)]
    confs = [0.35, 0.1, 0.5, 0.25, 0.8]
    brought_back = 0
    for agnostic in (False, True):
        canvas = _canvas(raws, agnostic)
        cut, twin = canvas.attributes["border_cut"], canvas.attributes["twin_score"]
        for threshold in (0.3, 0.5, 0.8):
            spec = MergeSpec(method, metric, threshold, agnostic)
            got = merge_by_confidence(canvas, confs, spec)
            for conf, det in zip(confs, got, strict=True):
                brought_back += int((cut & (canvas.score >= conf) & (twin >= min(confs)) & (twin < conf)).sum())
                kept = drop_cut_twins(canvas, conf)
                want = merge(kept.replace(attributes={"frame": kept.attributes["frame"]}), method=method,
                             metric=metric, threshold=threshold, class_agnostic=agnostic)
                assert len(det) == len(want)
                for k in range(len(raws)):
                    a, b = _by_frame(det, k), _by_frame(want, k)
                    np.testing.assert_array_equal(a.xyxy, b.xyxy)
                    np.testing.assert_array_equal(a.score, b.score)
                    np.testing.assert_array_equal(a.class_id, b.class_id)
    assert brought_back > 0  # the border-rule case (frames merged again) was exercised


def test_merge_by_confidence_class_rule_on_tied_members():
    # keeper and two members with the keeper's score but another class: SAHI's class rule gives the
    # output the class of the last tied member merged (visiting order: x1, y1, x2, y2 ascending)
    det = Detections(xyxy=[[10, 10, 50, 50], [12, 10, 50, 50], [11, 10, 50, 50], [10, 10, 49, 50]],
                     score=[0.6, 0.6, 0.6, 0.3], class_id=[0, 1, 2, 0],
                     attributes={"frame": np.zeros(4, np.int64)})
    for conf in (0.2, 0.5):
        got = merge_by_confidence(det, [0.2, conf], MergeSpec("greedy_nmm", "iou", 0.5, True))[1]
        want = merge(det[det.score >= conf], method="greedy_nmm", metric="iou", threshold=0.5, class_agnostic=True)
        assert got.class_id.tolist() == want.class_id.tolist() == [1]
        np.testing.assert_array_equal(got.xyxy, want.xyxy)


def test_gate_mask_frames_equals_gate_mask_frame_by_frame():
    rng = np.random.default_rng(3)
    dets, fulls = [], []
    for _ in range(10):
        dets.append(_frame(rng)[0].replace(attributes={}))
        fulls.append(_frame(rng, 6)[0].replace(attributes={}))
    det, full = Detections.concat(dets), Detections.concat(fulls)
    det_frame = np.repeat(np.arange(10), [len(d) for d in dets])
    full_frame = np.repeat(np.arange(10), [len(f) for f in fulls])
    kept_some = []
    for params in (GateParams(40, 0.2), GateParams(5, 0.5, 0.9), GateParams(0, 0.3, 0.5, True),
                   GateParams(-20, 0.1, 0.0), GateParams(25, 0.2, 0.0, True), GateParams(30, 2.0)):
        got = gate_mask_frames(FrameTable(det_frame, det, 10), gate_candidates(FrameTable(full_frame, full, 10), params))
        want = np.concatenate([gate_mask(d, f, r=params.r, conf=params.conf, ios=params.ios,
                                         class_agnostic=params.class_agnostic) for d, f in zip(dets, fulls, strict=True)])
        np.testing.assert_array_equal(got, want, err_msg=str(params))
        kept_some.append(0 < want.sum() < len(want))
    assert sum(kept_some) >= 3  # the ios > 0 settings keep some boxes and remove others


@pytest.mark.parametrize("iou", [0.5, 0.0])
def test_sweep_equals_per_frame_postprocessing_and_operating_point(tmp_path, iou):
    rng = np.random.default_rng(7)
    pairs = [_frame(rng) for _ in range(6)]
    raws, gts = [p[0] for p in pairs], [p[1] for p in pairs]
    run = write_run(tmp_path / "run", [(f"{i}.png", WH) for i in range(6)], raws, model="random", parameters=PARAMS)
    merges = merge_grid(["nms", "greedy_nmm", "nmm"], ["iou", "ios"], [0.5])
    gates = [None, GateParams(r=30, conf=0.3), GateParams(r=10, conf=0.5, ios=0.8, class_agnostic=True)]
    confs = [0.3, 0.15, 0.45]
    result = sweep_run(run, gts, merges=merges, confs=confs, gates=gates, num_classes=2, iou=iou)
    assert len(result.rows) == len(merges) * len(gates) * len(confs)
    for row in result.rows:
        spec = MergeSpec(row.method, row.metric, row.threshold)
        g = next(x for x in gates if (str(x) if x else "") == row.gate)
        done = [postprocess_frame(r, SLICES, WH, conf=row.conf, merge_spec=spec, gate=g) for r in run.raw]
        op = operating_point(gts, [d for d, _ in done], iou=iou, conf=0.0, num_classes=2)
        assert (row.tp, row.fp, row.fn, row.gate_removed) == (op.tp, op.fp, op.fn, sum(n for _, n in done)), row


def test_sweep_with_empty_frames_and_no_ground_truth(tmp_path):
    empty = Detections.empty().with_attributes(source=np.zeros(0, np.int32))
    raw = Detections(xyxy=[[10, 10, 40, 60], [12, 10, 40, 60]], score=[0.9, 0.4], class_id=[1, 1],
                     attributes={"source": np.array([0, -1], np.int32)})
    run = write_run(tmp_path / "run", [("a.png", WH), ("b.png", WH)], [empty, raw], model="m", parameters=PARAMS)
    gts = [Detections.empty(), Detections(xyxy=[[10, 10, 40, 60]], class_id=[1])]
    result = sweep_run(run, gts, merges=merge_grid(["nms", "greedy_nmm", "nmm"], ["iou"], [0.5]), confs=[0.3, 0.95],
                       gates=[None, GateParams(r=5, conf=0.3)], num_classes=2)
    counts = {(r.method, r.conf, r.gate != ""): (r.tp, r.fp, r.fn, r.gate_removed) for r in result.rows}
    assert counts[("nms", 0.3, False)] == (1, 0, 0, 0)
    assert counts[("greedy_nmm", 0.3, True)] == (1, 0, 0, 0)  # the full-frame box (0.4) vouches
    assert counts[("nmm", 0.95, False)] == (0, 0, 1, 0)
    nothing = sweep_run(run, [Detections.empty(), Detections.empty()], merges=merge_grid(["nms"], ["iou"], [0.5]),
                        confs=[0.99], gates=[None, GateParams()], num_classes=2)
    assert [(r.tp, r.fp, r.fn, r.gate_removed) for r in nothing.rows] == [(0, 0, 0, 0), (0, 0, 0, 0)]

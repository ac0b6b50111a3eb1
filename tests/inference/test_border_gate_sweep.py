"""Border-cut rule, score fusion, gate and sweep on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Detections
from sitesight.sliced.border import MergeSpec, annotate_border, border_cut_mask, fuse_scores, postprocess_frame
from sitesight.sliced.gate import GateParams, gate, parse_gate
from sitesight.sliced.store import write_run
from sitesight.sliced.sweep import merge_grid, parse_range, sweep_run

SLICES = np.array([[0, 0, 100, 100], [80, 0, 180, 100]])  # two slices side by side, 20 px overlap
WH = (180, 100)


def test_border_cut_only_on_inner_slice_borders():
    raw = Detections(
        xyxy=[[60, 10, 100, 50],   # slice 0, touches its right border (x=100 is inside the frame): cut
              [0, 10, 30, 50],     # slice 0, touches x=0 which is the frame border: not cut
              [80, 60, 120, 100],  # slice 1, touches its left border x=80 (cut) and the frame bottom
              [60, 10, 110, 50],   # full frame: never cut
              [90, 10, 120, 50]],  # slice 1, interior
        attributes={"source": [0, 0, 1, -1, 1]},
    )
    assert border_cut_mask(raw, SLICES, WH).tolist() == [True, False, True, False, False]


def test_cut_box_loses_to_its_uncut_twin_where_plain_nms_keeps_both():
    # a worker at x 60..110 crosses slice 0's right border: slice 0 sees the cut part 60..100,
    # the full-frame pass sees it whole. IoU(cut, whole) = 0.8, so NMS@0.9 alone keeps both.
    raw = Detections(xyxy=[[60, 10, 100, 50], [60, 10, 110, 50]], score=[0.9, 0.8], class_id=[0, 0],
                     attributes={"source": np.array([0, -1], np.int32)})
    spec = MergeSpec("nms", "iou", 0.9)
    plain, _ = postprocess_frame(raw, SLICES, WH, conf=0.1, merge_spec=spec, border=False)
    assert len(plain) == 2
    fixed, _ = postprocess_frame(raw, SLICES, WH, conf=0.1, merge_spec=spec)
    np.testing.assert_array_equal(fixed.xyxy, [[60, 10, 110, 50]])
    assert fixed.score.tolist() == pytest.approx([0.8])
    # once the twin falls below the confidence threshold the cut box is all there is: it is kept
    alone, _ = postprocess_frame(raw, SLICES, WH, conf=0.85, merge_spec=spec)
    np.testing.assert_array_equal(alone.xyxy, [[60, 10, 100, 50]])
    annotated = annotate_border(raw, SLICES, WH)
    assert annotated.attributes["twin_score"].tolist() == pytest.approx([0.8, -1.0])


def test_score_fusion_by_hand():
    # box inside the overlap 80..100: both slices and the full frame could see it (m = 3)
    merged = Detections(xyxy=[[82, 10, 98, 40], [10, 10, 20, 20]], score=[0.6, 0.6], class_id=[0, 0])
    raw = Detections(xyxy=[[82, 10, 98, 40], [83, 11, 98, 40], [10, 10, 20, 20]], score=[0.6, 0.5, 0.6],
                     class_id=[0, 0, 0], attributes={"source": [0, 1, 0]})
    fused = fuse_scores(merged, raw, SLICES, weight=0.5, full_frame=True)
    # k = 2 of m = 3 agree: 0.6 + 0.5 * 0.4 * (1 / 2) = 0.7; the second box has k = 1: unchanged
    assert fused.score.tolist() == pytest.approx([0.7, 0.6])


def test_gate_by_hand():
    sliced = Detections(xyxy=[[100, 100, 120, 150], [300, 300, 310, 320], [900, 50, 920, 90], [505, 505, 515, 515]],
                        score=[0.8, 0.7, 0.7, 0.9], class_id=[0, 0, 0, 1])
    full = Detections(xyxy=[[130, 110, 150, 160], [280, 280, 340, 340], [890, 40, 930, 100], [500, 500, 520, 520]],
                      score=[0.25, 0.3, 0.1, 0.9], class_id=[0, 0, 0, 0])
    result = gate(sliced, full, r=40, conf=0.2)
    # 1: centres 30 px apart (kept); 2: inside a candidate (IoS 1, kept); 3: its candidate scores 0.1 < 0.2;
    # 4: the only candidate near it is another class
    assert result.removed == 2 and len(result.kept) == 2
    assert gate(sliced, full, r=40, conf=0.2, class_agnostic=True).removed == 1
    assert gate(sliced, full, r=20, conf=0.2, ios=1.1).removed == 3
    assert parse_gate("r=40,conf=0.2") == GateParams(40, 0.2)
    with pytest.raises(ValueError, match="expected r="):
        parse_gate("radius=3")


def test_parse_range():
    assert parse_range("0.15:0.5:0.05") == pytest.approx([0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
    assert parse_range("0.3,0.4") == [0.3, 0.4]
    with pytest.raises(ValueError):
        parse_range("1:2:0")


def test_sweep_counts_by_hand(tmp_path):
    # frame 0: GT at 10..30; raw: a true box (0.9), a duplicate shifted (0.6), a false positive (0.4)
    # frame 1: GT at 70..110; raw: a box cut by slice 0's right border (0.7), its uncut twin from the
    # full-frame pass (0.5) and a weaker full-frame box (0.3)
    gt = [Detections(xyxy=[[10, 10, 30, 30]]), Detections(xyxy=[[70, 20, 110, 60]])]
    raw = [
        Detections(xyxy=[[10, 10, 30, 30], [12, 10, 32, 30], [140, 70, 160, 90]], score=[0.9, 0.6, 0.4],
                   attributes={"source": np.array([0, 0, 1], np.int32)}),
        Detections(xyxy=[[70, 20, 100, 60], [70, 20, 110, 60], [72, 22, 108, 58]], score=[0.7, 0.5, 0.3],
                   attributes={"source": np.array([0, -1, -1], np.int32)}),
    ]
    run = write_run(tmp_path / "run", [("a.png", WH), ("b.png", WH)], raw, model="hand",
                    parameters={"slice_wh": [100, 100], "overlap_ratio": [0.2, 0.2], "full_frame": True})
    result = sweep_run(run, gt, merges=merge_grid(["nms"], ["iou"], [0.5]), confs=[0.35, 0.55],
                       gates=[None, GateParams(r=10, conf=0.25)], num_classes=1)
    rows = {(r.conf, r.gate != ""): r for r in result.rows}
    # conf 0.35, no gate: frame 0 → TP + FP (the 0.4 box; the duplicate is suppressed by NMS, IoU 0.82);
    # frame 1 → the cut box loses to its twin (0.5 >= 0.35): TP. Total TP 2, FP 1, FN 0.
    r = rows[(0.35, False)]
    assert (r.tp, r.fp, r.fn) == (2, 1, 0) and r.f1 == pytest.approx(0.8)
    # conf 0.55: frame 1's twin (0.5) is gone, the cut box (IoU 0.75 with GT) stays: TP 2, FP 0
    r = rows[(0.55, False)]
    assert (r.tp, r.fp, r.fn) == (2, 0, 0)
    # gate r=10 over full-frame candidates >= 0.25: only frame 1 has one; frame 0 loses everything
    r = rows[(0.35, True)]
    assert (r.tp, r.fp, r.fn, r.gate_removed) == (1, 0, 1, 2)
    assert result.rows[result.best].conf == 0.55 and result.rows[result.best].gate == ""
    path = result.save(tmp_path / "sweep.csv")
    assert path.read_text().splitlines()[0].endswith(",best")


def test_sweep_canvas_equals_per_frame_postprocessing(tmp_path):
    from sitesight.evaluation.detection import operating_point
    from sitesight.sliced.slicing import slice_grid

    rng = np.random.default_rng(5)
    wh = (400, 300)
    raws, gts = [], []
    for _ in range(6):
        n = 40
        xy = rng.uniform(0, 360, (n, 2)).round(1)
        size = rng.uniform(8, 40, (n, 2)).round(1)
        xyxy = np.concatenate([xy, xy + size], axis=1)
        raws.append(Detections(xyxy=xyxy, score=rng.uniform(0.05, 1, n).round(3), class_id=rng.integers(0, 2, n),
                               attributes={"source": rng.integers(-1, 6, n).astype(np.int32)}))
        gts.append(Detections(xyxy=xyxy[:15] + rng.normal(0, 2, (15, 4)), class_id=raws[-1].class_id[:15]))
    params = {"slice_wh": [160, 160], "overlap_ratio": [0.2, 0.2], "full_frame": True}
    run = write_run(tmp_path / "run", [(f"{i}.png", wh) for i in range(6)], raws, model="random", parameters=params)
    merges = merge_grid(["nms", "nmm", "greedy_nmm"], ["iou", "ios"], [0.3, 0.5])
    gates = [None, GateParams(r=30, conf=0.3)]
    result = sweep_run(run, gts, merges=merges, confs=[0.2, 0.5], gates=gates, num_classes=2)
    slices = slice_grid(wh, slice_wh=(160, 160), overlap_ratio=(0.2, 0.2))
    for row in result.rows:
        spec = MergeSpec(row.method, row.metric, row.threshold)
        g = gates[1] if row.gate else None
        preds = [postprocess_frame(r, slices, wh, conf=row.conf, merge_spec=spec, gate=g)[0] for r in run.raw]
        op = operating_point(gts, preds, iou=0.5, conf=0.0, num_classes=2)
        assert (row.tp, row.fp, row.fn) == (op.tp, op.fp, op.fn), row

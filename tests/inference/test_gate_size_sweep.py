"""Done-when: on frames where the full-frame pass misses persons under 32 px, the sweep finds a
size-bounded gate that beats both no gate and the unbounded gate, and reports the gate's effect per
object size. The truth is known by construction: which sliced boxes are real, which are slice-only
false positives, and which of them the full-frame pass saw."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco
from sitesight.sliced.gate import GateParams, size_bucket_names
from sitesight.sliced.slicing import slice_grid
from sitesight.sliced.store import write_run
from sitesight.sliced.sweep import merge_grid, sweep_run

WH = (1920, 1080)
PARAMS = {"slice_wh": [640, 640], "overlap_ratio": [0.2, 0.2], "full_frame": True}
SLICES = slice_grid(WH, slice_wh=(640, 640), overlap_ratio=(0.2, 0.2))
N_FRAMES, LARGE, SMALL, LARGE_FP, SMALL_FP = 8, 5, 5, 4, 1


def _inside_slice(box: np.ndarray) -> int:
    """Index of a slice that contains the box entirely (the box is placed so one exists)."""
    ok = (SLICES[:, 0] <= box[0]) & (SLICES[:, 1] <= box[1]) & (SLICES[:, 2] >= box[2]) & (SLICES[:, 3] >= box[3])
    return int(np.flatnonzero(ok)[0])


def _frame(rng: np.random.Generator) -> tuple[Detections, Detections]:
    """``(raw boxes with source, ground truth)``; objects on a coarse grid so that none overlap."""
    cells = rng.permutation(12 * 6)[: LARGE + SMALL + LARGE_FP + SMALL_FP]
    boxes, heights = [], [*rng.uniform(70, 140, LARGE), *rng.uniform(18, 30, SMALL), *rng.uniform(45, 120, LARGE_FP),
                          *rng.uniform(18, 28, SMALL_FP)]
    for cell, h in zip(cells, heights, strict=True):
        x0, y0 = (cell % 12) * 160 + 10, (cell // 12) * 180 + 10
        boxes.append([x0, y0, x0 + 0.45 * h, y0 + h])
    boxes = np.array(boxes, np.float32)
    real = np.arange(len(boxes)) < LARGE + SMALL
    seen_full = np.arange(len(boxes)) < LARGE  # the full-frame pass sees only the large persons
    sliced = Detections(xyxy=boxes, score=np.where(real, 0.8, 0.6), class_id=np.zeros(len(boxes), np.int64),
                        attributes={"source": np.array([_inside_slice(b) for b in boxes], np.int32)})
    full = Detections(xyxy=boxes[seen_full] + 2, score=np.full(int(seen_full.sum()), 0.35), class_id=np.zeros(int(seen_full.sum()), np.int64),
                      attributes={"source": np.full(int(seen_full.sum()), -1, np.int32)})
    return Detections.concat([sliced, full]), Detections(xyxy=boxes[real], class_id=np.zeros(int(real.sum()), np.int64))


@pytest.fixture(scope="module")
def run_and_gt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate")
    rng = np.random.default_rng(5)
    frames = [_frame(rng) for _ in range(N_FRAMES)]
    keys = [str(tmp / "frames" / f"f{i}.jpg") for i in range(N_FRAMES)]
    run = write_run(tmp / "run", [(k, WH) for k in keys], [f[0] for f in frames], model="synthetic", parameters=PARAMS,
                    class_names=["person"])
    return tmp, run, keys, [f[1] for f in frames]


def test_size_bounded_gate_beats_no_gate_and_unbounded_gate(run_and_gt):
    _, run, _, gts = run_and_gt
    plain, bounded = GateParams(r=40, conf=0.2), GateParams(r=40, conf=0.2, min_size=32)
    result = sweep_run(run, gts, merges=merge_grid(["nms"], ["iou"], [0.5]), confs=[0.3], gates=[None, plain, bounded],
                       class_names=["person"])
    rows = {r.gate: r for r in result.rows}
    none, full, sized = rows[""], rows[str(plain)], rows[str(bounded)]
    n_real, n_fp = N_FRAMES * (LARGE + SMALL), N_FRAMES * (LARGE_FP + SMALL_FP)
    assert (none.tp, none.fp, none.fn) == (n_real, n_fp, 0)
    # the unbounded gate removes every slice-only box: the false positives and the small persons with them
    assert (full.tp, full.fp) == (N_FRAMES * LARGE, 0)
    # the size-bounded gate judges only boxes of 32 px and up: large false positives go, small persons stay
    assert (sized.tp, sized.fp) == (n_real, N_FRAMES * SMALL_FP)
    assert sized.f1 > max(none.f1, full.f1) and result.rows[result.best] == sized
    # effect per size bucket, by construction: small persons (18-30 px) are the unbounded gate's cost
    buckets = size_bucket_names()
    effect = {result.rows[i].gate: e for i, e in result.gate_effect.items()}
    small = buckets.index("16-32 px")
    assert effect[str(plain)][small].tolist() == [N_FRAMES * SMALL, N_FRAMES * SMALL_FP]
    assert effect[str(bounded)][small].tolist() == [0, 0]
    assert effect[str(bounded)][:, 0].sum() == 0 and effect[str(bounded)][:, 1].sum() == N_FRAMES * LARGE_FP
    assert (full.gate_tp_removed, full.gate_fp_removed) == (N_FRAMES * SMALL, n_fp)
    assert "" not in effect  # no gate, no effect


def test_cli_sweep_parses_size_bounds_and_prints_the_effect(run_and_gt, capsys):
    tmp, _, keys, gts = run_and_gt
    dataset = Dataset(class_names=("person",), samples=tuple(Sample(path=k, image_wh=WH, gt=g) for k, g in zip(keys, gts, strict=True)))
    labels = write_coco(dataset, tmp / "gt.json")
    code = main(["sweep", str(tmp / "run"), "--gt", str(labels), "--method", "nms", "--metric", "iou", "--threshold", "0.5",
                 "--conf", "0.3", "--gate", "r=40,conf=0.2", "--gate", "r=40,conf=0.2,min=32", "--out", str(tmp / "sweep.json")])
    assert code == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "gate effect per object size" in printed and "16-32 px" in printed
    assert "gate r=40,conf=0.2,ios=0.5,min=32" in printed  # the best row is the size-bounded gate
    assert f"{N_FRAMES * SMALL} / {N_FRAMES * SMALL_FP}" in printed  # the unbounded gate's cost among small boxes

"""The gate's size bounds: by hand, parsed from the CLI form, and equal between the per-frame and the
many-frame implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sitesight import Detections
from sitesight.frametable import FrameTable
from sitesight.sliced.gate import (
    GateParams,
    gate,
    gate_candidates,
    gate_mask,
    gate_mask_frames,
    parse_gate,
    size_bucket,
    size_bucket_names,
    size_exempt,
)


def test_parse_gate_sizes_pixels_fractions_and_percent():
    g = parse_gate("r=40,conf=0.2,min=32")
    assert (g.r, g.conf, g.min_size, g.max_size) == (40, 0.2, 32, math.inf) and g.size_bounded
    assert parse_gate("r=40,conf=0.2,min=2%,max=0.5").min_size == pytest.approx(0.02)
    assert parse_gate("r=40,conf=0.2,min=2%,max=0.5").max_size == 0.5
    assert parse_gate(str(GateParams(min_size=32, max_size=400))) == GateParams(min_size=32, max_size=400)
    assert not parse_gate("r=40,conf=0.2").size_bounded and str(parse_gate("r=40,conf=0.2")) == "r=40,conf=0.2,ios=0.5"
    for bad in ("r=40,min=x", "r=40,size=3", "min=150%", "min=-1"):
        with pytest.raises(ValueError):
            parse_gate(bad)


def test_size_exempt_by_hand():
    # longer sides: 10, 31.9, 32, 100, 500
    xyxy = np.array([[0, 0, 10, 4], [0, 0, 5, 31.9], [0, 0, 32, 8], [0, 0, 100, 100], [0, 0, 500, 10]], np.float32)
    assert size_exempt(xyxy, 32, math.inf).tolist() == [True, True, False, False, False]
    assert size_exempt(xyxy, 32, 400).tolist() == [True, True, False, False, True]
    assert size_exempt(xyxy, 0.01, 0.1, long_side=1000).tolist() == [False, False, False, True, True]  # 10 px .. 100 px
    with pytest.raises(ValueError, match="frame size"):
        size_exempt(xyxy, 0.01, math.inf)
    assert size_bucket(xyxy).tolist() == [0, 1, 2, 3, 4]
    assert size_bucket_names() == ["<16 px", "16-32 px", "32-64 px", "64-128 px", ">=128 px"]


def test_size_bounded_gate_keeps_small_boxes_it_cannot_judge():
    full = Detections(xyxy=[[100, 100, 160, 260]], score=[0.5])  # the full-frame pass saw one large person
    sliced = Detections(xyxy=[[102, 98, 158, 262],  # that person, vouched for
                              [600, 600, 612, 625],  # a 25 px person only the slices saw
                              [900, 100, 960, 260]],  # a large box nothing vouches for
                        score=[0.9, 0.8, 0.7])
    assert gate(sliced, full, r=40, conf=0.2).kept.xyxy[:, 0].tolist() == [102]
    assert gate(sliced, full, r=40, conf=0.2, min_size=32).kept.xyxy[:, 0].tolist() == [102, 600]
    assert gate(sliced, full, r=40, conf=0.2, max_size=32).kept.xyxy[:, 0].tolist() == [102, 900]
    # relative: 32 px of a 1600 px wide frame is 2 %
    assert gate(sliced, full, r=40, conf=0.2, min_size=0.02, image_wh=(1600, 900)).kept.xyxy[:, 0].tolist() == [102, 600]


@pytest.mark.parametrize("params", [GateParams(min_size=32), GateParams(max_size=0.05), GateParams(min_size=0.01, max_size=200)])
def test_many_frame_gate_equals_per_frame_gate_with_size_bounds(params):
    rng = np.random.default_rng(3)
    frames, dets, fulls, whs = [], [], [], []
    for f in range(6):
        wh = (int(rng.integers(800, 2000)), int(rng.integers(600, 1200)))
        xy = rng.uniform(0, 600, (30, 2))
        size = rng.uniform(8, 150, (30, 2))
        d = Detections(xyxy=np.c_[xy, xy + size], score=rng.uniform(0.1, 1, 30), class_id=rng.integers(0, 2, 30))
        j = rng.choice(30, 10, replace=False)
        full = Detections(xyxy=d.xyxy[j] + rng.normal(0, 5, (10, 4)), score=rng.uniform(0, 1, 10), class_id=d.class_id[j])
        frames.append(np.full(30, f))
        dets.append(d)
        fulls.append((full, np.full(10, f)))
        whs.append(wh)
    want = np.concatenate([gate_mask(d, full, r=params.r, conf=params.conf, ios=params.ios, min_size=params.min_size,
                                     max_size=params.max_size, image_wh=wh) for d, (full, _), wh in zip(dets, fulls, whs, strict=True)])
    candidates = gate_candidates(FrameTable.from_frames([f for f, _ in fulls]), params)
    got = gate_mask_frames(FrameTable(np.concatenate(frames), Detections.concat(dets), len(dets)), candidates, image_wh=np.array(whs))
    assert got.tolist() == want.tolist()
    assert 0 < (~want).sum() < want.size  # the case is not trivial

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from sitesight.models.roi_head import (  # noqa: E402
    BoxExpansion,
    BoxJitter,
    RoIHeadConfig,
    build_roi_head,
    expand_person_boxes,
    jitter_person_boxes,
    roi_pool,
)


def test_roi_pool_of_a_cell_aligned_box_is_the_crop():
    # aligned=True: pixel box [s*a, s*(a+7)) spans feature cells a..a+6, one sample per bin hits cell centres
    g = torch.Generator().manual_seed(0)
    fmap = torch.randn(2, 5, 20, 30, generator=g)
    stride, a, b = 8, 3, 11  # rows from a, columns from b
    rois = torch.tensor([[1.0, stride * b, stride * a, stride * (b + 7), stride * (a + 7)]])
    pooled = roi_pool(fmap, rois, stride, output_size=7, sampling_ratio=1)
    assert torch.allclose(pooled[0], fmap[1, :, a : a + 7, b : b + 7], atol=1e-5)


def test_roi_pool_of_a_double_size_box_is_the_2x2_average():
    g = torch.Generator().manual_seed(1)
    fmap = torch.randn(1, 4, 24, 24, generator=g)
    stride, a, b = 16, 2, 5
    rois = torch.tensor([[0.0, stride * b, stride * a, stride * (b + 14), stride * (a + 14)]])
    pooled = roi_pool(fmap, rois, stride, output_size=7, sampling_ratio=2)
    crop = fmap[0, :, a : a + 14, b : b + 14]
    manual = crop.reshape(4, 7, 2, 7, 2).mean(dim=(2, 4))
    assert torch.allclose(pooled[0], manual, atol=1e-5)


def test_head_pools_the_backbone_map_once_per_frame():
    cfg = RoIHeadConfig(backbone="tiny_cnn", class_names=("unknown", "a", "b"), frame_wh=(64, 48))
    head = build_roi_head(cfg).eval()
    images = torch.randn(2, 3, 48, 64)
    rois = torch.tensor([[0, 8, 8, 32, 40], [1, 0, 0, 64, 48], [1, 16, 8, 24, 16]], dtype=torch.float32)
    calls = []
    head.backbone.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        fmap, stride = head.backbone(images)
        expected = roi_pool(fmap, rois, stride)
        assert torch.allclose(head.pooled(images, rois), expected)
        calls.clear()
        logits = head(images, rois)
    assert tuple(logits.shape) == (3, 3) and len(calls) == 1


def test_default_expansion_hand_computed():
    xyxy = np.array([[100, 100, 140, 200], [0, 500, 20, 700]], np.float32)
    out = expand_person_boxes(xyxy, BoxExpansion(), (1280, 720))
    # h=100: top -20, bottom +150 ; second box h=200: top 460, bottom 700+300 clipped to 720
    np.testing.assert_allclose(out, [[100, 80, 140, 350], [0, 460, 20, 720]])
    wide = expand_person_boxes(xyxy[:1], BoxExpansion(x=2.0, top=0, bottom=0), (1280, 720))
    np.testing.assert_allclose(wide, [[80, 100, 160, 200]])


boxes = st.tuples(
    st.floats(-50, 400), st.floats(-50, 300), st.floats(0.5, 300), st.floats(0.5, 300)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=6), st.integers(0, 2**31), st.sampled_from([(320, 240), (64, 480), (1280, 720)]))
def test_jitter_and_expansion_stay_inside_the_frame(xyxy, seed, image_wh):
    xyxy = np.asarray(xyxy, np.float32)
    w, h = image_wh
    for out in (
        jitter_person_boxes(xyxy, BoxExpansion(), BoxJitter(), image_wh, np.random.default_rng(seed)),
        expand_person_boxes(xyxy, BoxExpansion(), image_wh),
    ):
        assert out.shape == xyxy.shape and out.dtype == np.float32
        assert (out[:, [0, 2]] >= 0).all() and (out[:, [0, 2]] <= w).all()
        assert (out[:, [1, 3]] >= 0).all() and (out[:, [1, 3]] <= h).all()
    jit = jitter_person_boxes(xyxy, BoxExpansion(), BoxJitter(), image_wh, np.random.default_rng(seed))
    assert (jit[:, 2] - jit[:, 0] >= 1 - 1e-4).all() and (jit[:, 3] - jit[:, 1] >= 1 - 1e-4).all()


def test_jitter_ranges_are_respected_away_from_edges():
    rng = np.random.default_rng(0)
    xyxy = np.tile(np.array([[500, 200, 540, 300]], np.float32), (2000, 1))
    j = BoxJitter()
    out = jitter_person_boxes(xyxy, BoxExpansion(), j, (4000, 4000), rng)
    w = out[:, 2] - out[:, 0]
    # width = 40 * scale(0.7..1.4) * x(0.5..1.5)
    assert w.min() >= 40 * 0.7 * 0.5 - 1e-3 and w.max() <= 40 * 1.4 * 1.5 + 1e-3
    cx = (out[:, 0] + out[:, 2]) / 2
    assert np.abs(cx - 520).max() <= 0.2 * 40 + 1e-3 and np.abs(cx - 520).max() > 0.15 * 40
    # no jitter: identity of the expansion
    zero = BoxJitter(center=0, scale=(1, 1), x=(1, 1), top=(1, 1), bottom=(1, 1))
    np.testing.assert_allclose(
        jitter_person_boxes(xyxy[:1], BoxExpansion(), zero, (4000, 4000), rng),
        expand_person_boxes(xyxy[:1], BoxExpansion(), (4000, 4000)),
        atol=1e-4,
    )


def test_config_round_trips_through_a_dict():
    cfg = RoIHeadConfig(backbone="tiny_cnn", class_names=("unknown", "yes", "no"), frame_wh=(320, 240), expansion=BoxExpansion(top=0.5))
    import json

    assert RoIHeadConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg

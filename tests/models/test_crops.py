"""Training crops of the RoI head: windows equal slices of the letterboxed frame, rois follow them,
and a convolutional backbone sees a box the same way in the window as in the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.models.data import RoiFrameDataset, crop_window, letterbox, letterbox_window  # noqa: E402
from sitesight.models.roi_head import BoxExpansion, RoIHeadConfig, build_roi_head, expand_person_boxes  # noqa: E402


def _frame(seed: int, wh=(200, 120)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)


@pytest.mark.parametrize("frame_wh", [(200, 120), (400, 240), (300, 300)])
def test_letterbox_window_is_a_slice_of_the_letterboxed_frame(frame_wh):
    image = _frame(0)
    full, _ = letterbox(image, frame_wh)
    for window in [(0, 0, 64, 96), (150, 30, 200, 120), (frame_wh[0] - 40, frame_wh[1] - 50, frame_wh[0], frame_wh[1])]:
        got = letterbox_window(image, frame_wh, window).astype(int)
        want = full[window[1] : window[3], window[0] : window[2]].astype(int)
        assert got.shape == want.shape
        if frame_wh == (200, 120):  # no resampling: identical pixels
            np.testing.assert_array_equal(got, want)
        else:  # PIL resamples the box alone: the same pixels up to rounding and the filter's edge
            assert np.abs(got - want)[2:-2, 2:-2].max() <= 2


def test_crop_window_holds_the_roi_on_the_stride_grid_and_stays_in_the_frame():
    rng = np.random.default_rng(0)
    for _ in range(300):
        x1, y1 = rng.uniform(0, 300), rng.uniform(0, 200)
        roi = np.array([x1, y1, x1 + rng.uniform(1, 60), y1 + rng.uniform(1, 90)], np.float32)
        roi[2:] = np.minimum(roi[2:], [320, 240])
        x0, y0 = crop_window(roi, (96, 128), (320, 240), rng)
        assert x0 in (*range(0, 320 - 96 + 1, 32), 320 - 96) and y0 in (*range(0, 240 - 128 + 1, 32), 240 - 128)
        for lo, hi, start, size, limit in ((roi[0], roi[2], x0, 96, 320), (roi[1], roi[3], y0, 128, 240)):
            if hi - lo <= size - 32 or hi >= limit - 0.5 or lo <= 0.5:  # an aligned place or the frame edge holds it
                assert start <= lo and hi <= start + size, (roi, x0, y0)


def test_crop_items_one_per_box_with_the_boxes_inside():
    boxes = np.array([[20, 10, 30, 40], [35, 12, 45, 42], [150, 60, 160, 80]], np.float32)
    ds = RoiFrameDataset([_frame(1)], [boxes], [np.array([0, 1, 2])], frame_wh=(200, 120), expansion=BoxExpansion(),
                         crop_wh=(64, 110))
    assert len(ds) == 3 and [lab.tolist() for lab in ds.item_labels()] == [[0], [1], [2]]
    expanded = expand_person_boxes(boxes, BoxExpansion(), (200, 120))
    for index, anchor in enumerate(range(3)):
        image, rois, labels = ds[index]
        assert tuple(image.shape) == (3, 110, 64)
        assert anchor in labels.tolist()
        # every roi is the full-frame expanded box shifted into the window
        shifts = {tuple(np.round(expanded[k] - r.numpy(), 3)) for k, r in zip(labels.tolist(), rois, strict=True)}
        assert len(shifts) == 1
        dx, dy, dx2, dy2 = shifts.pop()
        assert (dx, dy) == (dx2, dy2) and dx == int(dx) and dy == int(dy)
    whole = RoiFrameDataset([_frame(1)], [boxes], [np.array([0, 1, 2])], frame_wh=(200, 120), expansion=BoxExpansion())
    assert len(whole) == 1 and whole.item_labels()[0].tolist() == [0, 1, 2]


def test_backbone_sees_a_box_the_same_in_the_window_and_the_frame():
    """Convolutions are translation-equivariant on the stride grid: away from the window's border
    (the receptive field of tiny_cnn is 15 px) the pooled features are the whole frame's."""
    torch.manual_seed(0)
    model = build_roi_head(RoIHeadConfig(backbone="tiny_cnn", hidden=16, reduce_channels=8)).eval()
    image = _frame(2, (256, 128))
    rois = torch.tensor([[0, 90.5, 20.0, 110.0, 100.0]])
    frame, _ = letterbox(image, (256, 128))
    window = letterbox_window(image, (256, 128), (64, 0, 160, 128))
    to = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        a = model.pooled(to(window), rois - torch.tensor([[0, 64, 0, 64, 0]]))
        b = model.pooled(to(frame), rois)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # and the dataset's crops start on that grid
    ds = RoiFrameDataset([image], [np.array([[100, 20, 116, 52]], np.float32)], [np.array([1])], frame_wh=(256, 128),
                         expansion=BoxExpansion(), crop_wh=(96, 128))
    _, crop_rois, _ = ds[0]
    full = expand_person_boxes(np.array([[100, 20, 116, 52]], np.float32), BoxExpansion(), (256, 128))
    assert float(full[0, 0] - crop_rois[0, 0]) % 32 == 0

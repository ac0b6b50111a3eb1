from __future__ import annotations

import numpy as np
import pytest

from sitesight import slice_grid

sahi_slicing = pytest.importorskip("sahi.slicing")


def _sahi_grid(image_wh, slice_wh, overlap_ratio) -> np.ndarray:
    boxes = sahi_slicing.get_slice_bboxes(
        image_height=image_wh[1],
        image_width=image_wh[0],
        slice_height=slice_wh[1],
        slice_width=slice_wh[0],
        auto_slice_resolution=False,
        overlap_height_ratio=overlap_ratio[1],
        overlap_width_ratio=overlap_ratio[0],
    )
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


SIZES = [
    (1920, 1080), (3840, 2160), (4096, 2160), (1280, 720), (640, 640), (1280, 1280), (1152, 1152),
    (100, 50), (639, 641), (641, 639), (1, 1), (7360, 4912), (5720, 7150), (2000, 3), (512, 1664),
]
SETTINGS = [
    ((640, 640), (0.2, 0.2)), ((512, 512), (0.25, 0.1)), ((640, 480), (0.0, 0.0)), ((320, 320), (0.3, 0.3)),
    ((1024, 768), (0.5, 0.75)), ((400, 300), (0.9, 0.05)), ((97, 61), (0.3, 0.7)),
]


@pytest.mark.parametrize("slice_wh,overlap_ratio", SETTINGS)
def test_slice_grid_equals_sahi_on_fixed_sizes(slice_wh, overlap_ratio):
    for image_wh in SIZES:
        ours = slice_grid(image_wh, slice_wh, overlap_ratio)
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(ours, _sahi_grid(image_wh, slice_wh, overlap_ratio), err_msg=str(image_wh))


def test_slice_grid_equals_sahi_on_random_sizes():
    rng = np.random.default_rng(0)
    for _ in range(400):
        image_wh = tuple(int(v) for v in rng.integers(1, 5000, 2))
        slice_wh = tuple(int(v) for v in rng.integers(16, 1500, 2))
        overlap_ratio = tuple(float(v) for v in np.round(rng.uniform(0, 0.95, 2), 3))
        ours = slice_grid(image_wh, slice_wh, overlap_ratio)
        np.testing.assert_array_equal(ours, _sahi_grid(image_wh, slice_wh, overlap_ratio))


def test_slice_grid_covers_the_frame_hand_computed():
    grid = slice_grid((1920, 1080))
    # x starts 0, 512, 1024, then the last window is pushed back to end at 1920.
    assert grid[:, 0].tolist() == [0, 512, 1024, 1280] * 2
    assert grid[:, 1].tolist() == [0] * 4 + [440] * 4
    assert (grid[:, 2] - grid[:, 0] == 640).all() and (grid[:, 3] - grid[:, 1] == 640).all()
    assert slice_grid((300, 200)).tolist() == [[0, 0, 300, 200]]
    assert slice_grid((0, 1080)).shape == (0, 4)


@pytest.mark.parametrize(
    "args",
    [((1920, 1080), (0, 640), (0.2, 0.2)), ((1920, 1080), (640, 640), (1.0, 0.2)),
     ((1920, 1080), (640, 640), (-0.1, 0.2)), ((-5, 1080), (640, 640), (0.2, 0.2)),
     ((1920, 1080), (640.5, 640), (0.2, 0.2)), ((1920,), (640, 640), (0.2, 0.2))],
)
def test_slice_grid_rejects_bad_arguments(args):
    with pytest.raises(ValueError, match="slice_grid"):
        slice_grid(*args)

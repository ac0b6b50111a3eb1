from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sitesight.synth.parts import PART_DEFECTS, make_parts, render_part, write_parts_dataset


def test_normal_parts_have_empty_masks_and_defects_nonempty_masks_on_the_part():
    parts = make_parts(3, 8, seed=3, image_wh=(96, 80))
    assert len(parts) == 11 and parts.labels.tolist() == [False] * 3 + [True] * 8
    assert parts.defects[3:7] == PART_DEFECTS
    for rgb, mask, kind in zip(parts.images, parts.masks, parts.defects, strict=True):
        assert rgb.shape == (80, 96, 3) and rgb.dtype == np.uint8 and mask.shape == (80, 96) and mask.dtype == bool
        if kind is None:
            assert not mask.any()
        else:
            assert 5 <= mask.sum() <= 0.2 * mask.size
            # The defect lies on the part: the tray is dark (~38), the metal much brighter around it.
            ys, xs = np.nonzero(mask)
            cy, cx = int(ys.mean()), int(xs.mean())
            assert rgb[max(0, cy - 6) : cy + 7, max(0, cx - 6) : cx + 7].mean() > 60


def test_defect_pixels_differ_from_normal_parts_statistics():
    normal = make_parts(30, 0, seed=1, image_wh=(64, 64))
    ref = np.stack(normal.images).astype(np.float64).mean(axis=0)
    spread = np.stack(normal.images).astype(np.float64).std(axis=0) + 1.0
    for kind in ("scratch", "contamination"):
        parts = make_parts(0, 6, seed=2, image_wh=(64, 64), defects=(kind,))
        z_in = [np.abs((im - ref) / spread)[m].mean() for im, m in zip(parts.images, parts.masks, strict=True)]
        z_out = [np.abs((im - ref) / spread)[~m].mean() for im, m in zip(parts.images, parts.masks, strict=True)]
        assert np.mean(z_in) > 1.5 * np.mean(z_out), kind


def test_same_seed_same_images_and_bad_arguments():
    a, b = make_parts(2, 2, seed=7, image_wh=(48, 48)), make_parts(2, 2, seed=7, image_wh=(48, 48))
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="unknown defect"):
        render_part(np.random.default_rng(0), defect="crack")
    with pytest.raises(ValueError, match="at least 32x32"):
        render_part(np.random.default_rng(0), image_wh=(16, 16))


def test_write_parts_dataset_mvtec_layout(tmp_path):
    root = write_parts_dataset(tmp_path / "p", n_train=3, n_test_normal=2, n_test_defect=4, seed=0, image_wh=(48, 48))
    assert len(list((root / "train" / "good").glob("*.png"))) == 3
    assert len(list((root / "test" / "good").glob("*.png"))) == 2
    for kind in PART_DEFECTS:
        images = list((root / "test" / kind).glob("*.png"))
        assert len(images) == 1
        mask = np.asarray(Image.open(root / "ground_truth" / kind / f"{images[0].stem}_mask.png"))
        assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255} and mask.max() == 255

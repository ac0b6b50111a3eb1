from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

from sitesight.models.anomaly.plots import overlay_heatmap, plot_heatmaps, plot_score_histogram


def test_overlay_blends_jet_by_hand():
    image = np.full((2, 3, 3), 100, np.uint8)
    amap = np.array([[0.0, 0.5, 1.0], [2.0, -1.0, 0.25]])
    out = overlay_heatmap(image, amap, vmin=0.0, vmax=1.0, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    for (y, x), a in (((0, 0), 0.0), ((0, 1), 0.5), ((0, 2), 1.0), ((1, 0), 1.0), ((1, 1), 0.0), ((1, 2), 0.25)):
        w = 0.5 * (0.25 + 0.75 * a)  # hotter = more opaque
        expected = 100 * (1 - w) + np.array(colormaps["jet"](a)[:3]) * 255 * w
        np.testing.assert_array_equal(out[y, x], expected.astype(np.uint8))


def test_pictures_are_written(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 40, 3), dtype=np.uint8) for _ in range(3)]
    maps = [rng.random((32, 40)).astype(np.float32) for _ in range(3)]
    masks = [None, np.zeros((32, 40), bool), np.pad(np.ones((4, 4), bool), 10)[:32, :40]]
    p = plot_heatmaps(images, maps, tmp_path / "h.png", titles=["a", "b", "c"], masks=masks)
    with Image.open(p) as im:
        assert im.height > im.width  # one row per image, two columns
    scores = rng.random(50)
    p = plot_score_histogram(scores, scores > 0.8, tmp_path / "s.png", thresholds={"normals FAR 5%": 0.7, "none": float("inf")})
    assert p.stat().st_size > 1000
    assert plot_score_histogram(np.full(4, 0.3), None, tmp_path / "flat.png").is_file()  # all-equal scores: no crash

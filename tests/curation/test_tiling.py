from __future__ import annotations

import numpy as np
from PIL import Image
from sahi.slicing import slice_image
from sahi.utils.coco import CocoAnnotation

from sitesight import Dataset, Detections, Sample, slice_grid
from sitesight.boxes import xyxy_to_xywh
from sitesight.curation.tiling import tile_dataset, tile_detections

from .scenes import scene


def _gt(rng: np.random.Generator, image_wh, n=40) -> Detections:
    w, h = image_wh
    xy = rng.uniform(0, [w - 5, h - 5], (n, 2))
    wh = rng.uniform(4, 160, (n, 2))
    xyxy = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).round()
    return Detections(xyxy=xyxy, class_id=rng.integers(0, 3, n), attributes={"k": np.arange(n)})


def test_tile_labels_match_sahi_slice_image():
    rng = np.random.default_rng(0)
    image_wh = (900, 500)
    gt = _gt(rng, image_wh)
    image = Image.new("RGB", image_wh)
    anns = [CocoAnnotation(category_id=int(c), category_name=str(c), bbox=[float(v) for v in b])
            for b, c in zip(xyxy_to_xywh(gt.xyxy), gt.class_id, strict=True)]
    for min_ratio in (0.1, 0.5):
        ref = slice_image(image, coco_annotation_list=anns, slice_height=256, slice_width=320,
                          overlap_height_ratio=0.25, overlap_width_ratio=0.1, min_area_ratio=min_ratio, verbose=False)
        tiles = slice_grid(image_wh, (320, 256), (0.1, 0.25))
        ours = tile_detections(gt, tiles, min_area_ratio=min_ratio)
        assert [list(s.starting_pixel) for s in ref.sliced_image_list] == tiles[:, :2].tolist()
        for sliced, mine in zip(ref.sliced_image_list, ours, strict=True):
            theirs = sorted((a.category_id, *np.round(a.bbox, 3)) for a in sliced.coco_image.annotations)
            got = sorted((int(c), *np.round(b, 3)) for b, c in zip(xyxy_to_xywh(mine.xyxy), mine.class_id, strict=True))
            assert got == theirs


def test_tile_detections_hand_computed():
    gt = Detections(xyxy=[[90, 10, 130, 30], [0, 0, 0, 10]], class_id=[2, 0])  # second has zero area
    left, right = tile_detections(gt, np.array([[0, 0, 100, 100], [100, 0, 200, 100]]), min_area_ratio=0.3)
    np.testing.assert_array_equal(right.xyxy, [[0, 10, 30, 30]])  # 30/40 of it is in the right tile
    assert len(left) == 0  # only 10/40 = 0.25 < 0.3 in the left tile


def test_tile_dataset_writes_tiles(tmp_path):
    frame = tmp_path / "cam1_20240101T000000.jpg"
    scene(0, (700, 400)).save(frame)
    gt = Detections(xyxy=[[10, 10, 60, 60], [600, 300, 690, 390]], class_id=[0, 1])
    ds = Dataset(class_names=("a", "b"), samples=(Sample(frame, (700, 400), gt, camera_id="cam1", subset="train"),
                                                  Sample(tmp_path / "gone.jpg", (700, 400))))
    out = tile_dataset(ds, tmp_path / "tiles", slice_wh=(400, 400), overlap_ratio=(0.0, 0.0), keep_empty=False)
    assert [s.path for s in out.samples] == ["cam1_20240101T000000_0_0_400_400.jpg", "cam1_20240101T000000_300_0_700_400.jpg"]
    assert out.samples[1].gt.xyxy.tolist() == [[300, 300, 390, 390]] and out.samples[0].camera_id == "cam1"
    tile = Image.open(out.image_path(out.samples[1]))
    assert tile.size == (400, 400)
    full = tile_dataset(ds, tmp_path / "all", slice_wh=(400, 400), overlap_ratio=(0.0, 0.0))
    assert len(full) == 2 and full.samples[0].subset == "train"

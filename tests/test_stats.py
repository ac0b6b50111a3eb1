from __future__ import annotations

import json

import numpy as np

from sitesight import AttributeSpec, Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco
from sitesight.stats import dataset_stats


def _dataset():
    v = np.empty(3, object)
    v[:] = ["yes", None, "no"]
    a = Detections(xyxy=[[0, 0, 10, 20], [0, 0, 40, 40], [5, 5, 205, 105]], class_id=[0, 1, 0], attributes={"helmet": v})
    w = np.empty(1, object)
    w[:] = ["yes"]
    b = Detections(xyxy=[[0, 0, 50, 100]], class_id=[0], attributes={"helmet": w})
    samples = [Sample("a.jpg", (400, 200), a, tags=("night",)), Sample("b.jpg", (100, 100), b),
               Sample("c.jpg", (100, 100), Detections.empty(["helmet"]))]  # fmt: skip
    return Dataset(("head", "hand"), samples, {"helmet": AttributeSpec("helmet", ("yes", "no"), "radio")})


def test_stats_hand_computed():
    s = dataset_stats(_dataset())
    assert s.n_images == 3 and s.n_boxes == 4 and s.images_without_boxes == ("c.jpg",)
    assert s.class_counts == {"head": 3, "hand": 1} and s.images_per_class == {"head": 2, "hand": 1}
    assert s.attribute_counts == {"helmet": {"no": 1, "yes": 2}} and s.tag_counts == {"night": 1}
    # head widths 10, 200, 50 → median 50; relative widths 10/400, 200/400, 50/100 → median 0.5
    assert s.box_size["head"]["width_px"]["median"] == 50 and s.box_size["head"]["width_rel"]["median"] == 0.5
    assert s.box_size["head"]["height_rel"]["max"] == 1.0 and s.box_size["all"]["width_px"]["min"] == 10
    # areas: 200 (small), 20000 (large), 5000 (medium), 1600 (hand, medium)
    assert s.size_buckets["head"] == {"small": 1, "medium": 1, "large": 1}
    assert s.size_buckets["all"] == {"small": 1, "medium": 2, "large": 1}
    assert s.image_sizes == {"100x100": 2, "400x200": 1}


def test_stats_cli_json(tmp_path):
    path = write_coco(_dataset(), tmp_path / "d.json")
    assert main(["data", "stats", str(path), "--json", str(tmp_path / "s.json")]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["class_counts"] == {"head": 3, "hand": 1} and doc["images_without_boxes"]["count"] == 1

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import AttributeSpec, Dataset, Detections, Sample

CLASSES = ("person", "helmet", "head")
SCHEMA = {
    "safety_rope": AttributeSpec("safety_rope", ("correct", "wrong", "unknown"), "radio", "unknown", ("person",)),
    "has_helmet": AttributeSpec("has_helmet", ("false",), "checkbox", "false", ("head",)),
}


def _obj(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Dataset:
    """Three small JPEGs on disk with float boxes, three classes and two attributes (hand-made)."""
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    sizes = [(160, 120), (200, 100), (90, 90)]
    boxes = [
        ([[10.25, 20.5, 60.75, 110.0], [30.0, 22.0, 44.5, 35.25], [31.0, 18.0, 45.0, 33.0]], [0, 1, 2],
         ["wrong", None, None], [None, None, "true"]),
        ([[0.0, 0.0, 200.0, 100.0], [150.5, 10.5, 170.25, 30.75]], [0, 2], ["correct", None], [None, "false"]),
        ([], [], [], []),
    ]  # fmt: skip
    samples = []
    for i, ((w, h), (xyxy, cls, rope, helmet)) in enumerate(zip(sizes, boxes, strict=True)):
        Image.new("RGB", (w, h), (i * 40, 100, 200)).save(root / "images" / f"f{i}.jpg")
        gt = Detections(xyxy=np.array(xyxy, np.float32).reshape(-1, 4), class_id=cls,
                        attributes={"safety_rope": _obj(rope), "has_helmet": _obj(helmet)})  # fmt: skip
        samples.append(Sample(path=f"images/f{i}.jpg", image_wh=(w, h), gt=gt, image_id=i, subset="train",
                              tags=("day",) if i == 0 else ()))  # fmt: skip
    return Dataset(class_names=CLASSES, samples=tuple(samples), attribute_schema=SCHEMA, root=root)

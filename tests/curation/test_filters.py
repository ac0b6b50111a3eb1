from __future__ import annotations

import numpy as np
import pytest

from sitesight import AttributeSpec, Dataset, Detections, InputError, Sample
from sitesight.curation.filters import (
    attributes_to_classes,
    drop_fixed_location,
    fixed_location_mask,
    parse_attribute_rule,
    remap_classes,
)

WH = (1000, 1000)  # tiny = w < 30 px and h < 50 px


def _d(boxes, classes=None):
    return Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), class_id=classes)


def test_fixed_location_hand_built():
    bolt = [100, 100, 120, 130]  # 20x30 px: tiny
    bolt_jitter = [101, 101, 121, 131]
    big = [100, 100, 200, 300]  # same place but not tiny
    walker = [[500 + 60 * i, 500, 520 + 60 * i, 530] for i in range(4)]  # tiny, moves every frame
    frames = [
        _d([bolt, walker[0], big]),
        _d([bolt_jitter, walker[1]]),
        _d([bolt, walker[2]]),
        _d([walker[3]]),
        _d([bolt]),  # another camera: its bolt appears once there
    ]
    cams = ["a", "a", "a", "a", "b"]
    masks = fixed_location_mask(frames, cams, WH, min_frames=3)
    assert [m.tolist() for m in masks] == [[True, False, False], [True, False], [True, False], [False], [False]]
    # a 4th sighting is needed with min_frames=4; per-frame sizes work too
    masks4 = fixed_location_mask(frames, cams, [WH] * 5, min_frames=4)
    assert not any(m.any() for m in masks4)
    # thresholds are configurable: a 20 px box is not tiny under max_w=0.015
    assert not any(m.any() for m in fixed_location_mask(frames, cams, WH, max_w=0.015))


def test_fixed_location_class_and_duplicates_in_one_frame():
    bolt = [100, 100, 120, 130]
    # two boxes at the bolt inside one frame count as one frame
    frames = [_d([bolt, bolt], [0, 0]), _d([bolt], [1]), _d([bolt], [0])]
    assert [m.tolist() for m in fixed_location_mask(frames, ["a"] * 3, WH)] == [[False, False], [False], [False]]
    agnostic = fixed_location_mask(frames, ["a"] * 3, WH, class_agnostic=True)
    assert [m.tolist() for m in agnostic] == [[True, True], [True], [True]]


def test_fixed_location_validates_lengths():
    with pytest.raises(InputError, match="camera ids"):
        fixed_location_mask([_d([])], [], WH)


def test_drop_fixed_location_on_dataset_uses_file_name_camera():
    bolt = [100, 100, 120, 130]
    person = [400, 400, 460, 600]
    samples = [Sample(path=f"cam7_20240101T00000{i}.jpg", image_wh=WH, gt=_d([bolt, person])) for i in range(3)]
    samples.append(Sample(path="cam8_20240101T000000.jpg", image_wh=WH, gt=_d([bolt])))
    out, dropped = drop_fixed_location(Dataset(class_names=("x",), samples=samples))
    assert dropped == 3
    assert [len(s.gt) for s in out.samples] == [1, 1, 1, 1]
    np.testing.assert_array_equal(out.samples[0].gt.xyxy[0], person)


def _helmet_dataset():
    gt = Detections(
        xyxy=np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 3, 3], [2, 2, 9, 9]], np.float32),
        class_id=[0, 0, 1, 2],
        attributes={"has_safety_helmet": np.array(["yes", "no", None, None], object)},
    )
    schema = {"has_safety_helmet": AttributeSpec("has_safety_helmet", ("yes", "no"), "radio", labels=("head",))}
    return Dataset(class_names=("head", "hand", "clothing"), samples=(Sample("a.jpg", (32, 32), gt),), attribute_schema=schema)


def test_attribute_to_class():
    rule = parse_attribute_rule("head:has_safety_helmet=no->person_without_helmet")
    out = attributes_to_classes(_helmet_dataset(), [rule])
    assert out.class_names == ("head", "hand", "clothing", "person_without_helmet")
    assert out.samples[0].gt.class_id.tolist() == [0, 3, 1, 2]
    assert out.attribute_schema["has_safety_helmet"].labels == ("head", "person_without_helmet")
    with pytest.raises(InputError, match="expected 'class:attribute=value->new_class'"):
        parse_attribute_rule("head=no")
    with pytest.raises(InputError, match="unknown class 'foot'"):
        attributes_to_classes(_helmet_dataset(), [parse_attribute_rule("foot:a=b->c")])


def test_remap_merge_rename_drop():
    ds = _helmet_dataset()
    out = remap_classes(ds, {"hand": None, "clothing": "person", "head": "person"})
    assert out.class_names == ("person",)
    assert out.samples[0].gt.class_id.tolist() == [0, 0, 0]
    assert out.samples[0].gt.attributes["has_safety_helmet"].tolist() == ["yes", "no", None]
    assert out.attribute_schema["has_safety_helmet"].labels == ("person",)
    renamed = remap_classes(ds, {"hand": "glove"})
    assert renamed.class_names == ("head", "glove", "clothing")
    assert renamed.samples[0].gt.class_id.tolist() == [0, 0, 1, 2]
    with pytest.raises(InputError, match="unknown classes"):
        remap_classes(ds, {"foot": "x"})

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sitesight.errors import InputError
from sitesight.formats.cvat import load_cvat, read_cvat, write_cvat
from sitesight.formats.cvat_shapes import mask_rle_extent, rotated_box_extent

META = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><labels>
<label><name>person</name><attributes>
  <attribute><name>rope</name><input_type>radio</input_type><default_value>unknown</default_value>
  <values>correct
wrong
unknown</values></attribute>
  <attribute><name>vest</name><input_type>checkbox</input_type><default_value>false</default_value>
  <values>false</values></attribute>
</attributes></label>
<label><name>head</name><attributes/></label>
<label><name>night</name><type>tag</type></label>
</labels></task></meta>
{body}
</annotations>"""


def _write(tmp_path: Path, body: str, name: str = "a.xml") -> Path:
    path = tmp_path / name
    path.write_text(META.replace("{body}", body), encoding="utf-8")
    return path


def test_every_shape_type_hand_computed(tmp_path):
    body = """<image id="0" name="x.jpg" width="100" height="80">
  <box label="person" occluded="1" source="auto" z_order="3" xtl="1.5" ytl="2" xbr="11.5" ybr="22">
    <attribute name="rope">wrong</attribute><attribute name="vest">true</attribute></box>
  <polygon label="head" points="10,10;20,5;15,30" z_order="0"/>
  <polyline label="head" points="50,60;40,70"/>
  <points label="head" points="5,5;9,1"/>
  <mask label="head" rle="3, 2, 1, 3, 3" left="10" top="20" width="4" height="3"/>
  <box label="person" xtl="0" ytl="0" xbr="10" ybr="20"/>
  <tag label="night" source="manual"/>
</image>"""
    ds = read_cvat(_write(tmp_path, body))
    s = ds[0]
    assert ds.class_names == ("person", "head") and s.tags == ("night",) and s.image_wh == (100, 80)
    np.testing.assert_allclose(
        s.gt.xyxy,
        # box; polygon extent; polyline extent; mask: 4-wide grid, runs 0:3 bg, 3:5 fg, 5:6 bg, 6:9 fg
        # → pixels (row0,col3),(row1,col0),(row1,col2..3),(row2,col0..0) → cols 0..3, rows 0..2; box
        # with default attributes (rope → declared default "unknown").
        [[1.5, 2, 11.5, 22], [10, 5, 20, 30], [40, 60, 50, 70], [10, 20, 14, 23], [0, 0, 10, 20]],
    )
    assert s.gt.class_id.tolist() == [0, 1, 1, 1, 0]
    assert s.gt.attributes["rope"].tolist() == ["wrong", None, None, None, "unknown"]
    assert s.gt.attributes["vest"].tolist() == ["true", None, None, None, "false"]
    assert s.gt.attributes["cvat_occluded"].tolist() == [True, False, False, False, False]
    assert s.gt.attributes["cvat_z_order"].tolist() == [3, 0, 0, 0, 0]
    assert s.gt.attributes["cvat_source"][0] == "auto"
    assert s.gt.attributes["cvat_shape"].tolist() == ["box", "polygon", "polyline", "mask", "box"]
    spec = ds.attribute_schema["rope"]
    assert spec.values == ("correct", "wrong", "unknown") and spec.input_type == "radio" and spec.labels == ("person",)
    assert ds.attribute_schema["vest"].allowed() == ("false", "true")
    with_points = read_cvat(_write(tmp_path, body), points_as_boxes=True)
    np.testing.assert_allclose(with_points[0].gt.xyxy[3], [5, 1, 9, 5])


def _brute_force_mask_box(rle: str, left: int, top: int, width: int, height: int) -> list[float]:
    counts = [int(c) for c in rle.split(",")]
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    mask = np.zeros(width * height, bool)
    mask[: flat.size] = flat
    ys, xs = np.nonzero(mask.reshape(height, width))
    return [left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1]


@pytest.mark.parametrize("seed", range(20))
def test_mask_extent_matches_brute_force_decode(seed):
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    mask = rng.random((height, width)) < rng.uniform(0.01, 0.3)
    mask[rng.integers(height), rng.integers(width)] = True
    flat = mask.ravel()
    change = np.flatnonzero(np.diff(np.r_[False, flat, False].astype(np.int8)))
    runs = np.diff(np.r_[0, change, flat.size])
    runs = runs[runs > 0] if not flat[0] else np.r_[0, runs[runs > 0]]
    rle = ", ".join(str(int(r)) for r in runs)
    assert list(mask_rle_extent(rle, 7, 3, width)) == _brute_force_mask_box(rle, 7, 3, width, height)


def test_rotated_box_extent_hand_computed():
    # A 4x2 box centred at (5, 5) rotated 90° becomes 2x4.
    np.testing.assert_allclose(rotated_box_extent(3, 4, 7, 6, 90), [4, 3, 6, 7], atol=1e-9)
    # 45°: half extents (2 + 1) / sqrt(2) each way.
    e = 3 / np.sqrt(2)
    np.testing.assert_allclose(rotated_box_extent(3, 4, 7, 6, 45), [5 - e, 5 - e, 5 + e, 5 + e], atol=1e-9)


def test_several_files_merge_and_issues(tmp_path):
    a = _write(tmp_path, '<image id="0" name="a.jpg" width="10" height="10"><box label="head" xtl="1" ytl="1" xbr="2" ybr="2"/></image>')
    b = _write(tmp_path, '<image id="0" name="b.jpg" width="10" height="10"><box label="dog" xtl="1" ytl="1" xbr="2" ybr="2"/></image>', "b.xml")
    loaded = load_cvat([a, b])
    ds = loaded.dataset
    assert len(ds) == 2 and ds.class_names == ("person", "head", "dog")
    assert [s.image_id for s in ds] == [0, 1]
    assert [i.code for i in loaded.issues] == ["unknown_label"] and "dog" in loaded.issues[0].message


def test_write_then_read_keeps_everything(tiny_dataset, tmp_path):
    path = write_cvat(tiny_dataset, tiny_dataset.root / "out.xml")
    back = read_cvat(path)
    assert back.class_names == tiny_dataset.class_names
    for a, b in zip(tiny_dataset, back, strict=True):
        assert b.path == a.path and b.image_wh == a.image_wh and b.tags == a.tags and b.subset == a.subset
        np.testing.assert_allclose(b.gt.xyxy, a.gt.xyxy, atol=0.005)
        assert b.gt.class_id.tolist() == a.gt.class_id.tolist()
        # a box whose label carries the attribute but had None comes back as the declared default
        for key, spec in tiny_dataset.attribute_schema.items():
            expected = [v if v is not None or tiny_dataset.class_names[c] not in spec.labels else spec.default
                        for v, c in zip(a.gt.attributes[key], a.gt.class_id, strict=True)]  # fmt: skip
            assert b.gt.attributes[key].tolist() == expected
    assert dict(back.attribute_schema)["safety_rope"].values == ("correct", "wrong", "unknown")


def test_written_xml_is_accepted_by_datumaro_style_parse(tiny_dataset, tmp_path):
    """The writer's XML is plain CVAT 1.1: parse it with the standard library as an outside check."""
    import xml.etree.ElementTree as ET

    root = ET.parse(write_cvat(tiny_dataset, tmp_path / "t.xml")).getroot()
    assert root.findtext("version") == "1.1"
    labels = [label.findtext("name") for label in root.iter("label")]
    assert labels == ["person", "helmet", "head", "day"]
    boxes = root.findall("image/box")
    assert len(boxes) == 5 and boxes[0].get("xtl") == "10.25" and boxes[0].get("ybr") == "110.00"
    assert root.find("image").get("name") == "f0.jpg"


def test_rejects_non_cvat_root(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<annotation><filename>a.jpg</filename></annotation>")
    with pytest.raises(InputError, match=r"x.xml \(root\): root element is <annotation>"):
        read_cvat(path)

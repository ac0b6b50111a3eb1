"""CVAT → COCO → CVAT keeps labels, the attribute schema (per label, input type, values, default) and
every box's attribute values, on every shared CVAT export; COCO files with the attribute layouts
other tools write read back with a sane schema."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sitesight.formats.coco import read_coco, write_coco
from sitesight.formats.cvat import read_cvat, write_cvat

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CVAT_FILES = sorted(str(p.relative_to(DATA)) for p in DATA.glob("cvat/**/*.xml")) if DATA.is_dir() else []


def _xml_schema(path: Path) -> dict[tuple[str, str], tuple[str, tuple[str, ...], str]]:
    """(label, attribute) → (input_type, values, default), straight from the XML's <meta>."""
    out = {}
    for label in ET.parse(path).getroot().iter("label"):
        for attr in label.iterfind("attributes/attribute"):
            kind = (attr.findtext("input_type") or "").strip()
            values = tuple(v.strip() for v in (attr.findtext("values") or "").strip().split("\n") if v.strip())
            if kind in ("radio", "select", "checkbox") and len(values) == 1:  # old files: space-separated
                values = tuple(values[0].split())
            out[(label.findtext("name"), attr.findtext("name"))] = (
                (attr.findtext("input_type") or "").strip(), values, attr.findtext("default_value") or "")
    return out


def _xml_box_attributes(path: Path) -> Counter:
    """(label, attribute, value) over every shape of the file (tags and hidden track frames aside),
    read with ElementTree: each shape becomes one box. An attribute its label declares that the
    shape omits counts with the declared default, as CVAT's own import fills it in."""
    root = ET.parse(path).getroot()
    shapes = [s for image in root.iter("image") for s in image if s.tag != "tag"]
    shapes += [s for track in root.iter("track") for s in track if s.get("outside", "0") != "1"]
    labels = {s: s.get("label") for s in shapes}
    labels.update({s: track.get("label") for track in root.iter("track") for s in track})
    defaults = {}
    for (label, attr), (_, _, default) in _xml_schema(path).items():
        defaults.setdefault(label, {})[attr] = default
    out = Counter()
    for s in shapes:
        values = {**defaults.get(labels[s], {}), **{a.get("name"): (a.text or "").strip() for a in s.iterfind("attribute")}}
        out.update((labels[s], k, v) for k, v in values.items())
    return out


@pytest.mark.parametrize("rel", CVAT_FILES)
def test_cvat_coco_cvat_keeps_labels_schema_and_attribute_values(shared_data, tmp_path, rel):
    src_path = shared_data / rel
    src = read_cvat(src_path, points_as_boxes=True)
    coco = read_coco(write_coco(src, tmp_path / "coco" / "instances.json"))
    back_path = write_cvat(coco, tmp_path / "back.xml")
    back = read_cvat(back_path)

    assert back.class_names == src.class_names
    for key, spec in src.attribute_schema.items():
        got = back.attribute_schema[key]
        assert (got.input_type, got.values, got.default, set(got.labels)) == \
            (spec.input_type, spec.values, spec.default, set(spec.labels)), key
    assert set(back.attribute_schema) == set(src.attribute_schema)
    source_schema = _xml_schema(src_path)
    # each declared (label, attribute) keeps its input type, value list and default in the written XML
    written_schema = _xml_schema(back_path)
    for (label, attr), (kind, values, default) in source_schema.items():
        if label in src.class_names:
            assert written_schema[(label, attr)] == (kind or "select", values, default), (label, attr)
    assert {k for k in written_schema if k[0] in src.class_names} == {k for k in source_schema if k[0] in src.class_names}
    # every box attribute value of the source file's <box> elements is in the written file, no more
    source_values = _xml_box_attributes(src_path)
    if source_values:
        assert _xml_box_attributes(back_path) == source_values

    assert len(back) == len(src)
    for a, b in zip(src.samples, back.samples, strict=True):
        assert b.gt.class_id.tolist() == a.gt.class_id.tolist()
        np.testing.assert_allclose(b.gt.xyxy, a.gt.xyxy, atol=0.006)
        for key in src.attribute_schema:
            assert b.gt.attributes[key].tolist() == a.gt.attributes[key].tolist(), key


def test_helmet_attributes_stay_on_their_labels(shared_data, tmp_path):
    """The reported corruption: has_safety_helmet 'yes' grew from 1,170 to 3,843 (hands and clothes got it)."""
    src = read_cvat(shared_data / "cvat/helmet_attributes/annotations.xml")
    back = read_cvat(write_cvat(read_coco(write_coco(src, tmp_path / "a.json")), tmp_path / "b.xml"))
    for ds in (src, back):
        values = np.concatenate([s.gt.attributes["has_safety_helmet"] for s in ds])
        labels = np.concatenate([np.asarray(ds.class_names)[s.gt.class_id] for s in ds])
        assert (values == "yes").sum() == 1170
        assert set(labels[values != None]) == {"head"}  # noqa: E711 (elementwise)
    assert back.attribute_schema["has_safety_helmet"].input_type == "radio"
    assert back.attribute_schema["is_safety_jacket"].input_type == "checkbox"


def test_coco_file_name_is_relative_and_resolves(shared_data, tmp_path):
    src = read_cvat(shared_data / "cvat/helmet_attributes/annotations.xml")
    out = write_coco(src, tmp_path / "elsewhere" / "instances.json")
    doc = json.loads(out.read_text())
    assert all(not Path(img["file_name"]).is_absolute() for img in doc["images"])
    assert [img["file_name"] for img in doc["images"]] == [str(s.path) for s in src.samples]
    back = read_coco(out)
    assert all(back.image_path(s).is_file() for s in back)


def _coco(tmp_path: Path, annotations: list[dict], categories=None, **extra) -> Path:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
           "categories": categories or [{"id": 1, "name": "head"}, {"id": 2, "name": "hand"}],
           "annotations": [{"id": i + 1, "image_id": 1, "bbox": [1, 1, 10, 10], **a} for i, a in enumerate(annotations)],
           **extra}
    path = tmp_path / "other_tool.json"
    path.write_text(json.dumps(doc))
    return path


def test_cvat_style_coco_attributes(tmp_path):
    """CVAT's COCO export: an 'attributes' dict per annotation with occluded/rotation/track_id beside the labels' own."""
    ds = read_coco(_coco(tmp_path, [
        {"category_id": 1, "attributes": {"occluded": False, "helmet": "yes", "rotation": 0.0}},
        {"category_id": 1, "attributes": {"occluded": True, "helmet": "no"}},
        {"category_id": 2, "attributes": {"occluded": False, "left": True}},
    ]))
    assert set(ds.attribute_schema) == {"helmet", "left"}
    assert ds.attribute_schema["helmet"].labels == ("head",) and ds.attribute_schema["helmet"].values == ("yes", "no")
    assert ds.attribute_schema["left"].labels == ("hand",) and ds.attribute_schema["left"].input_type == "checkbox"
    gt = ds.samples[0].gt
    assert gt.attributes["helmet"].tolist() == ["yes", "no", None]
    assert gt.attributes["left"].tolist() == [None, None, "true"]
    assert gt.attributes["cvat_occluded"].tolist() == [False, True, False]


def test_fiftyone_style_coco_attributes(tmp_path):
    """FiftyOne writes extra label fields at the top level of each annotation (numbers, strings, lists)."""
    ds = read_coco(_coco(tmp_path, [
        {"category_id": 1, "confidence": 0.9, "helmet": "yes", "tags": ["checked"]},
        {"category_id": 2, "confidence": 0.4},
    ]))
    assert set(ds.attribute_schema) == {"helmet"}  # the string field; numbers stay numeric extras
    assert ds.attribute_schema["helmet"].labels == ("head",)
    gt = ds.samples[0].gt
    assert gt.attributes["helmet"].tolist() == ["yes", None]
    np.testing.assert_allclose(gt.attributes["confidence"], [0.9, 0.4])


def test_roboflow_style_coco(tmp_path):
    """Roboflow: category 0 is the dataset's super-category, ids from 0, no attributes at all."""
    ds = read_coco(_coco(tmp_path, [{"category_id": 1, "area": 100, "segmentation": [], "iscrowd": 0}],
                         categories=[{"id": 0, "name": "helmets", "supercategory": "none"},
                                     {"id": 1, "name": "head", "supercategory": "helmets"}]))
    assert ds.attribute_schema == {} and ds.class_names == ("helmets", "head")
    assert ds.samples[0].gt.class_id.tolist() == [1]

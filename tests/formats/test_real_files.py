"""Every real export in ../shared/data loads; counts agree with its README and with independent twins."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sitesight.formats import load_dataset
from sitesight.formats.coco import read_coco, read_coco_results
from sitesight.formats.cvat import read_cvat
from sitesight.formats.voc import load_voc

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _files() -> list[tuple[str, str]]:
    if not DATA.is_dir():
        return []
    out = [("cvat", p) for p in sorted(DATA.glob("cvat/**/*.xml"))]
    out += [("coco", p) for p in sorted(DATA.glob("*/**/*.json")) if "result" not in p.name]
    out += [("voc", p) for p in sorted(DATA.glob("voc/**/*.xml"))]
    yolo = [p.parent for p in DATA.glob("yolo/**/*.txt") if p.parent.name not in ("train", "val", "test", "valid")]
    yolo += [p for p in DATA.glob("yolo/**/*") if p.suffix in (".yaml", ".data")]
    yolo += [p for p in (DATA / "yolo").iterdir() if p.is_dir()] + [d for d in DATA.glob("yolo/*/*") if d.is_dir()]
    out += [("yolo", p) for p in sorted(set(yolo)) if p.name not in ("labels", "Annotations", "obj_train_data", "images", "Images")
            or (p / "obj.names").exists()]  # fmt: skip
    out += [("voc", p) for p in sorted(DATA.glob("voc/*")) + sorted(DATA.glob("voc/datumaro_voc_dataset/*")) if p.is_dir()]
    return [(fmt, str(p.relative_to(DATA))) for fmt, p in out]


@pytest.mark.parametrize(("fmt", "rel"), _files())
def test_every_real_file_loads(shared_data, fmt, rel):
    loaded = load_dataset(shared_data / rel, fmt)
    ds = loaded.dataset
    assert len(ds) > 0
    for s in ds:
        assert s.gt.xyxy.dtype == np.float32 and np.isfinite(s.gt.xyxy).all()
        assert (s.gt.xyxy[:, 2:] >= s.gt.xyxy[:, :2]).all()


def test_helmet_attributes_counts(shared_data):
    ds = read_cvat(shared_data / "cvat/helmet_attributes/annotations.xml", points_as_boxes=True)
    assert len(ds) == 527
    assert ds.class_counts() == {"head": 1792, "clothing": 1663, "hand": 1010, "face_keypoints": 1}
    schema = ds.attribute_schema
    assert schema["has_safety_helmet"].values == ("yes", "no") and schema["has_safety_helmet"].input_type == "radio"
    assert schema["is_safety_jacket"].values == ("false",) and schema["is_safety_jacket"].allowed() == ("false", "true")
    head = ds.class_index("head")
    helmet = Counter(v for s in ds for v, c in zip(s.gt.attributes["has_safety_helmet"], s.gt.class_id, strict=True) if c == head)
    assert sum(helmet.values()) == 1792 and None not in helmet
    hand_values = {v for s in ds for v, c in zip(s.gt.attributes["mask"], s.gt.class_id, strict=True) if c == ds.class_index("hand")}
    assert hand_values == {None}  # labels without the attribute hold None
    resolved = sum((ds.image_path(s)).is_file() for s in ds)
    assert resolved == 527  # images renamed to their CVAT id are found


def test_urban_masks_tags_counts(shared_data):
    ds = read_cvat(shared_data / "cvat/urban_masks_tags/annotations.xml")
    shapes = Counter(v for s in ds for v in s.gt.attributes["cvat_shape"])
    assert shapes == {"mask": 245, "box": 68}
    assert sum(len(s.tags) for s in ds) == 20
    assert max(s.image_wh for s in ds) >= (5720, 7150)


def test_urban_cvat_xml_agrees_with_its_cvat_coco_twin(shared_data):
    """CVAT's own COCO export of the same task is the independent reference for masks and rotations."""
    xml = read_cvat(shared_data / "cvat/urban_masks_tags/annotations_older.xml")
    coco = read_coco(shared_data / "cvat/urban_masks_tags/coco_twin_of_annotations_older.json")
    by_name = {Path(s.path).name: s for s in coco}
    assert len(by_name) == len(xml) == 20
    for s in xml:
        t = by_name[Path(s.path).name]
        assert s.image_wh == t.image_wh

        def rows(d, sample):
            g = sample.gt
            return sorted(
                (d.class_names[c], *np.round(b, 2).tolist(), v, bool(o))
                for c, b, v, o in zip(g.class_id, g.xyxy, g.attributes["Visibility"], g.attributes["cvat_occluded"], strict=True)
            )

        a, b = rows(xml, s), rows(coco, t)
        assert len(a) == len(b)
        for ra, rb in zip(a, b, strict=True):
            assert ra[0] == rb[0] and ra[5:] == rb[5:]
            np.testing.assert_allclose(ra[1:5], rb[1:5], atol=0.5)


def test_job_export_and_empty_and_video(shared_data):
    job = read_cvat(shared_data / "cvat/job_masks/annotations_7cdbad1_job_export_masks.xml")
    assert job.box_count() == 273 and job[0].image_wh == (7360, 4912)
    empty = read_cvat(shared_data / "cvat/empty_project/annotations.xml")
    assert empty.box_count() == 0 and len(empty) == 6
    video = read_cvat(shared_data / "cvat/datumaro_cvat_dataset/for_video/annotations.xml", points_as_boxes=True)
    assert [s.image_id for s in video] == [10, 13] and video[0].image_wh == (25, 20)
    assert video[0].gt.attributes["cvat_track_id"].tolist() == [0, 1]


def test_coco_counts_and_sahi_results(shared_data):
    first50 = read_coco(shared_data / "coco/visdrone2019-det-train-first50image.json")
    assert len(first50) == 50 and first50.box_count() == 3326 and first50.class_names == ("human", "vehicle")
    gt = read_coco(shared_data / "coco/sahi_visdrone_eval/dataset.json")
    preds = read_coco_results(shared_data / "coco/sahi_visdrone_eval/result.json", gt)
    assert gt.box_count() == 249 and sum(len(p) for p in preds) == 89
    import json

    raw = json.loads((shared_data / "coco/sahi_visdrone_eval/result.json").read_text())
    first = raw[0]
    i = [s.image_id for s in gt].index(first["image_id"])
    x, y, w, h = first["bbox"]
    assert [x, y, x + w, y + h] in preds[i].xyxy.tolist()
    assert gt.class_names[preds[i].class_id[preds[i].xyxy.tolist().index([x, y, x + w, y + h])]] == first["category_name"]


def test_yolo_and_voc_counts(shared_data):
    helmet = load_dataset(shared_data / "yolo/helmet_roboflow/helmet detection.v3i.yolov5pytorch")
    ds = helmet.dataset
    assert len(ds) == 359 and ds.class_names == ("helmet", "nohelmet")
    assert Counter(s.subset for s in ds) == {"train": 258, "val": 64, "test": 37}
    assert {s.image_wh for s in ds} == {(640, 640)}
    voc = load_voc(shared_data / "voc/hardhat_voc/dataset").dataset
    assert len(voc) == 181 and voc.class_counts() == {"Safety Helmet": 538, "No Safety Helmet": 130}


def test_real_cvat_coco_yolo_cvat_round_trip(shared_data, tmp_path):
    """The helmet task through COCO (written elsewhere) and YOLO (symlinked images) back to CVAT."""
    from sitesight.formats import read_dataset, write_dataset

    src = read_cvat(shared_data / "cvat/helmet_attributes/annotations.xml")
    coco = read_dataset(write_dataset(src, tmp_path / "coco" / "instances.json", "coco"))
    assert all(coco.image_path(s).is_file() for s in coco)  # file_name resolves from the new folder
    for key in ("has_safety_helmet", "mask", "is_safety_jacket"):
        assert [s.gt.attributes[key].tolist() for s in coco] == [s.gt.attributes[key].tolist() for s in src]
    write_dataset(coco, tmp_path / "yolo", "yolo", images="symlink")
    back = read_dataset(write_dataset(read_dataset(tmp_path / "yolo"), tmp_path / "back.xml", "cvat"))
    assert back.class_names == src.class_names and len(back) == len(src)
    by_name = {Path(s.path).stem: s for s in src}
    for s in back:
        ref = by_name[Path(s.path).stem]
        assert s.gt.class_id.tolist() == ref.gt.class_id.tolist()
        if s.image_wh == ref.image_wh:  # YOLO takes sizes from the image headers
            np.testing.assert_allclose(s.gt.xyxy, ref.gt.xyxy, atol=0.5)

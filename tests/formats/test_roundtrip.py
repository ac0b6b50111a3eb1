"""Round trips: CVAT → COCO → YOLO → CVAT keeps boxes (½ px) and classes; attributes survive where held."""

from __future__ import annotations

import numpy as np

from sitesight.formats import convert_dataset, read_dataset, write_dataset
from sitesight.formats.coco import load_coco, read_coco, write_coco
from sitesight.formats.cvat import read_cvat, write_cvat
from sitesight.formats.voc import read_voc, write_voc
from sitesight.formats.yolo import read_yolo, write_yolo


def _same_boxes(a, b, atol=0.5):
    assert len(a) == len(b)
    assert a.class_names == b.class_names
    for sa, sb in zip(a, b, strict=True):
        assert sa.image_wh == sb.image_wh
        assert sa.gt.class_id.tolist() == sb.gt.class_id.tolist()
        np.testing.assert_allclose(sb.gt.xyxy, sa.gt.xyxy, atol=atol)


def test_cvat_coco_yolo_cvat(tiny_dataset, tmp_path):
    cvat1 = read_cvat(write_cvat(tiny_dataset, tiny_dataset.root / "a.xml"))
    coco_path = write_coco(cvat1, tiny_dataset.root / "a.json")
    coco = read_coco(coco_path)
    _same_boxes(cvat1, coco)
    for key in ("safety_rope", "has_helmet", "cvat_occluded"):  # COCO holds attributes
        for sa, sb in zip(cvat1, coco, strict=True):
            assert sa.gt.attributes[key].tolist() == sb.gt.attributes[key].tolist()
    yolo = read_yolo(write_yolo(coco, tmp_path / "yolo"))
    _same_boxes(coco, yolo)
    assert [s.subset for s in yolo] == ["train"] * 3
    cvat2 = read_cvat(write_cvat(yolo, tmp_path / "yolo" / "back.xml"))
    _same_boxes(tiny_dataset, cvat2)
    _same_boxes(cvat1, cvat2)


def test_voc_round_trip_keeps_attributes(tiny_dataset, tmp_path):
    out = write_voc(tiny_dataset, tmp_path / "voc")
    back = read_voc(out)
    _same_boxes(tiny_dataset.replace(class_names=tiny_dataset.class_names), back.replace(
        class_names=back.class_names), atol=0.005)  # fmt: skip
    for sa, sb in zip(tiny_dataset, back, strict=True):
        assert sa.gt.attributes["safety_rope"].tolist() == sb.gt.attributes["safety_rope"].tolist()
        assert sb.subset == "train" and (out / sb.path).is_file()


def test_coco_category_ids_with_gaps_round_trip(tmp_path):
    doc = ('{"images":[{"id":7,"file_name":"a.jpg","width":20,"height":10}],'
           '"categories":[{"id":4,"name":"c"},{"id":1,"name":"a"},{"id":2,"name":"b"}],'
           '"annotations":[{"id":1,"image_id":7,"category_id":4,"bbox":[1,2,3,4],"area":99.5,"iscrowd":1},'
           '{"id":2,"image_id":7,"category_id":1,"bbox":[0,0,1,1],"attributes":{"occluded":true,"color":"red"}}]}')  # fmt: skip
    (tmp_path / "in.json").write_text(doc)
    loaded, written = convert_dataset(tmp_path / "in.json", tmp_path / "out.json", "coco")
    assert loaded.dataset.class_names == ("a", "b", "c") and loaded.meta["category_ids"] == (1, 2, 4)
    import json

    out = json.loads(written.read_text())
    assert [(c["id"], c["name"]) for c in out["categories"]] == [(1, "a"), (2, "b"), (4, "c")]
    anns = sorted(out["annotations"], key=lambda a: a["category_id"])
    assert [a["category_id"] for a in anns] == [1, 4] and [a["image_id"] for a in anns] == [7, 7]
    assert anns[1]["area"] == 99.5 and anns[1]["iscrowd"] == 1 and anns[0]["area"] == 1.0
    assert anns[0]["attributes"] == {"occluded": True, "color": "red"}
    again = load_coco(written)
    assert again.meta["category_ids"] == (1, 2, 4)
    assert again.dataset[0].gt.attributes["iscrowd"].tolist() == [1, 0]


def test_coco_written_file_read_by_pycocotools(tiny_dataset, tmp_path):
    """pycocotools, the reference reader, sees the same boxes (xywh) and categories."""
    from pycocotools.coco import COCO

    path = write_coco(tiny_dataset, tmp_path / "gt.json")
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(tiny_dataset.class_names)
    for sample in tiny_dataset:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[sample.image_id]))
        xyxy = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]).reshape(-1, 4)
        np.testing.assert_allclose(xyxy, sample.gt.xyxy, atol=1e-3)
        assert [a["category_id"] - 1 for a in anns] == sample.gt.class_id.tolist()


def test_coco_results_round_trip_with_extra_fields(tiny_dataset, tmp_path):
    from pycocotools.coco import COCO

    from sitesight import Detections
    from sitesight.formats.coco import read_coco_results, write_coco_results

    rope = np.empty(2, object)
    rope[:] = ["correct", "wrong"]
    preds = [
        Detections(xyxy=[[1, 2, 30, 40], [5, 5, 9, 9.5]], score=[0.9, 0.25], class_id=[0, 2],
                   attributes={"safety_rope": rope, "source": np.array([3, -1]), "iou_pred": np.array([0.5, 0.75], np.float32)}),
        Detections.empty(["safety_rope", "source", "iou_pred"]),
        Detections(xyxy=[[0, 0, 10, 10]], score=[0.5], class_id=[1],
                   attributes={"safety_rope": np.array([None], object), "source": np.array([0]), "iou_pred": np.array([0.1], np.float32)}),
    ]  # fmt: skip
    gt_path = write_coco(tiny_dataset, tmp_path / "gt.json")
    res_path = write_coco_results(tiny_dataset, preds, tmp_path / "res.json")
    back = read_coco_results(res_path, tiny_dataset)
    for a, b in zip(preds, back, strict=True):
        assert len(a) == len(b)
        if len(a):
            np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-3)
            np.testing.assert_allclose(b.score, a.score, atol=1e-6)
            assert b.class_id.tolist() == a.class_id.tolist()
            assert b.attributes["source"].tolist() == a.attributes["source"].tolist()
            np.testing.assert_allclose(b.attributes["iou_pred"], a.attributes["iou_pred"])
    assert back[0].attributes["safety_rope"].tolist() == ["correct", "wrong"]
    # pycocotools' loadRes accepts the file and maps it onto the written ground truth.
    dets = COCO(str(gt_path)).loadRes(str(res_path))
    assert len(dets.getAnnIds()) == 3


def test_read_dataset_detects_every_written_format(tiny_dataset, tmp_path):
    for fmt in ("cvat", "coco", "yolo", "voc"):
        target = tiny_dataset.root / f"out.{ 'xml' if fmt == 'cvat' else 'json'}" if fmt in ("cvat", "coco") else tmp_path / fmt
        written = write_dataset(tiny_dataset, target, fmt)
        back = read_dataset(written if fmt in ("cvat", "coco") else target)
        assert back.box_count() == tiny_dataset.box_count(), fmt

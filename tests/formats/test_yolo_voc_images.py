from __future__ import annotations

import numpy as np
from PIL import Image

from sitesight.formats import detect_format, load_dataset
from sitesight.formats.yolo import load_yolo
from sitesight.images import read_image_gray_small, read_image_rgb, read_image_wh


def _img(path, wh, orientation=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", wh, (10, 200, 30))
    if orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif)


def test_ultralytics_layout_names_dict_polygon_and_orphan_label(tmp_path):
    root = tmp_path / "my set"  # a space in the folder name, as Roboflow exports have
    _img(root / "images" / "train" / "a.jpg", (200, 100))
    _img(root / "images" / "val" / "b.png", (50, 40), None)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.2 0.3 0.2 0.2 0.6\n")
    (root / "labels" / "val" / "b.txt").write_text("")
    (root / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: helmet\n  1: head\n")
    assert detect_format(root) == "yolo"
    loaded = load_yolo(root)
    ds = loaded.dataset
    assert ds.class_names == ("helmet", "head") and [s.subset for s in ds] == ["train", "val"]
    # cx=100, cy=50, w=40, h=40 → [80, 30, 120, 70]; polygon (20,20),(60,20),(40,60) → [20, 20, 60, 60]
    np.testing.assert_allclose(ds[0].gt.xyxy, [[80, 30, 120, 70], [20, 20, 60, 60]], atol=1e-4)
    assert ds[0].gt.class_id.tolist() == [1, 0] and len(ds[1].gt) == 0 and ds[1].image_wh == (50, 40)
    assert [(i.code, i.path.endswith("orphan.txt")) for i in loaded.issues] == [("label_without_image", True)]


def test_darknet_obj_data_layout(tmp_path):
    _img(tmp_path / "obj_train_data" / "1.jpg", (30, 20))
    (tmp_path / "obj_train_data" / "1.txt").write_text("2 0.5 0.5 1.0 1.0\n")
    (tmp_path / "obj.names").write_text("a\nb\nc\n")
    (tmp_path / "train.txt").write_text("data/obj_train_data/1.jpg\n")
    (tmp_path / "obj.data").write_text("classes = 3\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    ds = load_dataset(tmp_path).dataset
    assert ds.class_names == ("a", "b", "c") and ds[0].subset == "train"
    np.testing.assert_allclose(ds[0].gt.xyxy, [[0, 0, 30, 20]])


def test_exif_orientation_swaps_header_size(tmp_path):
    _img(tmp_path / "r.jpg", (40, 20), orientation=6)
    assert read_image_wh(tmp_path / "r.jpg") == (20, 40)
    assert read_image_wh(tmp_path / "r.jpg", exif_transpose=False) == (40, 20)
    assert read_image_rgb(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_gray_small_matches_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (9, 16), dtype=np.uint8)
    big = np.asarray(Image.fromarray(base).resize((1920, 1080), Image.Resampling.NEAREST).convert("RGB"))
    Image.fromarray(big).save(tmp_path / "f.jpg", quality=95)
    small = read_image_gray_small(tmp_path / "f.jpg", 64)
    assert small.dtype == np.uint8 and max(small.shape) <= 64 and small.shape == (36, 64)
    # reference: PIL full decode, greyscale, box resize
    ref = np.asarray(Image.open(tmp_path / "f.jpg").convert("L").resize((64, 36), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - ref.astype(int)).mean() < 3


def test_voc_labelimg_folder_without_annotations_dir(tmp_path):
    _img(tmp_path / "images" / "x.jpg", (40, 30))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "x.xml").write_text(
        "<annotation><folder>images</folder><filename>x.jpg</filename><size><width>40</width><height>30</height></size>"
        "<object><name>Safety Helmet</name><pose>Unspecified</pose><truncated>1</truncated><difficult>0</difficult>"
        "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>"
    )
    ds = load_dataset(tmp_path).dataset
    assert ds.class_names == ("Safety Helmet",) and ds[0].path == "images/x.jpg"
    assert ds[0].gt.attributes["truncated"].tolist() == ["1"]
    np.testing.assert_allclose(ds[0].gt.xyxy, [[1, 2, 30, 30]])

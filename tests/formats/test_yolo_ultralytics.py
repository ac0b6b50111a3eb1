"""Every YOLO dataset sitesight writes (convert, tile, split, mix) loads in Ultralytics' own dataset
checker as written, from a working directory other than the dataset's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats import read_dataset
from sitesight.formats.coco import write_coco

ul_utils = pytest.importorskip("ultralytics.data.utils", reason="the [yolo] extra (ultralytics) is not installed")

CLASSES = ("worker", "helmet", "vest")


def _source(tmp_path: Path) -> Path:
    """A COCO file over 10 JPEGs of 4 cameras (no subsets: the case Ultralytics used to refuse)."""
    rng = np.random.default_rng(0)
    samples = []
    (tmp_path / "frames").mkdir()
    for i in range(10):
        name = f"cam{i % 4}_20240101T0000{i:02d}.jpg"
        Image.new("RGB", (320, 240), (20 * i, 90, 160)).save(tmp_path / "frames" / name)
        xy = rng.uniform(0, 200, (3, 2))
        gt = Detections(xyxy=np.concatenate([xy, xy + rng.uniform(10, 100, (3, 2))], 1), class_id=[0, 1 + i % 2, 0])
        samples.append(Sample(path=name, image_wh=(320, 240), gt=gt))
    ds = Dataset(class_names=CLASSES, samples=samples, root=tmp_path / "frames")
    return write_coco(ds, tmp_path / "frames" / "annotations.json")


def _check(data_yaml: Path, elsewhere: Path, monkeypatch) -> dict:
    monkeypatch.setattr(ul_utils, "check_font", lambda *a, **k: None)  # offline: no font download
    monkeypatch.chdir(elsewhere)
    data = ul_utils.check_det_dataset(str(data_yaml), autodownload=False)
    assert data["names"] == dict(enumerate(CLASSES)) and data["nc"] == len(CLASSES)
    for key in ("train", "val", "test"):
        for folder in [data[key]] if isinstance(data.get(key), str) else data.get(key) or []:
            assert Path(folder).is_dir() and Path(folder).is_relative_to(data_yaml.parent.resolve()), (key, folder)
            images = sorted(p for p in Path(folder).iterdir())
            labels = ul_utils.img2label_paths([str(p) for p in images])
            assert all(Path(label).is_file() for label in labels), f"{key}: label files missing beside {folder}"
    return data


def test_convert_tile_split_mix_write_datasets_ultralytics_accepts(tmp_path, monkeypatch, capsys):
    src = _source(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert main(["data", "convert", str(src), str(tmp_path / "conv"), "--to", "yolo"]) == 0
    data = _check(tmp_path / "conv" / "data.yaml", elsewhere, monkeypatch)
    assert data["val"] == data["train"]  # no val subset in the source: val is the training folder, announced
    assert len(read_dataset(tmp_path / "conv" / "data.yaml")) == 10  # read once, not once per yaml key

    assert main(["data", "tile", str(src), str(tmp_path / "tiles"), "--slice", "160x160", "--overlap", "0",
                 "--to", "yolo"]) == 0
    _check(tmp_path / "tiles" / "dataset" / "data.yaml", elsewhere, monkeypatch)

    # 8 groups (4 cameras) into train/val/test: one root, every subset inside, images hard-linked
    assert main(["data", "split", str(src), str(tmp_path / "split"), "--to", "yolo", "--link", "hardlink",
                 "--fraction", "train=0.5", "--fraction", "val=0.25", "--fraction", "test=0.25"]) == 0
    data = _check(tmp_path / "split" / "data.yaml", elsewhere, monkeypatch)
    assert {Path(data[k]).name for k in ("train", "val", "test")} == {"train", "val", "test"}
    linked = next((tmp_path / "split" / "images" / "train").iterdir())
    assert linked.stat().st_nlink == 2 and (tmp_path / "frames" / linked.name).samefile(linked)
    back = read_dataset(tmp_path / "split" / "data.yaml")
    assert sorted(Path(s.path).name for s in back.samples) == sorted(f.name for f in (tmp_path / "frames").glob("*.jpg"))

    # a split with an empty subset (one camera cannot fill three subsets) still writes a dataset Ultralytics loads
    one_cam = tmp_path / "one_cam"
    assert main(["data", "split", str(src), str(one_cam), "--to", "yolo", "--link", "symlink", "--group-by", "camera",
                 "--fraction", "train=0.98", "--fraction", "val=0.01", "--fraction", "test=0.01"]) == 0
    _check(one_cam / "data.yaml", elsewhere, monkeypatch)

    capsys.readouterr()
    assert main(["data", "mix", str(tmp_path / "mix"), "--source", f"a={src}:n=4", "--source", f"b={src}:x2",
                 "--to", "yolo"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images_out"] == 24
    _check(tmp_path / "mix" / "dataset" / "data.yaml", elsewhere, monkeypatch)

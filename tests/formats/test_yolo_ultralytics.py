"""Every YOLO dataset sitesight writes (convert, tile, split, mix, synth) loads in Ultralytics' own dataset
checker as written, from a working directory other than the dataset's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats import read_dataset
from sitesight.formats.coco import write_coco
from sitesight.synth import SITE_CLASSES

# Ultralytics runs in a child process: importing it registers PIL plugins (HEIF) in the importing
# process, which would change how other tests' images open.
if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("the [yolo] extra (ultralytics) is not installed", allow_module_level=True)

_CHECK = """
import json, sys
from pathlib import Path
import ultralytics.data.utils as u
u.check_font = lambda *a, **k: None  # offline: no font download
out = []
for yaml_path in sys.argv[1:]:
    data = u.check_det_dataset(yaml_path, autodownload=False)
    labels = {}
    for key in ("train", "val", "test"):
        for folder in [data[key]] if isinstance(data.get(key), str) else data.get(key) or []:
            images = sorted(str(p) for p in Path(folder).iterdir())
            labels[folder] = [Path(p).is_file() for p in u.img2label_paths(images)]
    out.append({"names": {str(k): v for k, v in data["names"].items()}, "nc": data["nc"],
                **{k: data.get(k) for k in ("train", "val", "test")}, "labels": labels})
print(json.dumps(out))
"""

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


def _check(yamls: list[Path], elsewhere: Path, names: dict[Path, tuple[str, ...]] | None = None) -> list[dict]:
    """Ultralytics' ``check_det_dataset`` on each ``data.yaml``, in one process started in ``elsewhere``."""
    out = subprocess.run([sys.executable, "-c", _CHECK, *map(str, yamls)], cwd=elsewhere, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for data_yaml, data in zip(yamls, results, strict=True):
        expected = (names or {}).get(data_yaml, CLASSES)
        assert data["names"] == {str(i): n for i, n in enumerate(expected)} and data["nc"] == len(expected)
        for key in ("train", "val", "test"):
            for folder in [data[key]] if isinstance(data.get(key), str) else data.get(key) or []:
                assert Path(folder).is_dir() and Path(folder).is_relative_to(data_yaml.parent.resolve()), (key, folder)
                assert all(data["labels"][folder]), f"{key}: label files missing beside {folder}"
    return results


def test_convert_tile_split_mix_synth_write_datasets_ultralytics_accepts(tmp_path, capsys):
    src = _source(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert main(["data", "convert", str(src), str(tmp_path / "conv"), "--to", "yolo"]) == 0
    assert len(read_dataset(tmp_path / "conv" / "data.yaml")) == 10  # read once, not once per yaml key

    assert main(["data", "tile", str(src), str(tmp_path / "tiles"), "--slice", "160x160", "--overlap", "0",
                 "--to", "yolo"]) == 0

    # 8 groups (4 cameras) into train/val/test: one root, every subset inside, images hard-linked
    assert main(["data", "split", str(src), str(tmp_path / "split"), "--to", "yolo", "--link", "hardlink",
                 "--fraction", "train=0.5", "--fraction", "val=0.25", "--fraction", "test=0.25"]) == 0
    linked = next((tmp_path / "split" / "images" / "train").iterdir())
    assert linked.stat().st_nlink == 2 and (tmp_path / "frames" / linked.name).samefile(linked)
    back = read_dataset(tmp_path / "split" / "data.yaml")
    assert sorted(Path(s.path).name for s in back.samples) == sorted(f.name for f in (tmp_path / "frames").glob("*.jpg"))

    # a split with an empty subset (one camera cannot fill three subsets) still writes a dataset Ultralytics loads
    one_cam = tmp_path / "one_cam"
    assert main(["data", "split", str(src), str(one_cam), "--to", "yolo", "--link", "symlink", "--group-by", "camera",
                 "--fraction", "train=0.98", "--fraction", "val=0.01", "--fraction", "test=0.01"]) == 0

    capsys.readouterr()
    assert main(["data", "mix", str(tmp_path / "mix"), "--source", f"a={src}:n=4", "--source", f"b={src}:x2",
                 "--to", "yolo"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images_out"] == 24

    assert main(["synth", str(tmp_path / "synth"), "--frames", "2", "--size", "320x240", "--format", "yolo"]) == 0

    conv, _, split, _, _, _ = _check([tmp_path / "conv" / "data.yaml", tmp_path / "tiles" / "dataset" / "data.yaml",
                                      tmp_path / "split" / "data.yaml", one_cam / "data.yaml",
                                      tmp_path / "mix" / "dataset" / "data.yaml", tmp_path / "synth" / "yolo" / "data.yaml"],
                                     elsewhere, names={tmp_path / "synth" / "yolo" / "data.yaml": SITE_CLASSES})  # fmt: skip
    assert conv["val"] == conv["train"]  # no val subset in the source: val is the training folder, announced
    assert {Path(split[k]).name for k in ("train", "val", "test")} == {"train", "val", "test"}

"""`predict roi|cls` are batch commands: an unreadable image is skipped with its reason, named on
stderr, and every readable one is still predicted (exit 0)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from sitesight.cli.main import main  # noqa: E402
from sitesight.formats.cvat_write import write_cvat  # noqa: E402
from sitesight.synth import write_site_dataset  # noqa: E402


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_predict_cls_skips_unreadable_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for k, name in enumerate(("dark", "bright")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 100, (32, 32, 3)) + 150 * k
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}_{i}.jpg")
    run = tmp_path / "run"
    assert main(["train", "cls", str(root), "--backbone", "tiny_cnn", "--epochs", "1", "--batch-size", "4", "--device", "cpu",
                 "--val-fraction", "0.3", "--random-init", "--out", str(run)]) == 0
    _truncate(root / "dark" / "dark_0.jpg")
    (root / "bright" / "bright_0.jpg").write_bytes(b"")
    capsys.readouterr()
    out = tmp_path / "p.csv"
    assert main(["predict", "cls", "--model", str(run / "best.safetensors"), "--images", str(root), "--device", "cpu", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "dark_0.jpg" in err and "bright_0.jpg" in err and "2 unreadable" in err
    names = sorted(r["image"].rsplit("/", 1)[-1] for r in _rows(out))
    assert names == sorted(f"{n}_{i}.jpg" for n in ("dark", "bright") for i in range(1, 6))
    assert {r["label"] for r in _rows(out)} == {"dark", "bright"}  # labels stay with their own images


def test_predict_roi_skips_an_unreadable_frame(tmp_path, capsys):
    ds = write_site_dataset(tmp_path / "frames", n_frames=3, seed=4, image_wh=(640, 360), n_cameras=1)
    xml = write_cvat(ds, tmp_path / "frames" / "annotations.xml")
    run = tmp_path / "run"
    assert main(["train", "roi", str(xml), "--val", str(xml), "--box-class", "person", "--attribute", "safety_rope",
                 "--backbone", "tiny_cnn", "--random-init", "--frame-size", "320x180", "--epochs", "1", "--batch-size", "3",
                 "--no-augment", "--device", "cpu", "--out", str(run)]) == 0
    bad = ds.image_path(ds.samples[1])
    shutil.copy(bad, tmp_path / "kept.jpg")
    _truncate(bad)
    capsys.readouterr()
    out = tmp_path / "roi.csv"
    assert main(["predict", "roi", "--model", str(run / "best.safetensors"), "--boxes", str(xml), "--device", "cpu", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert bad.name in err and "1 unreadable" in err
    images = {r["image"].rsplit("/", 1)[-1] for r in _rows(out)}
    persons = ds.class_index("person")
    expected = {ds.image_path(s).name for i, s in enumerate(ds.samples) if i != 1 and (s.gt.class_id == persons).any()}
    assert images == expected

"""The mAP tools' per-image text layout: ground truth and detections round-trip, the folder is
detected, and `data convert` refuses a folder it cannot read."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.formats import detect_format, read_dataset
from sitesight.formats.textboxes import (
    read_text_boxes,
    read_text_detections,
    write_text_boxes,
    write_text_detections,
)


def _dataset(rng) -> Dataset:
    samples = []
    for i in range(6):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 500, (n, 2))
        xyxy = np.round(np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], 1) * 4) / 4  # quarter pixels
        difficult = np.array(["1" if d else "0" for d in rng.random(n) < 0.3], object)
        samples.append(Sample(path=f"frame_{i:02d}", image_wh=(int(np.ceil(xyxy[:, 2].max(initial=1))),
                                                                int(np.ceil(xyxy[:, 3].max(initial=1)))),
                              gt=Detections(xyxy=xyxy, class_id=rng.integers(0, 3, n), attributes={"difficult": difficult})))
    return Dataset(class_names=("helmet", "person", "vest"), samples=samples)


def test_ground_truth_and_detections_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ds = _dataset(rng)
    write_text_boxes(ds, tmp_path / "gt")
    # a hand-written line in the tools' own spelling, checked independently of the writer
    assert (tmp_path / "gt" / "frame_00.txt").read_text().splitlines()[0].split()[0] in ds.class_names
    back = read_text_boxes(tmp_path / "gt", class_names=ds.class_names)
    assert detect_format(tmp_path / "gt") == "txt" and len(read_dataset(tmp_path / "gt")) == 6
    assert [s.path for s in back.samples] == [s.path for s in ds.samples]
    for a, b in zip(ds.samples, back.samples, strict=True):
        np.testing.assert_array_equal(b.gt.xyxy, a.gt.xyxy)
        assert b.gt.class_id.tolist() == a.gt.class_id.tolist()
        assert b.gt.attributes["difficult"].tolist() == a.gt.attributes["difficult"].tolist()
        if len(a.gt):
            assert b.image_wh == a.image_wh
    preds = [Detections(xyxy=s.gt.xyxy + 1.5, class_id=s.gt.class_id, score=rng.random(len(s.gt)).astype(np.float32))
             for s in ds.samples]
    write_text_detections(ds, preds, tmp_path / "det")
    got = read_text_detections(tmp_path / "det", back)
    for p, g in zip(preds, got, strict=True):
        np.testing.assert_array_equal(g.xyxy, p.xyxy)
        np.testing.assert_array_equal(g.score, p.score)
        assert g.class_id.tolist() == p.class_id.tolist()


def test_hand_written_files_and_images(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "images").mkdir()
    Image.new("RGB", (640, 480)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "gt" / "a.txt").write_text("person 10 20 110 220\nhelmet 30 20 50 40 difficult\n")
    (tmp_path / "gt" / "b.txt").write_text("")
    ds = read_text_boxes(tmp_path / "gt", images=tmp_path / "images")
    assert ds.class_names == ("helmet", "person") and ds.samples[0].image_wh == (640, 480)
    assert ds.samples[0].gt.xyxy.tolist() == [[10, 20, 110, 220], [30, 20, 50, 40]]
    assert ds.samples[0].gt.attributes["difficult"].tolist() == ["0", "1"] and len(ds.samples[1].gt) == 0
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "a.txt").write_text("person 0.9 10 20 110 220\n")
    det = read_text_detections(tmp_path / "det", ds)
    assert det[0].score.tolist() == pytest.approx([0.9]) and len(det[1]) == 0
    (tmp_path / "det" / "a.txt").write_text("dog 0.9 10 20 110 220\n")
    with pytest.raises(InputError, match=r"a\.txt \(line 1\).*'dog'"):
        read_text_detections(tmp_path / "det", ds)
    (tmp_path / "gt" / "a.txt").write_text("person 10 20 110\n")
    with pytest.raises(InputError, match=r"a\.txt \(line 1\)"):
        read_text_boxes(tmp_path / "gt")


def test_convert_refuses_a_folder_it_cannot_read(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("these are meeting notes, not labels\n")
    assert main(["data", "convert", str(tmp_path / "notes"), str(tmp_path / "out.json"), "--to", "coco"]) == 1
    assert "nothing to convert" in capsys.readouterr().err and not (tmp_path / "out.json").exists()

from __future__ import annotations

import numpy as np
from PIL import Image

from sitesight import AttributeSpec, Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.cvat import write_cvat
from sitesight.validation import validate_dataset, validate_path


def _dataset(tmp_path):
    Image.new("RGB", (100, 50)).save(tmp_path / "a.jpg")
    rope = np.empty(5, object)
    rope[:] = ["correct", "bogus", None, "wrong", "correct"]
    gt = Detections(
        xyxy=[[0, 0, 100, 50], [-5, 10, 20, 20], [30, 30, 30, 40], [40, 10, 60, 30], [40.2, 10, 60, 30.1]],
        class_id=[0, 0, 1, 0, 0],
        attributes={"rope": rope},
    )
    Image.new("RGB", (30, 20)).save(tmp_path / "wrong_size.jpg")
    samples = [Sample("a.jpg", (100, 50), gt), Sample("missing.jpg", (10, 10)), Sample("wrong_size.jpg", (20, 30))]
    schema = {"rope": AttributeSpec("rope", ("correct", "wrong"), "radio", labels=("person",))}
    return Dataset(("person", "head"), samples, schema, root=tmp_path)


def test_each_check_fires_exactly_where_expected(tmp_path):
    issues = validate_dataset(_dataset(tmp_path))
    found = sorted((i.code, i.where or i.path.split("/")[-1]) for i in issues)
    assert [code for code, _ in found] == [
        "attribute_value", "box_outside_image", "duplicate_box", "image_missing", "image_size_mismatch", "zero_area"
    ]  # fmt: skip
    where = dict(found)
    assert where["box_outside_image"].startswith("box #1") and where["zero_area"].startswith("box #2")
    assert where["duplicate_box"].startswith("box #4") and where["attribute_value"].startswith("box #1")
    assert where["image_missing"] == "missing.jpg"
    # a box touching the frame edge exactly (ybr == height) is fine
    assert not any(i.where and i.where.startswith("box #0") for i in issues)


def test_validate_path_and_cli_exit_codes(tmp_path, capsys):
    ds = _dataset(tmp_path)
    xml = write_cvat(ds, tmp_path / "t.xml")
    report = validate_path(xml)
    assert report.fmt == "cvat" and not report.ok and report.n_boxes == 5
    assert report.counts()["duplicate_box"] == 1
    assert main(["data", "validate", str(xml), "--json", str(tmp_path / "r.json")]) == 1
    assert (tmp_path / "r.json").is_file()
    clean = ds.with_samples([ds[0].replace(gt=ds[0].gt[[0, 3]])])
    assert "image_size_mismatch" in report.counts()
    assert main(["data", "validate", str(write_cvat(clean, tmp_path / "clean.xml"))]) == 0
    out = capsys.readouterr().out
    assert "no errors" in out

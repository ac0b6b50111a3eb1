from __future__ import annotations

import zipfile

import numpy as np

from sitesight import AttributeSpec, Dataset, Detections, Sample
from sitesight.curation.packaging import package_cvat_tasks
from sitesight.formats.cvat import read_cvat


def _dataset(tmp_path, n=5):
    samples = []
    for i in range(n):
        folder = tmp_path / "src" / f"cam{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"frame{i // 2}.jpg"  # names repeat across folders
        from PIL import Image

        Image.new("RGB", (64, 48), (i * 40, 0, 0)).save(path)
        gt = Detections(xyxy=[[1.5, 2, 20, 30.25]], class_id=[i % 2],
                        attributes={"rope": np.array(["correct" if i % 2 == 0 else None], object)})
        samples.append(Sample(path=path, image_wh=(64, 48), gt=gt))
    schema = {"rope": AttributeSpec("rope", ("correct", "wrong"), "radio", labels=("person",))}
    return Dataset(class_names=("person", "helmet"), samples=samples, attribute_schema=schema)


def test_parts_hold_images_and_cvat_xml_that_reads_back(tmp_path):
    ds = _dataset(tmp_path)
    parts = package_cvat_tasks(ds, tmp_path / "out", max_images=2)
    assert [p.name for p in parts] == ["part_001", "part_002", "part_003"]
    back = [read_cvat(p / "annotations.xml") for p in parts]
    assert [len(b) for b in back] == [2, 2, 1]
    names = [sorted(f.name for f in (p / "images").iterdir()) for p in parts]
    assert names[0] == ["00001_frame0.jpg", "frame0.jpg"]  # same name from two folders made unique
    for part, b in zip(parts, back, strict=True):
        for s in b.samples:
            assert b.image_path(s).is_file() and b.image_path(s).parent == part / "images"  # names match the files
            np.testing.assert_allclose(s.gt.xyxy, [[1.5, 2, 20, 30.25]], atol=0.01)
        assert b.class_names == ("person", "helmet")
    assert back[0].samples[0].gt.attributes["rope"].tolist() == ["correct"]


def test_zip_parts_and_missing_images(tmp_path):
    ds = _dataset(tmp_path, 3)
    ds = ds.with_samples([*ds.samples, Sample(tmp_path / "gone.jpg", (64, 48))])
    parts = package_cvat_tasks(ds, tmp_path / "zips", max_images=3, as_zip=True, prefix="hard")
    assert [p.name for p in parts] == ["hard_001.zip", "hard_002.zip"]
    with zipfile.ZipFile(parts[0]) as zf:
        members = sorted(zf.namelist())
    assert members[0] == "annotations.xml" and len([m for m in members if m.startswith("images/")]) == 3
    with zipfile.ZipFile(parts[1]) as zf:
        assert zf.namelist() == ["annotations.xml"]  # the missing image is left out, and logged

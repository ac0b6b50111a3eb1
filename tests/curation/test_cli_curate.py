from __future__ import annotations

import json
import zipfile

import numpy as np

from sitesight import AttributeSpec, Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats import read_dataset
from sitesight.formats.cvat import write_cvat

from .scenes import save, scene, with_clock


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _labelled(tmp_path):
    samples = []
    for i in range(8):
        cam = f"cam{i % 4}"
        path = save(scene(i, (320, 240)), tmp_path / "frames" / f"{cam}_20240101T0000{i:02d}.jpg")
        gt = Detections(
            xyxy=[[10, 10, 40, 60], [200, 100, 300, 220], [150, 150, 158, 160]],
            class_id=[0, 1, 1],
            attributes={"has_safety_helmet": np.array(["no" if i % 2 else "yes", None, None], object)},
        )
        samples.append(Sample(path=path.name, image_wh=(320, 240), gt=gt))
    schema = {"has_safety_helmet": AttributeSpec("has_safety_helmet", ("yes", "no"), "radio", labels=("head",))}
    ds = Dataset(class_names=("head", "person"), samples=samples, attribute_schema=schema, root=tmp_path / "frames")
    return write_cvat(ds, tmp_path / "frames" / "annotations.xml")


def test_dedup_and_sample_commands(tmp_path, capsys):
    base = scene(1)
    for s in range(4):
        save(with_clock(base, f"08:00:{s:02d}"), tmp_path / "cap" / f"cam1_20240101T0800{s:02d}.jpg")
    save(scene(2), tmp_path / "cap" / "cam1_20240101T080100.jpg")
    (tmp_path / "cap" / "cam1_20240101T080200.jpg").write_bytes(b"broken")
    assert main(["data", "dedup", str(tmp_path / "cap"), "--report", str(tmp_path / "r.json"),
                 "--ignore-region", "0,0,200,40"]) == 0
    summary = _last_json(capsys)
    assert summary == {"frames": 6, "kept": 2, "dropped": 3, "skipped": 1, "cameras": 1}
    assert len(list((tmp_path / "cap").iterdir())) == 6  # nothing deleted without --delete
    assert main(["data", "dedup", str(tmp_path / "cap"), "--report", str(tmp_path / "r.csv"), "--delete"]) == 0
    assert _last_json(capsys)["deleted"] == 3 and len(list((tmp_path / "cap").iterdir())) == 3
    assert main(["data", "sample", str(tmp_path / "cap"), "--every", "30", "--out", str(tmp_path / "s.txt")]) == 0
    picked = _last_json(capsys)
    assert (picked["picked"], picked["skipped"]) == (2, 1)  # the broken frame is listed with its reason, not picked
    assert main(["data", "dedup", str(tmp_path / "cap"), "--ignore-region", "1,2"]) == 1
    assert "--ignore-region" in capsys.readouterr().err


def test_filter_split_tile_mix_package_commands(tmp_path, capsys):
    xml = _labelled(tmp_path)
    out = tmp_path / "filtered.json"
    assert main(["data", "filter", str(xml), str(out), "--to", "coco", "--fixed-location", "--min-frames", "2",
                 "--attr-rule", "head:has_safety_helmet=no->head_without_helmet", "--remap", "person=worker"]) == 0
    result = _last_json(capsys)
    assert result["fixed_location_dropped"] == 8  # the 8x10 px box at one place in every frame of its camera
    assert result["classes"] == ["head", "worker", "head_without_helmet"]
    assert read_dataset(out).class_counts() == {"head": 4, "worker": 8, "head_without_helmet": 4}

    assert main(["data", "split", str(xml), str(tmp_path / "split"), "--to", "coco", "--fraction", "train=0.5",
                 "--fraction", "test=0.5"]) == 0
    parts = _last_json(capsys)["subsets"]
    assert parts["train"]["images"] == parts["test"]["images"] == 4
    cams = [{str(s.path).split("/")[-1][:4] for s in read_dataset(tmp_path / "split" / n / "annotations.json").samples}
            for n in ("train", "test")]
    assert not cams[0] & cams[1]

    assert main(["data", "tile", str(xml), str(tmp_path / "tiles"), "--slice", "160x160", "--overlap", "0"]) == 0
    assert _last_json(capsys)["tiles"] == 8 * 4

    assert main(["data", "mix", str(tmp_path / "mix"), "--source", f"a={xml}:n=3", "--source", f"b={xml}:x2"]) == 0
    assert _last_json(capsys) == {"images_out": 19, "sources": {"a": 3, "b": 16}}
    manifest = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    assert manifest["sources"][0]["selected"] == 3

    assert main(["data", "package", str(xml), str(tmp_path / "pkg"), "--max-images", "3", "--zip"]) == 0
    pkg = _last_json(capsys)
    assert len(pkg["parts"]) == 3 and all(zipfile.is_zipfile(p) for p in pkg["parts"])
    assert main(["data", "package", str(tmp_path / "frames"), str(tmp_path / "pkg2"), "--images", "--label", "person"]) == 0
    assert len(_last_json(capsys)["parts"]) == 1
    back = read_dataset(tmp_path / "pkg2" / "part_001" / "annotations.xml")
    assert len(back) == 8 and back.class_names == ("person",)

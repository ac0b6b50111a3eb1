from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from sitesight import Dataset, Detections, InputError, Sample
from sitesight.curation.captures import capture_from_path, list_captures, parse_capture_name
from sitesight.curation.mix import MixSource, mix_datasets, parse_source_spec, write_manifest
from sitesight.curation.sampling import read_exclusions, sample_by_time


def _ds(prefix: str, n: int, classes: tuple[str, ...], cls: int) -> Dataset:
    samples = [Sample(f"{prefix}{i}.jpg", (10, 10), Detections(xyxy=[[0, 0, 5, 5]], class_id=[cls])) for i in range(n)]
    return Dataset(class_names=classes, samples=samples, root=Path("/data") / prefix)


def test_mix_subsample_and_oversample_with_manifest(tmp_path):
    base = _ds("b", 50, ("person", "helmet"), 0)
    site = _ds("s", 4, ("helmet", "rope"), 1)
    mixed, manifest = mix_datasets([MixSource("base", base, count=20), MixSource("site", site, repeat=8)], seed=3)
    assert len(mixed) == 20 + 32 and mixed.class_names == ("person", "helmet", "rope")
    paths = [str(s.path) for s in mixed.samples]
    assert len({p for p in paths if "/data/b/" in p}) == 20
    assert all(paths.count(f"/data/s/s{i}.jpg") == 8 for i in range(4))
    assert {int(s.gt.class_id[0]) for s in mixed.samples if "/data/s/" in str(s.path)} == {2}  # rope remapped
    assert manifest["sources"][1]["boxes_out"] == {"person": 0, "helmet": 0, "rope": 32}
    assert sum(r["copies"] for r in manifest["images"]) == 52
    again, _ = mix_datasets([MixSource("base", base, count=20), MixSource("site", site, repeat=8)], seed=3)
    assert [s.path for s in again.samples] == [s.path for s in mixed.samples]  # seeded
    frac, _ = mix_datasets([MixSource("site", site, repeat=1.5)], shuffle=False)
    assert len(frac) == 6
    written = json.loads(write_manifest(manifest, tmp_path / "m.json").read_text())
    assert written["images_out"] == 52
    with pytest.raises(InputError, match="unique"):
        mix_datasets([MixSource("a", base), MixSource("a", site)])


def test_parse_source_spec():
    assert parse_source_spec("base=coco/train.json:n=8000") == ("base", Path("coco/train.json"), 8000, 1.0)
    assert parse_source_spec("site=labels/site:x8") == ("site", Path("labels/site"), None, 8.0)
    assert parse_source_spec("data/x.xml:n=10:x2.5") == ("x", Path("data/x.xml"), 10, 2.5)


def test_capture_names_and_fallbacks(tmp_path):
    assert parse_capture_name("cam03_20240512T081500.jpg") == ("cam03", 1715501700.0)
    assert parse_capture_name("gate-2_1715501700123.jpg") == ("gate-2", 1715501700.123)
    assert parse_capture_name("IMG_0001.jpg") == (None, None)
    f = tmp_path / "north" / "IMG_0001.jpg"
    f.parent.mkdir()
    f.write_bytes(b"x")
    os.utime(f, (1000.0, 1000.0))
    c = capture_from_path(f)
    assert (c.camera_id, c.timestamp) == ("north", 1000.0)
    custom = capture_from_path(tmp_path / "x" / "2024-05-12 08.15.00 CAM9.jpg", pattern=r"CAM(?P<camera>\d+)", use_mtime=False)
    assert (custom.camera_id, custom.timestamp) == ("9", None)
    assert [c.path.name for c in list_captures([tmp_path])] == ["IMG_0001.jpg"]
    with pytest.raises(InputError, match="no such file"):
        list_captures([tmp_path / "nope"])


def test_sample_by_time_interleaves_and_excludes(tmp_path):
    names = [f"a_{1700000000 + t}.jpg" for t in (0, 20, 50, 65, 130, 140)] + [f"b_{1700000000 + t}.jpg" for t in (5, 100, 200)]
    caps = [capture_from_path(tmp_path / n, use_mtime=False, index=i) for i, n in enumerate(names)]
    picks = sample_by_time(caps, every_s=60)
    # camera a: 0, 65 (>=60 after 0), 130 (65 after 65); camera b: 5, 100, 200
    assert [c.path.name for c in picks] == ["a_1700000000.jpg", "b_1700000005.jpg", "a_1700000065.jpg",
                                            "b_1700000100.jpg", "a_1700000130.jpg", "b_1700000200.jpg"]
    excl = tmp_path / "labelled.txt"
    excl.write_text("# already labelled\na_1700000000.jpg\n1700000100.2\n")
    paths, stamps = read_exclusions(excl)
    picks = sample_by_time(caps, every_s=60, exclude_paths=paths, exclude_timestamps=stamps, max_frames=3)
    assert [c.path.name for c in picks] == ["a_1700000020.jpg", "b_1700000005.jpg", "a_1700000130.jpg"]
    assert np.isclose(stamps[0], 1700000100.2)

"""Same inputs and seed, same bytes: `synth` and the format writers write no creation times unless asked."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from sitesight.cli.main import main


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["cvat", "coco", "yolo", "voc"])
def test_synth_twice_gives_identical_bytes(tmp_path, fmt, capsys):
    out = tmp_path / "synth"
    digests = []
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        assert main(["synth", str(out), "-n", "2", "--size", "160x120", "--seed", "3", "-f", fmt]) == 0, capsys.readouterr().err
        digests.append(_digest(out))
    assert digests[0] == digests[1] and len(digests[0]) >= 3


def test_cvat_timestamps_only_when_asked(tmp_path):
    from sitesight.dataset import Dataset, Sample
    from sitesight.detections import Detections
    from sitesight.formats.cvat import write_cvat

    ds = Dataset(class_names=("p",), samples=(Sample(path="a.jpg", image_wh=(8, 6), gt=Detections(xyxy=[[1, 1, 3, 3]], class_id=[0])),))
    plain = write_cvat(ds, tmp_path / "a.xml").read_text()
    assert "<created></created>" in plain and "<dumped></dumped>" in plain
    stamped = write_cvat(ds, tmp_path / "b.xml", timestamps=True).read_text()
    assert "<created>20" in stamped and "<dumped>20" in stamped

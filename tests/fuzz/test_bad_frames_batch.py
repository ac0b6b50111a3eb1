"""Every batch command meets the bad-frames folder of `test_bad_frames` (bomb PNG, GIF, dangling link,
zero-byte file, truncated JPEG, with 16-bit, CMYK and plain frames): each good frame is processed, each
bad one is listed with its reason in the summary and on stderr, and the command exits 0.

Commands that decode pixels (dedup, tile, predict) also find the truncated JPEG; the ones that read
headers only (sample, package) cannot, and say so in their help."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight.cli.main import main

from .test_bad_frames import BAD, GOOD
from .test_bad_frames import frames as frames  # noqa: F401 - the fixture

HEADER_ONLY = {k: v for k, v in BAD.items() if k != "truncated.jpg"}


def _coco(frames: Path) -> Path:
    names = sorted(p.name for p in frames.iterdir())
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 120, "height": 90} for i, n in enumerate(names)],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2, 2, 20, 30]} for i in range(len(names))]}  # fmt: skip
    path = frames / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def _run(argv: list[str], capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads([line for line in captured.out.splitlines() if line.startswith("{")][-1])
    return summary, captured.err


def _check(summary: dict, err: str, expected: dict[str, str]) -> None:
    listed = {Path(path).name: reason for path, reason in summary["skipped_frames"]}
    assert set(listed) == set(expected), listed
    for name, words in expected.items():
        assert words.lower() in listed[name].lower(), (name, listed[name])
        assert name in err
    assert summary["skipped"] == len(expected)


def test_dedup(frames, tmp_path, capsys):
    report = tmp_path / "dedup.json"
    assert main(["data", "dedup", str(frames), "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    listed = {Path(path).name: reason for path, reason in doc["skipped"]}
    assert set(listed) == set(BAD) and all(BAD[n].lower() in listed[n].lower() for n in BAD), listed
    assert sorted(Path(d["path"]).name for d in doc["decisions"]) == sorted(GOOD)


def test_sample(frames, tmp_path, capsys):
    out = tmp_path / "picked.txt"
    summary, err = _run(["data", "sample", str(frames), "--every", "0", "--out", str(out)], capsys)
    _check(summary, err, HEADER_ONLY)
    picked = {Path(line).name for line in out.read_text().splitlines()}
    assert picked == set(GOOD) | {"truncated.jpg"}


def test_tile(frames, tmp_path, capsys):
    summary, err = _run(["data", "tile", str(_coco(frames)), str(tmp_path / "tiles"), "--slice", "64x64", "--to", "coco"], capsys)
    _check(summary, err, BAD)
    tiled_from = {p.name.rsplit("_", 4)[0] for p in (tmp_path / "tiles" / "tiles").iterdir()}
    assert tiled_from == {Path(n).stem for n in GOOD}
    grey = [p for p in (tmp_path / "tiles" / "tiles").iterdir() if p.name.startswith("grey16_")]
    assert grey and all(abs(float(np.asarray(Image.open(p)).mean()) - 128) < 2 for p in grey)  # 16-bit: grey, not white


@pytest.mark.parametrize("images", [False, True])
def test_package(frames, tmp_path, capsys, images):
    src = str(frames) if images else str(_coco(frames))
    out = tmp_path / "parts"
    summary, err = _run(["data", "package", src, str(out), "--zip", *(["--images"] if images else [])], capsys)
    _check(summary, err, HEADER_ONLY)
    with zipfile.ZipFile(out / "part_001.zip") as zf:
        packed = {Path(n).name for n in zf.namelist() if n.startswith("images/")}
        xml = zf.read("annotations.xml").decode()
    assert packed == set(GOOD) | {"truncated.jpg"}
    assert "anim.gif" not in xml and "bomb.png" not in xml

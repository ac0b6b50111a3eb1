"""`sitesight detect` on a folder where some frames are hostile or odd: good frames are all processed,
bad ones are listed with their reason (in the run and in the end summary), exit 0, resume is a no-op."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight.cli.main import main
from sitesight.detections import Detections
from sitesight.sliced.store import load_run

SEEN: dict[tuple, float] = {}  # frame shape + mean pixel, as the detector received them


def _detector(images: list[np.ndarray]) -> list[Detections]:
    """A hand-written 'model': one box in the middle of every image, score = mean grey / 255."""
    out = []
    for rgb in images:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        h, w = rgb.shape[:2]
        SEEN[(h, w, round(float(rgb.mean()), 1))] = float(rgb.mean())
        out.append(Detections(xyxy=[[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], score=[max(float(rgb.mean()) / 255, 0.01)], class_id=[0]))
    return out


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # good frames
        Image.fromarray(rng.integers(0, 255, (90, 120 + 10 * i, 3), dtype=np.uint8)).save(folder / f"good_{i}.png")
    Image.fromarray(np.full((60, 80, 3), 200, np.uint8)).save(folder / "good_jpeg.jpg", quality=95)
    Image.fromarray(np.full((40, 50), 128 * 257, np.uint16)).save(folder / "grey16.png")  # 16-bit: 128/255 grey, not white
    Image.new("CMYK", (70, 50), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)  # pure red
    _png_header_only(folder / "bomb.png", 20000, 20000)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "anim.gif")
    os.symlink(folder / "gone.jpg", folder / "dangling.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    full = folder / "full.jpg"
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(full)
    (folder / "truncated.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    full.unlink()
    return folder


BAD = {
    "bomb.png": "decompression-bomb limit",
    "anim.gif": "GIF",
    "dangling.jpg": "dangling symbolic link",
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated",
}
GOOD = ["good_0.png", "good_1.png", "good_2.png", "good_jpeg.jpg", "grey16.png", "cmyk.jpg"]


def test_detect_folder_with_bad_frames(frames: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import sitesight.predictors

    monkeypatch.setattr(sitesight.predictors, "build_detector", lambda *a, **k: _detector)
    SEEN.clear()
    out = tmp_path / "run"
    code = main(["detect", str(frames), "--model", "yolo:stand-in.pt", "--out", str(out), "--slice", "512", "--no-full-frame"])
    err = capsys.readouterr().err
    assert code == 0, err
    run = load_run(out)
    processed = sorted(Path(f.key).name for f in run.frames)
    assert processed == sorted(GOOD)
    reasons = {Path(s.key).name: s.reason for s in run.skipped}
    assert sorted(reasons) == sorted(BAD)
    for name, reason in BAD.items():
        assert reason in reasons[name], (name, reasons[name])
        assert name in err and reason in " ".join(err.split())  # the end summary lists each one with its reason
    assert f"{len(GOOD)} frames processed, {len(BAD)} skipped" in err
    # 16-bit grey reached the model as mid grey (not 99.6 % white), CMYK as red
    grey = [v for (h, w, _), v in SEEN.items() if (h, w) == (40, 50)]
    assert grey and all(abs(v - 128) < 1.0 for v in grey)
    assert any(k[:2] == (50, 70) for k in SEEN)  # the CMYK frame was processed (its colours: the test below)
    # the run's manifest lists every bad frame with its reason (and no good one)
    listed = {Path(e["key"]).name: e["reason"] for e in json.loads((out / "manifest.json").read_text())["skipped"]}
    assert sorted(listed) == sorted(BAD)
    for name, reason in BAD.items():
        assert reason in listed[name], (name, listed[name])
    shards = sorted(p.name for p in (out / "shards").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in sorted((out / "shards").iterdir())]
    files = {p: p.read_bytes() for p in [out / "manifest.json", *sorted((out / "shards").iterdir())]}
    manifest_mtime = (out / "manifest.json").stat().st_mtime_ns
    # resume: nothing is redone, nothing is retried, nothing is rewritten
    code = main(["detect", str(frames), "--model", "yolo:stand-in.pt", "--out", str(out), "--slice", "512", "--no-full-frame"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"0 frames processed, 0 skipped, {len(GOOD) + len(BAD)} already done" in err
    assert f"{len(BAD)} frames skipped by an earlier pass" in " ".join(err.split())
    assert sorted(p.name for p in (out / "shards").iterdir()) == shards
    assert [p.stat().st_mtime_ns for p in sorted((out / "shards").iterdir())] == mtimes
    assert {p: p.read_bytes() for p in files} == files and (out / "manifest.json").stat().st_mtime_ns == manifest_mtime


def test_cmyk_and_16_bit_decode_like_an_independent_reference(frames: Path) -> None:
    from sitesight.images import read_image_rgb

    grey = read_image_rgb(frames / "grey16.png")
    raw = np.asarray(Image.open(frames / "grey16.png")).astype(np.float64)
    assert grey.dtype == np.uint8 and np.array_equal(grey[..., 0], np.round(raw / 257).astype(np.uint8))
    cmyk = read_image_rgb(frames / "cmyk.jpg")
    reference = np.asarray(Image.open(frames / "cmyk.jpg").convert("RGB"))
    assert np.array_equal(cmyk, reference)
    assert cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 50  # red, as the CMYK values say

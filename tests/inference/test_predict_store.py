"""Sliced prediction batching/provenance, the run store, resume after kills, unreadable frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Detections
from sitesight.errors import InputError
from sitesight.sliced.frames import FrameRef, iter_frames, list_frames
from sitesight.sliced.predict import detect_to_run, predict_sliced
from sitesight.sliced.store import load_run, open_run, write_run, write_shard

from .blobs import blob_detector, blob_image

sahi_slicing = pytest.importorskip("sahi.slicing")


def test_predict_sliced_batches_across_frames_and_records_sources():
    calls = []

    def corner_detector(images):  # one 4x4 box at (2, 2) of every image it sees
        calls.append([im.shape for im in images])
        return [Detections(xyxy=[[2, 2, 6, 6]], score=[0.5], class_id=[1]) for _ in images]

    frames = [np.zeros((300, 500, 3), np.uint8), np.zeros((200, 200, 3), np.uint8)]
    raw = predict_sliced(frames, corner_detector, slice_wh=(128, 128), overlap_ratio=(0.25, 0.25), batch_size=4)
    for frame, det in zip(frames, raw, strict=True):
        h, w = frame.shape[:2]
        # SAHI's own slice boxes are the reference for where every slice lies
        expected = np.array(sahi_slicing.get_slice_bboxes(h, w, 128, 128, auto_slice_resolution=False,
                                                          overlap_height_ratio=0.25, overlap_width_ratio=0.25))
        assert det.attributes["source"].tolist() == [*range(len(expected)), -1]
        np.testing.assert_array_equal(det.xyxy[:-1], expected[:, [0, 1, 0, 1]] + [2, 2, 6, 6])
        np.testing.assert_array_equal(det.xyxy[-1], [2, 2, 6, 6])
    # a batch holds crops of one input size only; the 15 + 4 slices of both frames fill batches of 4 back
    # to back across the two frames, and each full frame (another size) goes in a batch of its own size
    assert all(len(c) <= 4 and len(set(c)) == 1 for c in calls)
    assert [len(c) for c in calls if c[0] == (128, 128, 3)] == [4, 4, 4, 4, 3]
    assert sorted(s for c in calls if c[0] != (128, 128, 3) for s in c) == [(200, 200, 3), (300, 500, 3)]


def test_predict_sliced_resizes_slices_and_full_frame_and_scales_boxes_back():
    calls = []

    def corner_detector(images):  # one box at (2, 2)-(6, 6) in the pixels of the image it is given
        calls.extend(im.shape for im in images)
        return [Detections(xyxy=[[2, 2, 6, 6]], score=[0.5], class_id=[0]) for _ in images]

    frame = np.zeros((300, 500, 3), np.uint8)
    (det,) = predict_sliced([frame], corner_detector, slice_wh=(128, 128), overlap_ratio=(0.25, 0.25), batch_size=3,
                            imgsz=64, full_imgsz=250)
    expected = np.array(sahi_slicing.get_slice_bboxes(300, 500, 128, 128, auto_slice_resolution=False,
                                                      overlap_height_ratio=0.25, overlap_width_ratio=0.25))
    assert sorted(set(calls)) == [(64, 64, 3), (150, 250, 3)]  # slices at 64 px, the frame at 250 px wide
    assert det.attributes["source"].tolist() == [*range(len(expected)), -1]
    # a slice shrunk 2x: the box is 2x larger in frame pixels, then moved to the slice's corner
    np.testing.assert_allclose(det.xyxy[:-1], expected[:, [0, 1, 0, 1]] + [4, 4, 12, 12])
    np.testing.assert_allclose(det.xyxy[-1], [4, 4, 12, 12])  # the frame shrunk 2x as well


def test_store_round_trip_keeps_attributes_and_empty_frames(tmp_path):
    raw = [
        Detections(xyxy=[[0, 0, 9, 9], [1, 2, 5, 8]], score=[0.5, 0.25], class_id=[0, 2],
                   attributes={"source": np.array([3, -1], np.int32), "iou_pred": np.array([0.7, 0.1], np.float32),
                               "safety_rope": np.array(["wrong", None], object)}),
        Detections.empty(),
    ]
    run = write_run(tmp_path / "run", [("a.jpg", (100, 50)), ("b.jpg", (10, 10))], raw, model="stand-in",
                    parameters={"slice_wh": (64, 64), "overlap_ratio": (0.2, 0.2)}, frames_per_shard=1)
    assert [f.key for f in run.frames] == ["a.jpg", "b.jpg"] and run.frames[0].image_wh == (100, 50)
    assert run.raw[0].equals(raw[0]) and len(run.raw[1]) == 0
    assert run.manifest["model"] == "stand-in" and "pyarrow" in run.manifest["versions"]
    # the shards are plain Parquet: one row per box with the documented columns
    import pyarrow.parquet as pq

    table = pq.read_table(next((tmp_path / "run" / "shards").glob("*.parquet")))
    assert table.column_names[:8] == ["image_id", "source", "x1", "y1", "x2", "y2", "score", "class_id"]
    with pytest.raises(InputError, match="different parameters"):
        open_run(tmp_path / "run", ["a.jpg", "b.jpg"], model="stand-in", parameters={"slice_wh": [32, 32]})
    with pytest.raises(InputError, match="no manifest"):
        load_run(tmp_path)


def test_stale_temporary_shard_is_ignored_and_removed(tmp_path):
    done = open_run(tmp_path, ["a", "b"], model="m", parameters={})
    assert done == set()
    from sitesight.sliced.store import FrameRecord

    write_shard(tmp_path, [(FrameRecord(0, "a", (5, 5)), Detections(xyxy=[[0, 0, 1, 1]]))])
    (tmp_path / "shards" / ".tmp-shard-000000001-dead.parquet").write_bytes(b"PAR1 half written")
    assert load_run(tmp_path).pending == 1
    assert open_run(tmp_path, ["a", "b"], model="m", parameters={}) == {0}
    assert not list((tmp_path / "shards").glob(".tmp-*"))


def _write_frames(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"f{i:03d}.png"
        Image.fromarray(blob_image(rng, (320, 240), 12, size=(6, 40))).save(path)
        paths.append(path)
    return paths


def test_corrupt_images_are_skipped_and_reported(tmp_path, caplog):
    paths = _write_frames(tmp_path / "frames", 3)
    jpeg = tmp_path / "frames" / "truncated.jpg"
    Image.fromarray(np.full((240, 320, 3), 90, np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (tmp_path / "frames" / "garbage.jpg").write_bytes(b"this is not an image")
    (tmp_path / "frames" / "empty.png").write_bytes(b"")
    refs = list_frames([tmp_path / "frames"])
    assert len(refs) == 6
    summary = detect_to_run(refs, blob_detector, tmp_path / "run", model="blobs", slice_wh=(128, 128), frames_per_shard=2)
    assert summary.processed == 3 and {Path(s.key).name for s in summary.skipped} == {"truncated.jpg", "garbage.jpg", "empty.png"}
    assert all(str(s.key) in s.reason for s in summary.skipped)
    assert any("truncated.jpg" in r.message for r in caplog.records)
    run = load_run(tmp_path / "run")
    assert [Path(f.key) for f in run.frames] == [p.resolve() for p in paths]
    assert len(run.skipped) == 3 and run.pending == 0
    # a resumed run retries nothing and finds everything done
    again = detect_to_run(refs, blob_detector, tmp_path / "run", model="blobs", slice_wh=(128, 128))
    assert again.processed == 0 and again.already_done == 6


def test_video_every_nth_frame(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    refs = list_frames([path], video_step=3)
    assert [r.video_frame for r in refs] == [0, 3, 6, 9]
    assert FrameRef.from_key(refs[1].key) == refs[1]
    frames = list(iter_frames(refs))
    assert all(err is None for _, _, err in frames)
    # MJPG is lossy: compare each frame's mean grey level with what was written
    np.testing.assert_allclose([rgb.mean() for _, rgb, _ in frames], [0, 60, 120, 180], atol=3)
    past_end = list(iter_frames([FrameRef(path.resolve(), 50)]))
    assert past_end[0][1] is None and "past the end" in str(past_end[0][2])


def test_shared_data_video_clip(shared_data):
    clips = sorted((shared_data / "voc" / "hardhat_voc").rglob("*.mp4"))
    if not clips:
        pytest.skip("no mp4 clip in shared data")
    refs = list_frames([clips[0]], video_step=25)[:3]
    frames = list(iter_frames(refs))
    assert frames and all(rgb is not None and rgb.ndim == 3 for _, rgb, _ in frames)


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from inference.blobs import blob_detector
from sitesight.sliced.frames import list_frames
from sitesight.sliced.predict import detect_to_run

def slow(images):
    time.sleep(0.05)
    return blob_detector(images)

detect_to_run(list_frames([{frames!r}]), slow, {run!r}, model="blobs", slice_wh=(128, 128),
              overlap_ratio=(0.2, 0.2), batch_size=3, frames_per_shard=2)
print("finished")
"""


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    _write_frames(tmp_path / "frames", 24, seed=3)
    tests_dir = str(Path(__file__).resolve().parents[1])
    reference = detect_to_run(list_frames([tmp_path / "frames"]), blob_detector, tmp_path / "ref", model="blobs",
                              slice_wh=(128, 128), overlap_ratio=(0.2, 0.2), batch_size=3, frames_per_shard=5)
    assert reference.processed == 24
    script = KILL_SCRIPT.format(tests=tests_dir, frames=str(tmp_path / "frames"), run=str(tmp_path / "run"))
    rng = np.random.default_rng(11)
    kills = 0
    shards = tmp_path / "run" / "shards"
    for _ in range(8):
        before = len(list(shards.glob("*.parquet"))) if shards.exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Kill at a random moment after this attempt has made progress (a new shard), so the test
        # does not depend on how fast the machine starts Python.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if shards.exists() and len(list(shards.glob("*.parquet"))) > before:
                break
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate()
        manifest = tmp_path / "run" / "manifest.json"
        if manifest.exists() and load_run(tmp_path / "run").pending == 0:
            break
    final = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert kills >= 2
    ref, run = load_run(tmp_path / "ref"), load_run(tmp_path / "run")
    assert [f.key for f in run.frames] == [f.key for f in ref.frames]
    assert all(a.equals(b) for a, b in zip(run.raw, ref.raw, strict=True))
    # no frame stored twice across shards
    import pyarrow.parquet as pq

    listed = [m[0] for p in (tmp_path / "run" / "shards").glob("*.parquet")
              for m in json.loads(pq.read_schema(p).metadata[b"sitesight.sliced.frames"])]
    assert sorted(listed) == list(range(24))

"""A run at rest is deterministic: the same boxes give the same bytes (creation time only when asked),
and its recorded spec survives a resume and the skipped-frame bookkeeping."""

from __future__ import annotations

import json

import numpy as np

from sitesight import Detections
from sitesight.sliced.store import load_run, record_skipped, record_spec, write_run


def _write(folder, **kwargs):
    raw = [Detections(xyxy=[[1, 2, 30, 40], [5, 5, 9, 9]], score=[0.9, 0.4], class_id=[1, 0],
                      attributes={"source": np.array([0, -1], np.int32), "iou_pred": np.array([0.7, 0.2], np.float32)}),
           Detections.empty()]
    return write_run(folder, [("cam/a.jpg", (64, 48)), ("cam/b.jpg", (64, 48))], raw, model="m", parameters={"slice_wh": [32, 32]},
                     class_names=["head", "helmet"], frames_per_shard=1, **kwargs)


def test_same_boxes_same_bytes_and_created_only_when_asked(tmp_path):
    one, two = _write(tmp_path / "one"), _write(tmp_path / "two")
    files = sorted(p.relative_to(one.run_dir) for p in one.run_dir.rglob("*") if p.is_file())
    assert [str(p) for p in files] == sorted(str(p.relative_to(two.run_dir)) for p in two.run_dir.rglob("*") if p.is_file())
    for name in files:
        assert (one.run_dir / name).read_bytes() == (two.run_dir / name).read_bytes(), name
    assert "created" not in json.loads((one.run_dir / "manifest.json").read_text())
    stamped = _write(tmp_path / "three", timestamps=True)
    assert "created" in json.loads((stamped.run_dir / "manifest.json").read_text())


def test_recorded_spec_is_kept_and_rewritten_only_when_it_changes(tmp_path):
    run = _write(tmp_path / "run")
    manifest = run.run_dir / "manifest.json"
    assert run.spec is None
    record_spec(run.run_dir, {"conf": 0.5, "method": "nms"})
    before = manifest.read_bytes()
    record_spec(run.run_dir, {"conf": 0.5, "method": "nms"})
    record_skipped(run.run_dir)
    _write(tmp_path / "run")  # a resume that finds every frame done
    assert load_run(run.run_dir).spec == {"conf": 0.5, "method": "nms"}
    assert json.loads(manifest.read_text())["skipped"] == []
    record_spec(run.run_dir, {"conf": 0.5, "method": "nms"})
    after = manifest.read_bytes()
    assert json.loads(after) == {**json.loads(before), "skipped": []}
    record_spec(run.run_dir, None)
    assert "spec" not in json.loads(manifest.read_text()) and load_run(run.run_dir).spec is None

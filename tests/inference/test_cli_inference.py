"""`sitesight detect | sweep | export` end to end on tiny files (replayed predictions: no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sitesight", *args], capture_output=True, text=True, timeout=120)


def test_detect_sweep_export(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((100, 160, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 160, "height": 100},
                     {"id": 2, "file_name": "b.png", "width": 160, "height": 100}],
          "categories": [{"id": 1, "name": "person"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "area": 800, "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 20, 20, 40], "area": 800, "iscrowd": 0}]}
    results = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [100, 50, 20, 30], "score": 0.3},
               {"image_id": 2, "category_id": 1, "bbox": [51, 20, 20, 40], "score": 0.6}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = run_cli("detect", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "broken.png"),
                  "--model", f"replay:{tmp_path / 'res.json'}:{tmp_path / 'gt.json'}", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "2 frames processed, 1 skipped" in out.stderr and "broken.png" in out.stderr
    out = run_cli("sweep", str(tmp_path / "run"), "--gt", str(tmp_path / "gt.json"), "--method", "nms",
                  "--metric", "iou", "--threshold", "0.5", "--conf", "0.2,0.5", "--gate", "r=40,conf=0.2")
    assert out.returncode == 0, out.stderr
    rows = (tmp_path / "run" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and "best" in out.stdout
    best = [r for r in rows[1:] if r.endswith(",1")]
    assert len(best) == 1 and ",0.5," in best[0]  # conf 0.5 drops the false positive: F1 1.0
    out = run_cli("export", str(tmp_path / "run"), "--coco", str(tmp_path / "preds.json"), "--cvat", str(tmp_path / "cvat"),
                  "--part-size", "1", "--conf", "0.5", "--classes", "person")
    assert out.returncode == 0, out.stderr
    preds = json.loads((tmp_path / "preds.json").read_text())
    assert [p["bbox"] for p in preds] == [[10, 10, 20, 40], [51, 20, 20, 40]]
    assert sorted(p.name for p in (tmp_path / "cvat").iterdir()) == ["part_001.xml", "part_002.xml", "spec.json"]
    recorded = json.loads((tmp_path / "preds.spec.json").read_text())
    assert recorded["spec"]["conf"] == 0.5 and recorded["class_names"] == ["person"]
    out = run_cli("detect", str(tmp_path / "a.png"), "--model", "nope:x", "--out", str(tmp_path / "run2"))
    assert out.returncode == 1 and "unknown model spec" in out.stderr

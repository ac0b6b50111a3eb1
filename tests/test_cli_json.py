"""One --json grammar: --json FILE writes the result there, --json - puts only the JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import typer
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli import main as cli_main
from sitesight.formats.coco import write_coco, write_coco_results

# commands that print results and take --json (train/predict/detect write their own files)
WITH_JSON = ["data convert", "data validate", "data stats", "data split", "data mix", "data tile", "data filter",
             "data dedup", "data sample", "data package", "eval coco", "eval det", "eval cls", "eval anomaly", "sweep"]


def test_result_commands_have_json():
    cli_main._register()
    root = typer.main.get_command(cli_main.app)
    for path in WITH_JSON:
        cmd = root
        for part in path.split():
            cmd = cmd.commands[part]
        assert "--json" in {o for p in cmd.params for o in getattr(p, "opts", [])}, path


def _run(args: list[str], cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "sitesight", *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)  # nothing else on stdout


def test_json_dash_is_the_only_stdout(tmp_path):
    (tmp_path / "img").mkdir()
    samples, preds = [], []
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.new("RGB", (64, 48)).save(tmp_path / "img" / f"cam1_20240101T00000{i}.jpg")
        xy = rng.uniform(0, 30, (3, 2))
        gt = Detections(xyxy=np.c_[xy, xy + 10], class_id=[0, 1, 0])
        samples.append(Sample(path=f"cam1_20240101T00000{i}.jpg", image_wh=(64, 48), gt=gt, image_id=i + 1))
        preds.append(gt.replace(score=rng.random(3)))
    ds = Dataset(class_names=("a", "b"), samples=samples, root=tmp_path / "img")
    gt_path = write_coco(ds, tmp_path / "img" / "gt.json")
    res = write_coco_results(ds, preds, tmp_path / "res.json")
    assert _run(["data", "convert", str(gt_path), "out_yolo", "--to", "yolo", "--json", "-"], tmp_path)["images"] == 4
    assert _run(["data", "stats", str(gt_path), "--json", "-"], tmp_path)["boxes"] == 12
    assert "issues" in _run(["data", "validate", str(gt_path), "--json", "-"], tmp_path)
    coco = _run(["eval", "coco", "--gt", str(gt_path), "--pred", str(res), "--json", "-"], tmp_path)
    assert coco["AP50"] == 1.0
    det = _run(["eval", "det", "--gt", str(gt_path), "--pred", str(res), "--conf", "0", "--json", "-"], tmp_path)
    assert det["tp"] == 12 and det["ap"]["map"] == 1.0
    split = _run(["data", "split", str(gt_path), "out_split", "--group-by", "none", "--json", str(tmp_path / "s.json")], tmp_path)
    assert split == json.loads((tmp_path / "s.json").read_text()) and split["groups"] == 4

"""`eval det --ap voc12 --pixel-inclusive` on the mAP tools' text layout equals the VOC devkit
(a port of voc_eval.py); `eval coco --max-dets --iou-thrs` equals pycocotools with those params."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sitesight import Dataset, Sample
from sitesight.cli.main import main
from sitesight.formats.textboxes import write_text_boxes, write_text_detections

from .cocoref import coco_dicts, pycocotools_eval
from .test_coco_parity import _case as coco_case
from .test_voc import _case, _devkit_eval

NAMES = ["hardhat", "person", "vest"]


@pytest.mark.parametrize("seed", [0, 2, 4])
@pytest.mark.parametrize(("ap", "plus_one"), [("voc12", True), ("voc07", True), ("voc12", False)])
def test_eval_det_voc_ap_on_text_folders_equals_devkit(tmp_path: Path, seed: int, ap: str, plus_one: bool) -> None:
    rng = np.random.default_rng(seed)
    gts, preds = _case(rng, n_images=9, n_classes=3, integer=True)
    # the +1 convention changes results only with integer pixel boxes: keep them as written
    keys = [f"img_{i:03d}" for i in range(len(gts))]
    ds = Dataset(class_names=tuple(NAMES), samples=[Sample(path=k, image_wh=(200, 200), gt=g) for k, g in zip(keys, gts, strict=True)])
    write_text_boxes(ds, tmp_path / "ground-truth")
    write_text_detections(ds, preds, tmp_path / "detection-results")
    out = tmp_path / "det.json"
    args = ["eval", "det", "--gt", str(tmp_path / "ground-truth"), "--pred", str(tmp_path / "detection-results"),
            "--ap", ap, "--iou", "0.5", "--json", str(out)] + (["--pixel-inclusive"] if plus_one else [])
    assert main(args) == 0
    got = json.loads(out.read_text())["ap"]
    assert got["method"] == ap and got["pixel_inclusive"] == plus_one
    for k, name in enumerate(NAMES):
        npos = sum(int(np.sum((g.class_id == k) & (g.attributes["difficult"] != "1"))) for g in gts)
        if npos == 0:
            assert got["per_class"][name] is None
            continue
        ref = _devkit_eval(gts, preds, keys, k, 0.5, ap == "voc07", plus_one)
        assert got["per_class"][name] == pytest.approx(ref, abs=1e-9), name


def test_eval_coco_max_dets_and_iou_thrs_match_pycocotools(tmp_path: Path) -> None:
    gts, preds, k = coco_case(np.random.default_rng(3), dense=True)
    gd, res = coco_dicts(gts, preds, k)
    for i, im in enumerate(gd["images"]):
        im["file_name"] = f"img{i}.jpg"
    (tmp_path / "gt.json").write_text(json.dumps(gd))
    (tmp_path / "res.json").write_text(json.dumps(res))
    out = tmp_path / "coco.json"
    assert main(["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                 "--max-dets", "1,5,100", "--iou-thrs", "0.3:0.7:0.1", "--json", str(out)]) == 0
    ref = pycocotools_eval(gd, res, max_dets=(1, 5, 100), iou_thresholds=np.linspace(0.3, 0.7, 5))
    np.testing.assert_allclose(json.loads(out.read_text())["stats"], ref.stats, atol=1e-9, rtol=0)
    assert main(["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                 "--iou-thrs", "0:2:1"]) == 1

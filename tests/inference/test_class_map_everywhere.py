"""One class map, one class-agnostic switch, the same answer in every command that reads a run:
a model that says "With Helmet" meets ground truth that says "helmet" only through `--class-map`
(or `--class-agnostic`), and then `eval det`, `eval coco`, `sweep`, `export` (scored by pycocotools)
and `report` all see the one true positive; without it each stops with one line naming both sets."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco
from sitesight.sliced.store import write_run

WH = (128, 96)
MAP = ["--class-map", "With Helmet=helmet,Without Helmet=head"]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("classmap")
    Image.fromarray(np.zeros((WH[1], WH[0], 3), np.uint8)).save(tmp / "a.png")
    Image.fromarray(np.zeros((WH[1], WH[0], 3), np.uint8)).save(tmp / "b.png")
    gt = Dataset(("head", "helmet"), (
        Sample(path="a.png", image_wh=WH, gt=Detections(xyxy=[[10, 10, 50, 80]], class_id=[1])),
        Sample(path="b.png", image_wh=WH, gt=Detections(xyxy=[[60, 20, 90, 70]], class_id=[0])),
    ), root=tmp)  # fmt: skip
    gt_path = write_coco(gt, tmp / "gt.json")
    raw = [Detections(xyxy=[[10, 10, 50, 80]], score=[0.9], class_id=[0], attributes={"source": np.array([-1], np.int32)}),
           Detections(xyxy=[[60, 20, 90, 70]], score=[0.8], class_id=[1], attributes={"source": np.array([-1], np.int32)})]
    run = write_run(tmp / "run", [(str(tmp / "a.png"), WH), (str(tmp / "b.png"), WH)], raw, model="m",
                    parameters={"full_frame": True}, class_names=["With Helmet", "Without Helmet"])
    return tmp, gt_path, run.run_dir


def _quiet(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _pycocotools_ap50(gt_path: Path, results: Path) -> float:
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(json.loads(results.read_text())), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return float(ev.stats[1])


@pytest.mark.parametrize("how", [MAP, ["--class-agnostic"]])
def test_every_run_reading_command_takes_the_map(case, how, capsys):
    tmp, gt_path, run_dir = case
    out = tmp / f"d{len(how)}.json"
    assert _quiet(["eval", "det", "--gt", str(gt_path), "--pred", str(run_dir), "--conf", "0.5", *how, "--json", str(out)])[0] == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"]) == (2, 0, 0)
    assert _quiet(["eval", "coco", "--gt", str(gt_path), "--pred", str(run_dir), *how, "--json", str(out)])[0] == 0
    assert json.loads(out.read_text())["AP50"] == pytest.approx(1.0)
    assert _quiet(["sweep", str(run_dir), "--gt", str(gt_path), "--conf", "0.5", *how])[0] == 0
    with open(run_dir / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all((r["tp"], r["fp"], r["fn"]) == ("2", "0", "0") for r in rows)
    res = tmp / f"res{len(how)}.json"
    code, err = _quiet(["export", str(run_dir), "--coco", str(res), "--gt", str(gt_path), "--conf", "0.5", *how])
    if how == MAP:  # class-aware export: pycocotools scores it against the GT's own category ids
        assert code == 0 and _pycocotools_ap50(gt_path, res) == pytest.approx(1.0)
    else:  # one category for a two-class GT would be a file pycocotools mis-scores: refused, said why
        assert code == 1 and "one-class ground truth" in err and not res.exists()
    page = tmp / f"r{len(how)}.html"
    assert _quiet(["report", str(run_dir), "--gt", str(gt_path), "--conf", "0.5", "--out", str(page), *how])[0] == 0
    text = page.read_text()
    assert ("--class-map" if how == MAP else "--class-agnostic") in text
    missed = re.search(r'<div class="v">(\d+)</div><div class="k">workers missed of (\d+)', text)
    assert missed and missed.groups() == ("0", "2")


@pytest.mark.parametrize("argv", [
    ["eval", "det", "--conf", "0.5"], ["eval", "coco"], ["sweep"], ["export", "--coco", "{tmp}/x.json"], ["report", "--out", "{tmp}/x.html"],
])  # fmt: skip
def test_without_the_map_one_line_names_both_sets(case, argv):
    tmp, gt_path, shared = case
    run_dir = tmp / f"bare-{len(list(tmp.glob('bare-*')))}"  # a copy without the sweep table (its rows record a class map)
    shutil.copytree(shared, run_dir, ignore=shutil.ignore_patterns("sweep.csv"))
    args = [a.replace("{tmp}", str(tmp)) for a in argv]
    if args[0] == "eval":
        args += ["--gt", str(gt_path), "--pred", str(run_dir)]
    else:
        args = [args[0], str(run_dir), *args[1:], "--gt", str(gt_path)]
    code, err = _quiet(args)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, (args, err)
    assert "With Helmet" in errors[0] and "helmet" in errors[0] and "--class-map" in errors[0]

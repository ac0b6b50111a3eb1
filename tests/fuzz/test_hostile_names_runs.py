"""The run commands fed hostile names: frame keys stored in a run's manifest and shards, image names
in the ground truth, class names, model names in mining, odd but legal frame file names on disk.

Each hostile name (``..``, ``../../x``, absolute, NUL, 300 characters, a newline) goes through
`detect`, `export` (COCO and CVAT), `sweep`, `eval det|coco --json`, `report`, `compare`, `mine`
(its CVAT hand-off copies frames named by their keys), `mine single` and `mine verdict`. Nothing may
be created outside the command's output folders (the sandbox is snapshotted around each command),
and each command ends in exit 0 or one ``error:`` line without a traceback or exception class name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fuzz.hostile import ABSOLUTE, NAMES, run_checked

from sitesight.detections import Detections
from sitesight.sliced.store import write_run


def _coco_gt(keys: list[str], classes: list[str]) -> str:
    return json.dumps({
        "images": [{"id": i + 1, "file_name": k, "width": 64, "height": 48} for i, k in enumerate(keys)],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [10, 10, 20, 20]} for i in range(len(keys))],
    })  # fmt: skip


def _raw(shift: float, n: int) -> list[Detections]:
    return [Detections(xyxy=[[10 + shift, 10, 30 + shift, 30], [40, 5, 60, 40]], score=[0.9, 0.6], class_id=[0, 1]) for _ in range(n)]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    yield tmp_path_factory.mktemp("hostile_runs")
    shutil.rmtree(ABSOLUTE, ignore_errors=True)


def _case(sandbox: Path, kind: str, monkeypatch) -> tuple[Path, Path, str]:
    """case/data (frames + gt.json), two runs whose second frame key is hostile; cwd = case/cwd/deep."""
    hostile = NAMES[kind]
    case = sandbox / kind
    data = case / "data"
    (case / "cwd" / "deep").mkdir(parents=True)
    data.mkdir()
    (case / "secret.txt").write_text("not for the output")
    for name in ("good.png", "x.png"):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(data / name)
    monkeypatch.chdir(case / "cwd" / "deep")
    keys = [str(data / "good.png"), hostile if hostile.startswith("/") or kind == "dots" else f"{hostile}.png"]
    # COCO refuses a NUL in file_name (the run keeps it: JSON and Parquet metadata can hold one)
    (data / "gt.json").write_text(_coco_gt([k.replace("\x00", "") for k in keys], ["person", hostile]))
    frames = [(k, (64, 48)) for k in keys]
    for name, shift in (("run_a", 0.0), ("run_b", 6.0)):
        write_run(case / name, frames, _raw(shift, len(keys)), model=f"stand-in {name}", parameters={"full_frame": True},
                  class_names=["person", hostile])
    return case, data / "gt.json", hostile


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(NAMES))
def test_run_commands_write_only_into_their_output(sandbox, kind, monkeypatch, capsys):
    case, gt, hostile = _case(sandbox, kind, monkeypatch)
    out = case / "out"
    runs = [case / "run_a", case / "run_b"]
    a, b = (str(r) for r in runs)
    commands = {
        "export": ["export", a, "--coco", str(out / "res.json"), "--cvat", str(out / "cvat"), "--part-size", "1"],
        "export_gt": ["export", a, "--coco", str(out / "res_gt.json"), "--gt", str(gt)],
        "export_classes": ["export", a, "--cvat", str(out / "cvat2"), "--classes", f"{hostile.replace(',', '')},{hostile}x"],
        "sweep": ["sweep", a, "--gt", str(gt), "--conf", "0.5", "--threshold", "0.5", "--method", "nms", "--metric", "iou"],
        "sweep_out": ["sweep", a, "--gt", str(gt), "--conf", "0.5", "--threshold", "0.5", "--method", "nms", "--metric", "iou",
                      "--out", str(out / "sweep.csv"), "--json", str(out / "sweep.json")],
        "eval_det": ["eval", "det", "--gt", str(gt), "--pred", a, "--json", str(out / "det.json")],
        "eval_coco": ["eval", "coco", "--gt", str(gt), "--pred", a, "--json", str(out / "coco.json")],
        "report": ["report", a, "--gt", str(gt), "--out", str(out / "report.html")],
        "compare": ["compare", a, b, "--gt", str(gt), "--resamples", "100", "--out", str(out / "cmp.json"), "--html", str(out / "cmp.html")],
        "mine": ["mine", "--run", f"{hostile.replace('=', '')}={a}", "--run", f"B={b}", "--budget", "2", "--out", str(out / "mined"),
                 "--classes", f"person,{hostile.replace(',', '')}", "--preannotate", "B", "--any-dispute", "--conf", "0.1"],
        "mine_single": ["mine", "single", a, "--gt", str(gt), "--out", str(out / "single.csv"), "--top", "2"],
        "mine_verdict": ["mine", "verdict", str(out / "mined"), "--gt", str(gt)],
        "report_mined": ["report", str(out / "mined"), "--out", str(out / "report_mined.html")],
    }  # fmt: skip
    codes = {}
    for name, argv in commands.items():
        codes[name] = run_checked(argv, capsys, case, [out, *runs])
    assert codes["mine"] == codes["report_mined"] == 0, codes  # a frame key never stops mining or its report
    if kind in ("long", "newline"):  # not vacuous: names that are legal in a run still go all the way through
        assert codes["export"] == codes["sweep"] == codes["eval_coco"] == codes["mine"] == 0, codes


def _detector(images: list[np.ndarray]) -> list[Detections]:
    return [Detections(xyxy=[[1, 1, 9, 9]], score=[0.9], class_id=[1]) for _ in images]


@pytest.mark.timeout(120)
def test_detect_with_odd_frame_names_and_hostile_classes(sandbox, monkeypatch, capsys):
    import sitesight.predictors

    monkeypatch.setattr(sitesight.predictors, "build_detector", lambda *a, **k: _detector)
    case = sandbox / "detect"
    frames = case / "frames"
    (case / "cwd" / "deep").mkdir(parents=True)
    frames.mkdir()
    monkeypatch.chdir(case / "cwd" / "deep")
    odd = ["..x.png", "x" * 250 + ".png", "a\nb.png", "-rf.png", " lead.png", "...png"]
    for name in odd:
        Image.fromarray(np.full((24, 32, 3), 50, np.uint8)).save(frames / name, format="PNG")
    classes = ",".join(["../../escaped", str(ABSOLUTE / "abs"), "..", "L" * 300])
    out, run = case / "out", case / "run"
    code = run_checked(["detect", str(frames), "--model", "yolo:stand-in.pt", "--out", str(run), "--slice", "32", "--no-full-frame",
                        "--classes", classes], capsys, case, [out, run])  # fmt: skip
    assert code == 0
    names = json.loads((run / "manifest.json").read_text())["class_names"]
    assert names == classes.split(",")  # recorded as data, never used as a path
    for argv in (["export", str(run), "--coco", str(out / "r.json"), "--cvat", str(out / "cvat"), "--part-size", "2"],
                 ["mine", "--run", f"a={run}", "--run", f"b={run}", "--out", str(out / "mined"), "--budget", "2", "--any-dispute"]):
        assert run_checked(argv, capsys, case, [out, run]) == 0
    assert all(p.parent.name == "images" for p in (out / "mined").rglob("*.png"))  # frames copied only into task parts

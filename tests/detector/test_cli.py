"""The CLI wrappers end to end on a few tiny synth frames: train det, train iou-head, rescore, errors as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from sitesight.cli.main import main  # noqa: E402
from sitesight.detections import Detections  # noqa: E402
from sitesight.formats.coco import write_coco  # noqa: E402
from sitesight.sliced.store import load_run, write_run  # noqa: E402
from sitesight.synth import write_site_dataset  # noqa: E402


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    dataset = write_site_dataset(folder / "frames", n_frames=4, seed=3, image_wh=(320, 240))
    return folder, dataset, write_coco(dataset, folder / "frames" / "gt.json")


def test_train_det_writes_a_rebuildable_checkpoint(tiny_set, capsys) -> None:
    folder, _, gt = tiny_set
    out = folder / "det"
    code = main(["train", "det", str(gt), "--backbone", "tiny_pyramid", "--out-indices", "2,3", "--extra-levels", "0",
                 "--fpn-channels", "8", "--head-convs", "1", "--anchor-sizes", "16,32", "--input-size", "240,320",
                 "--epochs", "1", "--val-fraction", "0.25", "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "best.safetensors").is_file() and (out / "history.csv").is_file()
    from sitesight.models.detector.callable import load_detector

    model, config = load_detector(out / "best.safetensors")
    assert config["class_names"] == ["person", "helmet", "head"] and model.alpha == 0.5


def test_iou_head_and_rescore_commands(tiny_set, capsys) -> None:
    folder, dataset, gt = tiny_set
    rng = np.random.default_rng(0)
    raws = []
    for s in dataset.samples:
        wh = np.tile(s.gt.xyxy[:, 2:] - s.gt.xyxy[:, :2], 2)
        raws.append(Detections(xyxy=s.gt.xyxy + rng.normal(0, 0.1, wh.shape) * wh, score=rng.uniform(0.3, 1, len(s.gt)),
                               class_id=s.gt.class_id))
    run = write_run(folder / "run", [(str(dataset.image_path(s)), s.image_wh) for s in dataset.samples], raws, model="stand-in",
                    parameters={"full_frame": True})
    assert main(["train", "iou-head", str(run.run_dir), "--gt", str(gt), "--frame-size", "320x240", "--epochs", "1",
                 "--out", str(folder / "head")]) == 0, capsys.readouterr().err
    summary = json.loads((folder / "head" / "summary.json").read_text())
    assert set(summary["alphas"]) == {"person", "helmet", "head"}
    capsys.readouterr()
    # the post-processing options: recorded as the rescored run's spec, and the final boxes counted under it
    assert main(["rescore", str(run.run_dir), "--head", str(folder / "head" / "iou_head.safetensors"), "--alpha", "0.25",
                 "--out", str(folder / "rescored"), "--conf", "0.5", "--threshold", "0.99", "--no-border"]) == 0
    rescored = load_run(folder / "rescored")
    raw = rescored.raw[0]
    expected = raw.attributes["cls_score"] ** 0.25 * raw.attributes["iou_pred"] ** 0.75
    np.testing.assert_allclose(raw.score, expected, rtol=1e-5)
    recorded = json.loads((folder / "rescored" / "manifest.json").read_text())["spec"]
    assert (recorded["conf"], recorded["method"], recorded["metric"], recorded["threshold"], recorded["border"]) == (
        0.5, "nms", "iou", 0.99, False)  # the options given, over `eval iou-aware`'s defaults (NMS, IoU)
    # one object per box (noisy copies of distinct ground-truth boxes): NMS at IoU 0.99 keeps every box above conf
    before = sum(int((r.score >= np.float32(0.5)).sum()) for r in load_run(run.run_dir).raw)
    after = sum(int((r.score >= np.float32(0.5)).sum()) for r in rescored.raw)
    assert f"final boxes under the spec: {before} before, {after} after rescoring" in capsys.readouterr().out.replace("\n", " ")
    assert main(["eval", "iou-aware", str(folder / "rescored"), "--gt", str(gt), "--alpha", "0,1", "--no-oracle",
                 "--json", str(folder / "iou_aware.json")]) == 0
    assert "starting from the spec recorded in" in capsys.readouterr().out
    assert json.loads((folder / "iou_aware.json").read_text())["spec"] == recorded
    # every command that reads the run starts from the same recorded spec: eval det, eval coco, export
    for argv in (["eval", "det", "--gt", str(gt), "--pred", str(folder / "rescored")],
                 ["eval", "coco", "--gt", str(gt), "--pred", str(folder / "rescored")]):
        assert main([*argv, "--json", str(folder / "eval.json")]) == 0
        assert json.loads((folder / "eval.json").read_text())["spec"] == recorded, argv
    assert main(["export", str(folder / "rescored"), "--coco", str(folder / "res.json")]) == 0
    assert json.loads((folder / "res.spec.json").read_text())["spec"] == recorded
    assert main(["report", str(folder / "rescored"), "--gt", str(gt), "--out", str(folder / "r.html")]) == 0
    assert "the run&#39;s recorded spec" in (folder / "r.html").read_text() or "the run's recorded spec" in (folder / "r.html").read_text()
    assert main(["eval", "iou-aware", str(folder / "rescored"), "--gt", str(gt), "--alpha", "0,1", "--no-oracle", "--conf", "0.1",
                 "--json", str(folder / "iou_aware.json")]) == 0
    assert json.loads((folder / "iou_aware.json").read_text())["spec"] == {**recorded, "conf": 0.1}


def test_bad_inputs_are_one_line_errors(tiny_set, capsys) -> None:
    folder, _, gt = tiny_set
    assert main(["rescore", str(folder), "--head", str(folder / "missing.safetensors"), "--out", str(folder / "x")]) == 1
    assert "manifest.json" in capsys.readouterr().err
    run = write_run(folder / "plain_run", [(str(folder / "a.jpg"), (320, 240))], [Detections(xyxy=[[0, 0, 10, 10]])],
                    model="plain", parameters={})
    assert main(["eval", "iou-aware", str(run.run_dir), "--gt", str(gt), "--alpha", "0:1:0.5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert main(["eval", "iou-aware", str(run.run_dir), "--gt", str(gt), "--alpha", "x:y"]) == 1
    assert "--alpha" in capsys.readouterr().err

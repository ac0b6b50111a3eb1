"""`sitesight eval coco|det|cls|anomaly`: JSON keys from the issue, values against the references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from sitesight.cli.main import main

from .cocoref import coco_dicts, pycocotools_eval
from .test_coco_parity import _case

STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


@pytest.fixture
def coco_pair(tmp_path: Path) -> tuple[Path, Path, dict, list]:
    gts, preds, k = _case(np.random.default_rng(11), dense=False)
    gd, res = coco_dicts(gts, preds, k)
    for i, im in enumerate(gd["images"]):
        im["file_name"] = f"img{i}.jpg"
    (tmp_path / "gt.json").write_text(json.dumps(gd))
    (tmp_path / "res.json").write_text(json.dumps(res))
    return tmp_path / "gt.json", tmp_path / "res.json", gd, res


def test_eval_coco(coco_pair, tmp_path: Path) -> None:
    gt, res, gd, results = coco_pair
    out = tmp_path / "out.json"
    assert main(["eval", "coco", "--gt", str(gt), "--pred", str(res), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    ref = pycocotools_eval(gd, results)
    np.testing.assert_allclose(d["stats"], ref.stats, atol=1e-9, rtol=0)
    assert [d[k] for k in STATS] == d["stats"]
    assert set(d["per_class"]) == {c["name"] for c in gd["categories"]}


def test_eval_det(coco_pair, tmp_path: Path) -> None:
    gt, res, _, _ = coco_pair
    out = tmp_path / "det.json"
    code = main(["eval", "det", "--gt", str(gt), "--pred", str(res), "--iou", "0.5", "--conf", "0.3", "--sweep", "0.15:0.5:0.05", "--json", str(out)])
    assert code == 0
    d = json.loads(out.read_text())
    assert {"tp", "fp", "fn", "precision", "recall", "f1", "per_class", "sweep", "errors", "confusion"} <= set(d)
    assert [round(r["conf"], 2) for r in d["sweep"]] == [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    for r in d["sweep"]:
        assert {"conf", "tp", "fp", "fn", "precision", "recall", "f1"} <= set(r)
    at_03 = next(r for r in d["sweep"] if abs(r["conf"] - 0.3) < 1e-9)
    assert (at_03["tp"], at_03["fp"], at_03["fn"]) == (d["tp"], d["fp"], d["fn"])
    assert d["tp"] + d["fn"] == sum(v["tp"] + v["fn"] for v in d["per_class"].values())


def test_eval_cls(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = ["correct", "wrong", "unknown"]
    y = rng.integers(0, 2, 40)  # "unknown" never occurs
    probs = rng.dirichlet(np.ones(3), 40)
    lines = ["label," + ",".join(names)] + [names[t] + "," + ",".join(f"{p:.6f}" for p in row) for t, row in zip(y, probs, strict=True)]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "cls.json"
    assert main(["eval", "cls", "--pred", str(tmp_path / "p.csv"), "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert {"per_class", "accuracy", "confusion", "macro_active", "macro_all"} <= set(d)
    rounded = np.round(probs, 6)
    assert d["per_class"]["correct"]["ap"] == pytest.approx(average_precision_score(y == 0, rounded[:, 0]))
    assert d["per_class"]["unknown"]["support"] == 0 and d["per_class"]["unknown"]["ap"] is None
    assert set(d["per_class"]["wrong"]) >= {"ap", "precision", "recall", "f1", "support"}


def test_eval_anomaly_and_bad_csv(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(30) < 0.4
    scores = rng.random(30) + labels * 0.5
    lines = ["label,score"] + [f"{'anomalous' if a else 'normal'},{s:.6f}" for a, s in zip(labels, scores, strict=True)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "a.json"
    assert main(["eval", "anomaly", "--scores", str(tmp_path / "s.csv"), "--threshold", "0.8", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["auroc"] == pytest.approx(roc_auc_score(labels, np.round(scores, 6)))
    assert d["threshold"] == 0.8 and d["threshold_source"] == "given"
    (tmp_path / "bad.csv").write_text("label,score\nnormal,0.1\nweird,0.2\n")
    assert main(["eval", "anomaly", "--scores", str(tmp_path / "bad.csv")]) == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "line 3" in err and "Traceback" not in err


def test_eval_det_from_run_folder(tmp_path: Path) -> None:
    """A stored run (raw per-slice boxes) is merged per frame and evaluated like COCO results."""
    from sitesight import Dataset, Detections, Sample
    from sitesight.formats.coco import write_coco
    from sitesight.sliced.store import write_run

    frames = [str(tmp_path / f"f{i}.jpg") for i in range(2)]
    gt = [Detections(xyxy=[[10, 10, 50, 50], [100, 100, 140, 160]], class_id=[0, 1]), Detections(xyxy=[[0, 0, 30, 30]], class_id=[0])]
    ds = Dataset(class_names=("person", "helmet"), samples=[Sample(path=f, image_wh=(200, 200), gt=g, image_id=i + 1) for i, (f, g) in enumerate(zip(frames, gt, strict=True))])
    write_coco(ds, tmp_path / "gt.json")
    # frame 0: the person seen by two overlapping slices (merged into one TP), a helmet FP; frame 1: nothing
    raw = [
        Detections(xyxy=[[10, 10, 50, 50], [11, 10, 50, 50], [150, 0, 170, 20]], class_id=[0, 0, 1], score=[0.9, 0.8, 0.7], attributes={"source": np.array([0, 1, 0], np.int32)}),
        Detections(xyxy=np.zeros((0, 4)), attributes={"source": np.zeros(0, np.int32)}),
    ]
    write_run(tmp_path / "run", [(f, (200, 200)) for f in frames], raw, model="test", parameters={})
    out = tmp_path / "det.json"
    assert main(["eval", "det", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "run"), "--conf", "0.5", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"]) == (1, 1, 2)
    assert d["per_class"]["person"] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}

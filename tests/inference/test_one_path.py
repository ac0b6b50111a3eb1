"""One run, one answer: sweep rows == eval det --pred RUN == export --coco --gt scored by a plain matcher.

Every chain goes through the CLI. The reference is a plain greedy matcher written here from the
COCO rules (per image and class, highest score first, each prediction takes the unmatched ground
truth of highest IoU >= 0.5), reading the exported JSON and the ground-truth JSON with `json` only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco
from sitesight.sliced.predict import run_parameters
from sitesight.sliced.standin import standin_raw
from sitesight.sliced.store import write_run

WH = (640, 480)


def plain_counts(gt_doc: dict, results: list[dict], image_ids: set[int], iou_thr: float = 0.5) -> tuple[int, int, int]:
    """TP, FP, FN of COCO results against COCO ground truth over ``image_ids`` (no crowd boxes here)."""
    def iou(a: list[float], b: list[float]) -> float:
        ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
        w = min(ax2, bx2) - max(a[0], b[0])
        h = min(ay2, by2) - max(a[1], b[1])
        inter = w * h if w > 0 and h > 0 else 0.0
        union = a[2] * a[3] + b[2] * b[3] - inter
        return inter / union if union > 0 else 0.0

    tp = fp = 0
    gts: dict[tuple[int, int], list[list[float]]] = {}
    for a in gt_doc["annotations"]:
        if a["image_id"] in image_ids:
            gts.setdefault((a["image_id"], a["category_id"]), []).append(a["bbox"])
    preds: dict[tuple[int, int], list[tuple[float, list[float]]]] = {}
    for r in results:
        assert r["image_id"] in image_ids
        preds.setdefault((r["image_id"], r["category_id"]), []).append((r["score"], r["bbox"]))
    n_gt = sum(len(v) for v in gts.values())
    for key, items in preds.items():
        truth = gts.get(key, [])
        used = [False] * len(truth)
        for _, box in sorted(items, key=lambda t: -t[0]):
            best, best_iou = -1, iou_thr
            for j, g in enumerate(truth):
                v = iou(box, g)
                if not used[j] and v >= best_iou:
                    best, best_iou = j, v
            if best >= 0:
                used[best] = True
                tp += 1
            else:
                fp += 1
    return tp, fp, n_gt - tp


def _image(path: Path, wh: tuple[int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", wh, (90, 90, 90)).save(path)
    return str(path)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_rows(tmp_path: Path, run_dir: Path, gt_path: Path, covered_ids: set[int], rows: list[int], extra: list[str]) -> None:
    """For each sweep row: eval det --spec ROW, export --gt --spec ROW + the plain matcher, eval det on the export."""
    table = _rows(run_dir / "sweep.csv")
    gt_doc = json.loads(gt_path.read_text())
    for i in rows:
        row = table[i]
        want = (int(row["tp"]), int(row["fp"]), int(row["fn"]))
        spec = f"{run_dir / 'sweep.csv'}:{i}"
        out = tmp_path / f"det_{i}.json"
        assert main(["eval", "det", "--gt", str(gt_path), "--pred", str(run_dir), "--spec", spec, "--json", str(out), *extra]) == 0
        det = json.loads(out.read_text())
        assert (det["tp"], det["fp"], det["fn"]) == want, (i, row)
        assert det["spec"]["conf"] == pytest.approx(float(row["conf"])) and det["spec"]["method"] == row["method"]
        exported = tmp_path / f"export_{i}.json"
        assert main(["export", str(run_dir), "--coco", str(exported), "--gt", str(gt_path), "--spec", spec, *extra]) == 0
        results = json.loads(exported.read_text())
        assert plain_counts(gt_doc, results, covered_ids) == want, (i, row)
        record = json.loads(exported.with_name(exported.stem + ".spec.json").read_text())
        assert record["spec"] == det["spec"]


def test_sweep_rows_equal_eval_det_and_export_on_synthetic_frames(tmp_path):
    rng = np.random.default_rng(7)
    gt_names = ("helmet", "person", "vest")  # the ground truth's classes, another order than the model's
    model_names = ["person", "helmet"]
    frames, raws, samples = [], [], []
    for i in range(14):
        n = int(rng.integers(1, 9))
        xy = rng.uniform(0, [560, 380], (n, 2))
        wh = rng.uniform([12, 20], [80, 100], (n, 2))
        model_cls = rng.integers(0, 2, n)
        gt = Detections(xyxy=np.c_[xy, np.minimum(xy + wh, WH)], class_id=model_cls)
        path = _image(tmp_path / "frames" / f"cam{i % 2}" / f"{i:03d}.png", WH)
        if i < 12:  # frames 12, 13: run only
            to_gt = np.array([1, 0])[model_cls]  # person -> 1, helmet -> 0 in the ground truth's order
            samples.append(Sample(path=f"cam{i % 2}/{i:03d}.png", image_wh=WH, gt=gt.replace(class_id=to_gt), image_id=100 + 7 * i))
        frames.append((path, WH))
        raws.append(standin_raw(gt, WH, rng=rng, slice_wh=(256, 256), num_classes=2))
    for i in range(12, 15):  # ground-truth only frames
        samples.append(Sample(path=f"cam9/{i:03d}.png", image_wh=WH, image_id=100 + 7 * i,
                              gt=Detections(xyxy=[[10, 10, 60, 90]], class_id=[1])))
    gt_path = write_coco(Dataset(gt_names, tuple(samples), root=tmp_path / "frames"), tmp_path / "frames" / "gt.json",
                         category_ids=[3, 7, 12])
    run = write_run(tmp_path / "run", frames, raws, model="stand-in", class_names=model_names,
                    parameters=run_parameters((256, 256), (0.2, 0.2), True))
    assert main(["sweep", str(run.run_dir), "--gt", str(gt_path), "--method", "nms,nmm,greedy_nmm", "--metric", "iou,ios",
                 "--threshold", "0.3,0.5", "--conf", "0.2,0.35,0.5", "--gate", "r=30,conf=0.2"]) == 0
    table = _rows(run.run_dir / "sweep.csv")
    assert len(table) == 3 * 2 * 2 * 3 * 2
    covered = {100 + 7 * i for i in range(12)}
    picks = sorted(rng.choice(len(table), 8, replace=False).tolist())
    _check_rows(tmp_path, run.run_dir, gt_path, covered, picks, [])
    # class-agnostic: ground truth collapsed too; a one-class ground truth lets the export carry it
    assert main(["sweep", str(run.run_dir), "--gt", str(gt_path), "--method", "greedy_nmm", "--metric", "ios",
                 "--threshold", "0.5", "--conf", "0.3", "--class-agnostic", "--out", str(tmp_path / "agnostic.csv")]) == 0
    row = _rows(tmp_path / "agnostic.csv")[0]
    out = tmp_path / "agnostic_det.json"
    assert main(["eval", "det", "--gt", str(gt_path), "--pred", str(run.run_dir), "--spec", f"{tmp_path / 'agnostic.csv'}:0",
                 "--json", str(out)]) == 0
    det = json.loads(out.read_text())
    assert (det["tp"], det["fp"], det["fn"]) == (int(row["tp"]), int(row["fp"]), int(row["fn"]))
    assert det["coverage"] == {"run": 14, "gt": 15, "both": 12, "gt_only": 3, "run_only": 2}
    # --include-unscored-gt: the three ground-truth-only boxes become misses
    assert main(["eval", "det", "--gt", str(gt_path), "--pred", str(run.run_dir), "--spec", f"{tmp_path / 'agnostic.csv'}:0",
                 "--include-unscored-gt", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["fn"] == int(row["fn"]) + 3


def test_classes_match_by_name_or_fail_listing_both_sets(tmp_path):
    path = _image(tmp_path / "a.png", WH)
    gt = Dataset(("head", "helmet"), (Sample(path="a.png", image_wh=WH, gt=Detections(xyxy=[[10, 10, 50, 80]], class_id=[1])),),
                 root=tmp_path)
    gt_path = write_coco(gt, tmp_path / "gt.json")
    raw = Detections(xyxy=[[10, 10, 50, 80]], score=[0.9], class_id=[0], attributes={"source": np.array([-1], np.int32)})
    run = write_run(tmp_path / "run", [(path, WH)], [raw], model="m", parameters={"full_frame": True},
                    class_names=["With Helmet", "Without Helmet"])
    out = tmp_path / "d.json"
    from sitesight.errors import InputError

    with pytest.raises(InputError, match=r"\['With Helmet', 'Without Helmet'\].*ground-truth classes \['head', 'helmet'\]"):
        main(["--debug", "eval", "det", "--gt", str(gt_path), "--pred", str(run.run_dir), "--conf", "0.5"])
    assert main(["eval", "det", "--gt", str(gt_path), "--pred", str(run.run_dir), "--conf", "0.5", "--class-map",
                 "With Helmet=helmet,Without Helmet=head", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"]) == (1, 0, 0) and d["per_class"]["helmet"]["tp"] == 1
    assert main(["eval", "det", "--gt", str(gt_path), "--pred", str(run.run_dir), "--conf", "0.5", "--class-map",
                 "With Helmet=head,Without Helmet=", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"]) == (0, 1, 1)


def _tiny_onnx(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")

    class TinyYolo(torch.nn.Module):  # random weights, v8 layout (B, 4 + 2, 16)
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, stride=16, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x).flatten(2)
            return torch.cat([y[:, :2].sigmoid() * 64, 4 + y[:, 2:4].sigmoid() * 24, y[:, 4:].sigmoid()], dim=1)

    torch.manual_seed(3)
    torch.onnx.export(TinyYolo().eval(), (torch.zeros(1, 3, 64, 64),), str(path), input_names=["images"],
                      output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                      dynamo=False, opset_version=17)
    return path


@pytest.mark.torch
def test_sweep_rows_equal_eval_det_and_export_on_an_onnx_detector_run(tmp_path):
    model = _tiny_onnx(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(3)
    for i in range(6):
        pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        (tmp_path / "frames").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / "frames" / f"f{i}.png")
    run_dir = tmp_path / "run"
    assert main(["detect", str(tmp_path / "frames"), "--model", f"onnx:{model}", "--out", str(run_dir), "--slice", "64",
                 "--overlap", "0.25", "--conf", "0.05", "--classes", "a,b"]) == 0
    from sitesight.sliced.store import load_run

    run = load_run(run_dir)
    assert run.class_names == ("a", "b") and sum(len(r) for r in run.raw) > 50
    samples = []
    for rec, raw in zip(run.frames, run.raw, strict=True):  # truth: some of the model's boxes, moved a little, plus misses
        keep = raw[(raw.score > 0.4) & (rng.random(len(raw)) < 0.5)]
        jitter = rng.normal(0, 1.5, keep.xyxy.shape)
        extra = rng.uniform(0, 80, (1, 2))
        boxes = np.r_[keep.xyxy + jitter, np.c_[extra, extra + 20]]
        samples.append(Sample(path=Path(rec.key).name, image_wh=rec.image_wh,
                              gt=Detections(xyxy=boxes, class_id=np.r_[1 - keep.class_id, [0]])))  # GT order: b, a
    gt_path = write_coco(Dataset(("b", "a"), tuple(samples), root=tmp_path / "frames"), tmp_path / "gt.json")
    assert main(["sweep", str(run_dir), "--gt", str(gt_path), "--method", "nms,greedy_nmm", "--metric", "iou,ios",
                 "--threshold", "0.4,0.6", "--conf", "0.3,0.45", "--gate", "r=20,conf=0.3"]) == 0
    table = _rows(run_dir / "sweep.csv")
    assert len(table) == 2 * 2 * 2 * 2 * 2 and max(int(r["tp"]) for r in table) > 0
    covered = set(range(len(samples)))  # write_coco's ids for samples without one: 1..N
    covered = {i + 1 for i in covered}
    _check_rows(tmp_path, run_dir, gt_path, covered, sorted(rng.choice(len(table), 5, replace=False).tolist()), [])

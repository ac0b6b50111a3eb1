"""The public readers into the engine, and the CLI, against pycocotools and a plain matcher.

Covers the routes users take: `read_dataset` + `evaluate_coco` (reports, notebooks) on COCO files
whose ``area`` differs from w·h, with crowd boxes, 0-based and sparse category ids; ``eval det``
and ``eval coco`` on results files (no id guessing, one policy for unknown categories); and a
run exported with ``export --coco --gt`` for ground truth converted from CVAT, YOLO and VOC.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.evaluation.coco import evaluate_coco
from sitesight.formats import load_dataset, read_dataset
from sitesight.formats.coco import read_coco_results

from .cocoref import pycocotools_eval


def _gt_and_results(rng: np.random.Generator, category_ids: list[int], n_images: int = 12) -> tuple[dict, list[dict]]:
    images = [{"id": 50 + 3 * i, "file_name": f"img{i}.jpg", "width": 640, "height": 480} for i in range(n_images)]
    cats = [{"id": c, "name": f"k{c}"} for c in category_ids]
    anns, results = [], []
    for img in images:
        for _ in range(int(rng.integers(0, 7))):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(4, 120, 2)
            crowd = int(rng.random() < 0.1)
            area = float(w * h * rng.uniform(0.3, 1.0))  # e.g. a polygon's area, smaller than its box
            c = int(rng.choice(category_ids))
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": c, "bbox": [x, y, w, h], "area": area,
                         "iscrowd": crowd})
            if rng.random() < 0.8:
                jit = rng.normal(0, 0.08, 4) * [w, h, w, h]
                results.append({"image_id": img["id"], "category_id": c, "bbox": (np.array([x, y, w, h]) + jit).tolist(),
                                "score": float(rng.uniform(0.05, 1))})
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 500, 2)
            results.append({"image_id": img["id"], "category_id": int(rng.choice(category_ids)),
                            "bbox": [x, y, float(rng.uniform(5, 60)), float(rng.uniform(5, 60))], "score": float(rng.uniform(0, 1))})
    return {"images": images, "categories": cats, "annotations": anns}, results


@pytest.mark.parametrize("category_ids", [[0, 1, 2], [3, 17, 40], [1, 2]], ids=["zero-based", "sparse", "one-based"])
def test_read_dataset_and_evaluate_coco_equal_pycocotools(tmp_path, category_ids):
    rng = np.random.default_rng(len(category_ids) + category_ids[0])
    gt, results = _gt_and_results(rng, category_ids)
    # results without any box of the first category: nothing may shift
    results = [r for r in results if r["category_id"] != category_ids[0]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    ref = pycocotools_eval(gt, results).stats
    loaded = load_dataset(tmp_path / "gt.json")
    dataset = read_dataset(tmp_path / "gt.json")
    preds = read_coco_results(tmp_path / "res.json", dataset, category_ids=loaded.meta["category_ids"])
    ours = evaluate_coco([s.gt for s in dataset.samples], preds, class_names=dataset.class_names).stats
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert (np.asarray(ref) >= 0).sum() >= 6  # the case is not degenerate
    # the CLI, both routes: the COCO fast path and the any-format path (a class map forces it)
    assert main(["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"),
                 "--json", str(tmp_path / "c.json")]) == 0
    np.testing.assert_allclose(json.loads((tmp_path / "c.json").read_text())["stats"], ref, atol=1e-12)


def _plain_tp_fp_fn(gt: dict, results: list[dict], conf: float) -> tuple[int, int, int]:
    """Greedy matching at IoU 0.5 per image and category, crowd boxes ignored as pycocotools does."""
    def iou(a, b, crowd):
        w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        inter = w * h if w > 0 and h > 0 else 0.0
        union = a[2] * a[3] if crowd else a[2] * a[3] + b[2] * b[3] - inter
        return inter / union if union > 0 else 0.0

    tp = fp = 0
    n_gt = sum(1 for a in gt["annotations"] if not a["iscrowd"])
    keys = {(r["image_id"], r["category_id"]) for r in results}
    for key in keys:
        truth = [a for a in gt["annotations"] if (a["image_id"], a["category_id"]) == key]
        truth.sort(key=lambda a: a["iscrowd"])  # regular before crowd
        used = [False] * len(truth)
        preds = sorted((r for r in results if (r["image_id"], r["category_id"]) == key and r["score"] >= conf),
                       key=lambda r: -r["score"])
        for r in preds:
            best, best_iou = -1, 0.5
            for j, a in enumerate(truth):
                if used[j] and not a["iscrowd"]:
                    continue
                if best >= 0 and not truth[best]["iscrowd"] and a["iscrowd"]:
                    break
                v = iou(r["bbox"], a["bbox"], a["iscrowd"])
                if v >= best_iou:
                    best, best_iou = j, v
            if best < 0:
                fp += 1
            elif not truth[best]["iscrowd"]:
                used[best] = True
                tp += 1
    return tp, fp, n_gt - tp


@pytest.mark.parametrize("category_ids", [[0, 1, 2], [3, 17, 40]], ids=["zero-based", "sparse"])
def test_eval_det_on_results_uses_the_ground_truths_ids(tmp_path, category_ids):
    rng = np.random.default_rng(11)
    gt, results = _gt_and_results(rng, category_ids)
    results = [r for r in results if r["category_id"] != category_ids[0]]  # no box of the first class
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = tmp_path / "d.json"
    assert main(["eval", "det", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"), "--conf", "0.3",
                 "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"]) == _plain_tp_fp_fn(gt, results, 0.3)


def test_unknown_category_ids_fail_listing_them_or_are_dropped_and_counted(tmp_path):
    rng = np.random.default_rng(5)
    gt, results = _gt_and_results(rng, [1, 2])
    results = results + [{"image_id": 50, "category_id": 99, "bbox": [1, 1, 9, 9], "score": 0.9},
                         {"image_id": 53, "category_id": 77, "bbox": [1, 1, 9, 9], "score": 0.8}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    for command in ("coco", "det"):
        with pytest.raises(InputError, match=r"77, 99"):
            main(["--debug", "eval", command, "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json")])
    out = tmp_path / "c.json"
    assert main(["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"), "--ignore-unknown",
                 "--json", str(out)]) == 0
    c = json.loads(out.read_text())
    assert c["counts"]["dropped_unknown_category"] == 2
    np.testing.assert_allclose(c["stats"], pycocotools_eval(gt, results[:-2]).stats, atol=1e-12)
    assert main(["eval", "det", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"), "--ignore-unknown",
                 "--conf", "0.3", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["dropped"]["dropped_unknown_category"] == 2
    assert (d["tp"], d["fp"], d["fn"]) == _plain_tp_fp_fn(gt, results[:-2], 0.3)


def _frames_dataset(tmp_path: Path, rng: np.random.Generator):  # noqa: ANN202
    from sitesight import Dataset, Detections, Sample

    samples = []
    for i in range(6):
        name = f"f{i}.png"
        Image.new("RGB", (320, 240), (i * 20, 80, 80)).save(tmp_path / "frames" / name)
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, [260, 180], (n, 2))
        boxes = np.c_[xy, xy + rng.uniform(14, 50, (n, 2))].round(0)  # whole pixels: YOLO/VOC text keeps them
        samples.append(Sample(path=name, image_wh=(320, 240), gt=Detections(xyxy=boxes, class_id=rng.integers(0, 2, n))))
    return Dataset(("car", "person"), tuple(samples), root=tmp_path / "frames")


@pytest.mark.parametrize("fmt", ["cvat", "yolo", "voc"])
def test_export_with_gt_from_converted_formats_loads_in_pycocotools_like_eval_coco(tmp_path, fmt):
    from sitesight.formats import write_dataset
    from sitesight.sliced.store import write_run

    rng = np.random.default_rng({"cvat": 1, "yolo": 2, "voc": 3}[fmt])
    (tmp_path / "frames").mkdir()
    truth = _frames_dataset(tmp_path, rng)
    src = write_dataset(truth, tmp_path / fmt / ("annotations.xml" if fmt == "cvat" else ""), fmt, images="copy")
    gt_path = tmp_path / "gt_coco" / "gt.json"
    assert main(["data", "convert", str(src if fmt == "cvat" else tmp_path / fmt), str(gt_path), "--to", "coco"]) == 0
    raws = []
    for s in truth.samples:
        g = s.gt
        jit = rng.normal(0, 2.0, g.xyxy.shape)
        corner = rng.uniform(0, 200, (2, 2))
        fp = np.c_[corner, corner + rng.uniform(10, 40, (2, 2))]
        raws.append(type(g)(xyxy=np.r_[g.xyxy + jit, fp], score=rng.uniform(0.3, 1, len(g) + 2),
                            class_id=np.r_[1 - g.class_id, [0, 1]]))  # model order: person, car
    run = write_run(tmp_path / "run", [(str(tmp_path / "frames" / s.path), s.image_wh) for s in truth.samples], raws,
                    model="m", parameters={"full_frame": True}, class_names=["person", "car"])
    res = tmp_path / "res.json"
    assert main(["export", str(run.run_dir), "--coco", str(res), "--gt", str(gt_path), "--conf", "0.3", "--method", "nms",
                 "--metric", "iou"]) == 0
    gt_doc = json.loads(gt_path.read_text())
    results = json.loads(res.read_text())
    assert results and {r["image_id"] for r in results} <= {im["id"] for im in gt_doc["images"]}
    ref = pycocotools_eval(gt_doc, results).stats  # loadRes accepts the file
    out = tmp_path / "c.json"
    assert main(["eval", "coco", "--gt", str(gt_path), "--pred", str(res), "--json", str(out)]) == 0
    np.testing.assert_allclose(json.loads(out.read_text())["stats"], ref, atol=1e-12)
    assert ref[1] > 0.5  # AP50: the jittered truth is found, so the ids line up
    # the run itself, scored against the converted file, gives the same numbers
    assert main(["eval", "coco", "--gt", str(gt_path), "--pred", str(run.run_dir), "--conf", "0.3", "--method", "nms",
                 "--metric", "iou", "--json", str(out)]) == 0
    np.testing.assert_allclose(json.loads(out.read_text())["stats"], ref, atol=1e-12)
    # an export without --gt (ids of its own) is aligned by the file_name each result carries: scored against the
    # original-format ground truth it gives what the run gives
    bare = tmp_path / "bare.json"
    assert main(["export", str(run.run_dir), "--coco", str(bare), "--conf", "0.3", "--method", "nms", "--metric", "iou"]) == 0
    source = src if fmt == "cvat" else tmp_path / fmt
    counts = []
    for pred in (bare, run.run_dir):
        assert main(["eval", "det", "--gt", str(source), "--pred", str(pred), "--conf", "0.3", "--method", "nms",
                     "--metric", "iou", "--json", str(out)]) == 0
        d = json.loads(out.read_text())
        counts.append((d["tp"], d["fp"], d["fn"]))
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_yolo_data_yaml_with_train_equal_val_reads_each_image_once(tmp_path):
    from sitesight.formats import write_dataset

    rng = np.random.default_rng(4)
    (tmp_path / "frames").mkdir()
    truth = _frames_dataset(tmp_path, rng)
    data_yaml = write_dataset(truth, tmp_path / "yolo", "yolo", images="copy")
    doc = (tmp_path / "yolo" / "data.yaml").read_text()
    listing = tmp_path / "yolo" / "all.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted((tmp_path / "yolo" / "images").rglob("*.png"))))
    for train, val in (("images/train", "images/train"), ("all.txt", "all.txt"), ("all.txt", "images/train")):
        lines = [ln for ln in doc.splitlines() if not ln.startswith(("train:", "val:", "test:"))]
        (tmp_path / "yolo" / "data.yaml").write_text("\n".join([*lines, f"train: {train}", f"val: {val}"]) + "\n")
        assert len(read_dataset(data_yaml)) == len(truth), (train, val)
        out = tmp_path / f"c_{train.replace('/', '_')}.json"
        assert main(["data", "convert", str(data_yaml), str(out), "--to", "coco"]) == 0
        assert len(json.loads(out.read_text())["images"]) == len(truth)


def test_eval_coco_class_agnostic_equals_pycocotools_use_cats_0(tmp_path):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(21)
    gt, results = _gt_and_results(rng, [4, 9, 30])
    for r in results[::3]:  # some results name another class than their object: scored anyway without classes
        r["category_id"] = 9 if r["category_id"] != 9 else 4
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "res.json")), "bbox")
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = tmp_path / "c.json"
    assert main(["eval", "coco", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "res.json"), "--class-agnostic",
                 "--json", str(out)]) == 0
    np.testing.assert_allclose(json.loads(out.read_text())["stats"], ev.stats, atol=1e-12)

"""COCO bbox evaluation speed: sitesight vs pycocotools, faster-coco-eval and hotcoco, in one run.

Synthetic but realistic: N images x 5 classes, ~10 ground-truth boxes and ~100 predictions per
image (jittered copies of the ground truth plus clutter). Every tool reads the same two JSON files
(load included) and must print the same 12 stats; sitesight is also timed on per-image
`Detections` already in memory, next to hotcoco on numpy arrays already in memory
(``COCO.from_arrays`` + ``load_res(ndarray)``). Also times a 40-threshold confidence sweep.
Peers that are not installed are skipped. Each tool runs ``--repeats`` times after its imports
(pycocotools once: it takes ~40 s) and the medians of wall and CPU time (``process_time``, all
threads of this process) are printed: on a shared machine the CPU column is the steadier one.

    .venv/bin/python benchmarks/bench_coco_eval.py --images 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sitesight import Detections
from sitesight.evaluation.coco import evaluate_coco
from sitesight.evaluation.coco_files import evaluate_coco_files
from sitesight.evaluation.detection import confidence_sweep, operating_point


def make_data(n_images: int, seed: int = 0) -> tuple[dict, list[dict], list[Detections], list[Detections]]:
    """COCO GT dict, results list and the same boxes as per-image Detections."""
    rng = np.random.default_rng(seed)
    images, anns, results, gts, preds = [], [], [], [], []
    for i in range(n_images):
        images.append({"id": i + 1, "width": 1920, "height": 1080, "file_name": f"{i}.jpg"})
        ng = int(rng.poisson(10))
        wh = rng.uniform(8, 300, (ng, 2))
        xy = rng.uniform(0, 1600, (ng, 2))
        g = np.round(np.c_[xy, xy + wh], 2)
        gc = rng.integers(0, 5, ng)
        npd = int(rng.poisson(100))
        src = rng.integers(0, max(ng, 1), npd)
        near = rng.random(npd) < 0.4
        pwh = rng.uniform(8, 300, (npd, 2))
        pxy = rng.uniform(0, 1600, (npd, 2))
        p = np.c_[pxy, pxy + pwh]
        if ng:
            p[near] = g[src[near]] + rng.normal(0, 4, (int(near.sum()), 4))
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        p = np.round(p, 2)
        pc = np.where(near & (ng > 0), gc[src] if ng else 0, rng.integers(0, 5, npd))
        ps = np.round(rng.random(npd), 4)
        for j in range(ng):
            w, h = g[j, 2] - g[j, 0], g[j, 3] - g[j, 1]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(gc[j]) + 1,
                         "bbox": [g[j, 0], g[j, 1], w, h], "area": w * h, "iscrowd": 0})
        for j in range(npd):
            results.append({"image_id": i + 1, "category_id": int(pc[j]) + 1, "score": float(ps[j]),
                            "bbox": [p[j, 0], p[j, 1], p[j, 2] - p[j, 0], p[j, 3] - p[j, 1]]})
        gts.append(Detections(xyxy=g, class_id=gc))
        preds.append(Detections(xyxy=p, class_id=pc, score=ps))
    cats = [{"id": k + 1, "name": f"class{k}"} for k in range(5)]
    return {"images": images, "annotations": anns, "categories": cats}, results, gts, preds


def _quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def run_pycocotools(gt: Path, res: Path) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def go():
        g = COCO(str(gt))
        e = COCOeval(g, g.loadRes(str(res)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        return np.asarray(e.stats)

    return _quiet(go)


def run_faster_coco_eval(gt: Path, res: Path) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    def go():
        g = COCO(str(gt))
        e = COCOeval_faster(g, g.loadRes(str(res)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        return np.asarray(e.stats)

    return _quiet(go)


def run_hotcoco(gt: Path, res: Path) -> np.ndarray:
    import hotcoco

    def go():
        g = hotcoco.COCO(str(gt))
        e = hotcoco.COCOeval(g, g.load_res(str(res)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        return np.asarray(e.stats)

    return _quiet(go)


def hotcoco_arrays(gt_dict: dict, results: list[dict]) -> tuple:
    """The inputs hotcoco takes without JSON: columns for GT, an (N, 7) array for results."""
    anns = gt_dict["annotations"]
    gt_cols = dict(
        image_ids=np.array([a["image_id"] for a in anns]),
        category_ids=np.array([a["category_id"] for a in anns]),
        boxes=np.array([a["bbox"] for a in anns], np.float64),
    )
    res = np.array([[r["image_id"], *r["bbox"], r["score"], r["category_id"]] for r in results], np.float64)
    return gt_cols, res


def run_hotcoco_memory(gt_dict: dict, gt_cols: dict, res: np.ndarray) -> np.ndarray:
    import hotcoco

    def go():
        g = hotcoco.COCO.from_arrays(images=gt_dict["images"], categories=gt_dict["categories"], **gt_cols)
        e = hotcoco.COCOeval(g, g.load_res(res), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        return np.asarray(e.stats)

    return _quiet(go)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _timed(fn, repeats: int) -> tuple[float, float, np.ndarray | None]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5, help="runs per tool (median reported); pycocotools runs once")
    parser.add_argument("--skip", nargs="*", default=[], help="peers to skip: pycocotools faster-coco-eval hotcoco")
    args = parser.parse_args()
    gt_dict, results, gts, preds = make_data(args.images)
    print(f"{args.images} images, {len(gt_dict['annotations'])} GT boxes, {len(results)} predictions, 5 classes")
    print(f"python {platform.python_version()}, numpy {_version('numpy')}, pyarrow {_version('pyarrow')}, orjson {_version('orjson')}, "
          f"median of {args.repeats} runs")
    rows: list[tuple[str, float, float, np.ndarray | None]] = []
    names = [f"class{k}" for k in range(5)]
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, res_path = Path(tmp) / "gt.json", Path(tmp) / "res.json"
        gt_path.write_text(json.dumps(gt_dict))
        res_path.write_text(json.dumps(results))
        peers = [
            ("pycocotools", "pycocotools.cocoeval", run_pycocotools),
            ("faster-coco-eval", "faster_coco_eval", run_faster_coco_eval),
            ("hotcoco", "hotcoco", run_hotcoco),
        ]
        for label, module, fn in peers:
            if label in args.skip or _version(label) == "not installed":
                print(f"  {label}: skipped")
                continue
            importlib.import_module(module)
            repeats = 1 if label == "pycocotools" else args.repeats
            wall, cpu, stats = _timed(lambda fn=fn: fn(gt_path, res_path), repeats)
            rows.append((f"{label} {_version(label)} (JSON, load included)", wall, cpu, stats))
        evaluate_coco_files(gt_path, res_path)  # warm: first-use imports (pyarrow.csv, orjson)
        wall, cpu, ours = _timed(lambda: evaluate_coco_files(gt_path, res_path).stats, args.repeats)
        rows.append((f"sitesight {_version('sitesight')} (JSON, load included)", wall, cpu, ours))
    if "hotcoco" not in args.skip and _version("hotcoco") != "not installed":
        gt_cols, res_arr = hotcoco_arrays(gt_dict, results)
        wall, cpu, stats = _timed(lambda: run_hotcoco_memory(gt_dict, gt_cols, res_arr), args.repeats)
        rows.append(("hotcoco (numpy arrays in memory)", wall, cpu, stats))
    wall, cpu, mem = _timed(lambda: evaluate_coco(gts, preds, class_names=names).stats, args.repeats)
    rows.append(("sitesight (Detections in memory)", wall, cpu, mem))
    wall, cpu, _ = _timed(lambda: operating_point(gts, preds, iou=0.5, conf=0.5, num_classes=5), args.repeats)
    rows.append(("sitesight operating point (1 threshold, in memory)", wall, cpu, None))
    sweep = np.linspace(0.05, 0.95, 40)
    wall, cpu, _ = _timed(lambda: confidence_sweep(gts, preds, sweep, iou=0.5, num_classes=5), args.repeats)
    rows.append(("sitesight confidence sweep (40 thresholds)", wall, cpu, None))
    print(f"{'tool':<52} {'wall s':>8} {'CPU s':>8}  max |Δ stats| vs sitesight")
    for label, seconds, cpu, stats in rows:
        delta = "" if stats is None else f"{np.abs(np.asarray(stats) - ours).max():.1e}"
        print(f"{label:<52} {seconds:8.2f} {cpu:8.2f}  {delta}")
    print("stats:", np.round(ours, 4).tolist())


if __name__ == "__main__":
    main()

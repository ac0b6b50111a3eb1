"""Reference side of the parity tests: run pycocotools on the same boxes (test helper, not a fixture)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sitesight import Detections


def coco_dicts(gts: Sequence[Detections], preds: Sequence[Detections], num_classes: int) -> tuple[dict, list[dict]]:
    """GT dataset dict and results list; image ids 1..N, category id = class index + 1."""
    images = [{"id": i + 1, "width": 2000, "height": 2000} for i in range(len(gts))]
    cats = [{"id": k + 1, "name": f"c{k}"} for k in range(num_classes)]
    anns, results = [], []
    for i, (g, p) in enumerate(zip(gts, preds, strict=True)):
        xy = g.xyxy.astype(np.float64)
        crowd = g.attributes.get("iscrowd", np.zeros(len(g), int))
        area = g.attributes.get("area", None)
        for j in range(len(g)):
            w, h = xy[j, 2] - xy[j, 0], xy[j, 3] - xy[j, 1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(g.class_id[j]) + 1,
                    "bbox": [xy[j, 0], xy[j, 1], w, h],
                    "area": float(w * h if area is None else area[j]),
                    "iscrowd": int(crowd[j]),
                }
            )
        pxy = p.xyxy.astype(np.float64)
        for j in range(len(p)):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(p.class_id[j]) + 1,
                    "bbox": [pxy[j, 0], pxy[j, 1], pxy[j, 2] - pxy[j, 0], pxy[j, 3] - pxy[j, 1]],
                    "score": float(p.score[j]),
                }
            )
    return {"images": images, "categories": cats, "annotations": anns}, results


def pycocotools_eval(
    gt_dict: dict,
    results: list[dict],
    *,
    max_dets: Sequence[int] = (1, 10, 100),
    iou_thresholds: Sequence[float] | None = None,
    area_ranges: Sequence[Sequence[float]] | None = None,
) -> COCOeval:
    """COCOeval after evaluate/accumulate/summarize; empty results are loaded without loadRes."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes([dict(r) for r in results])
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt_dict["images"], "categories": gt_dict["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, np.float64)
        if area_ranges is not None:
            ev.params.areaRng = [list(a) for a in area_ranges]
        ev.evaluate()
        ev.accumulate()
        if area_ranges is None:  # summarize reads the ranges by their default labels
            ev.summarize()
    return ev

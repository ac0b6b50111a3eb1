"""COCO JSON straight into evaluation columns: the fast path of ``sitesight eval coco``.

Reading a ground-truth file and a results file into `BoxTable` columns skips building one
`Detections` per image, which matters at 5,000+ images. The semantics are pycocotools' own:
images are evaluated in ascending id order, categories in ascending id order, ground truth areas
come from the ``"area"`` field (``w * h`` when absent), ``iscrowd`` marks crowd boxes, annotations
of unknown images or categories are left out, result areas are ``w * h``, and a result whose image
is not in the ground truth is an error (pycocotools asserts).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.coco import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, CocoResult, evaluate_tables
from sitesight.evaluation.matching import BoxTable

__all__ = ["CocoGroundTruth", "load_coco_gt", "load_coco_results", "evaluate_coco_files"]


@dataclass(frozen=True)
class CocoGroundTruth:
    """A COCO ground-truth file as columns.

    Attributes:
        table: ground-truth `BoxTable` (image = index into ``image_ids``, class = index into ``category_ids``).
        image_ids: ``(N,)`` int64 ascending COCO image ids.
        image_wh: ``(N, 2)`` float64 ``(width, height)`` (0 when the file lacks them).
        category_ids: ``(K,)`` int64 ascending COCO category ids.
        class_names: ``K`` category names.
        dropped: annotations left out (unknown image or category).
    """

    table: BoxTable
    image_ids: np.ndarray
    image_wh: np.ndarray
    category_ids: np.ndarray
    class_names: tuple[str, ...]
    dropped: int


def _load_json(path: Path | str, what: str) -> Any:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"{what} file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", path) from None


def _boxes(items: Sequence[Mapping[str, Any]], path: Path | str, where: str) -> np.ndarray:
    try:
        boxes = [a["bbox"] for a in items]
        if boxes and not (min(map(len, boxes)) == max(map(len, boxes)) == 4):
            raise ValueError
        bbox = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * len(items)).reshape(len(items), 4)
    except (KeyError, TypeError, ValueError):
        for i, a in enumerate(items):
            b = a.get("bbox") if isinstance(a, Mapping) else None
            if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)):
                raise InputError(f"expected 'bbox': [x, y, w, h] of numbers, got {b!r}", path, f"{where}[{i}]") from None
        raise
    if not np.all(np.isfinite(bbox)):
        i = int(np.flatnonzero(~np.isfinite(bbox).all(axis=1))[0])
        raise InputError("bbox contains NaN or infinity", path, f"{where}[{i}]")
    return bbox


def _ints(items: Sequence[Mapping[str, Any]], key: str, path: Path | str, where: str, default: int | None = None) -> np.ndarray:
    try:
        if default is None:
            values = np.fromiter(map(itemgetter(key), items), np.float64, count=len(items))
            if not np.all(values == np.floor(values)):
                raise ValueError
            return values.astype(np.int64)
        return np.array([a.get(key, default) for a in items], np.int64).reshape(len(items))
    except (KeyError, TypeError, ValueError, AttributeError):
        for i, a in enumerate(items):
            v = a.get(key, default) if isinstance(a, Mapping) else None
            if not isinstance(v, (int, bool)) and not (isinstance(v, float) and v.is_integer()):
                raise InputError(f"expected integer {key!r}, got {v!r}", path, f"{where}[{i}]") from None
        raise


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in ``sorted_ids`` and whether it is there at all."""
    if sorted_ids.size == 0:
        return np.zeros(values.size, np.int64), np.zeros(values.size, bool)
    index = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.size - 1)
    return index, sorted_ids[index] == values


def load_coco_gt(path: Path | str) -> CocoGroundTruth:
    """Read a COCO ground-truth JSON into columns (see the module notes for the semantics)."""
    data = _load_json(path, "ground-truth")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise InputError("expected a COCO object with 'images' and 'categories' lists", path)
    anns = data.get("annotations") or []
    if not isinstance(anns, list) or not all(map(isinstance, anns, itertools.repeat(dict))):
        raise InputError("'annotations' must be a list of objects", path, "annotations")
    images = data["images"]
    raw_ids = _ints(images, "id", path, "images")
    image_ids, first = np.unique(raw_ids, return_index=True)
    wh = np.array([[im.get("width", 0) or 0, im.get("height", 0) or 0] for im in images], np.float64).reshape(-1, 2)[first]
    cats = data["categories"]
    cat_raw = _ints(cats, "id", path, "categories")
    category_ids, cfirst = np.unique(cat_raw, return_index=True)
    names = [str(cats[i].get("name", cat_raw[i])) for i in cfirst]
    # Names key the per-class results: a repeated name gets its category id appended.
    class_names = tuple(n if names.count(n) == 1 else f"{n}#{cid}" for n, cid in zip(names, category_ids.tolist(), strict=True))

    img, img_ok = _lookup(image_ids, _ints(anns, "image_id", path, "annotations"))
    cat, cat_ok = _lookup(category_ids, _ints(anns, "category_id", path, "annotations"))
    known = img_ok & cat_ok
    bbox = _boxes(anns, path, "annotations")
    box_area = bbox[:, 2] * bbox[:, 3]
    try:
        area = np.array([a.get("area", np.nan) for a in anns], np.float64).reshape(len(anns))
    except (TypeError, ValueError):
        raise InputError("'area' must be a number", path, "annotations") from None
    area = np.where(np.isnan(area), box_area, area)
    crowd = _ints(anns, "iscrowd", path, "annotations", default=0) != 0
    zero_id = _ints(anns, "id", path, "annotations", default=-1) == 0
    xyxy = np.c_[bbox[:, :2], bbox[:, :2] + bbox[:, 2:]]
    table = BoxTable.build(img, cat, xyxy, area=box_area, range_area=area, crowd=crowd, zero_id=zero_id).take(known)
    return CocoGroundTruth(
        table=table,
        image_ids=image_ids,
        image_wh=wh,
        category_ids=category_ids,
        class_names=class_names,
        dropped=int((~known).sum()),
    )


def load_coco_results(path: Path | str, gt: CocoGroundTruth) -> BoxTable:
    """Read a COCO results JSON (a list of ``image_id, category_id, bbox, score``) into columns.

    Results of categories the ground truth does not list are kept with class index ``-1`` (the
    evaluator drops them, as pycocotools does). A result for an unknown image is an `InputError`.
    """
    fast = _fast_results(path)
    if fast is not None:
        ids, cats, bbox, score = fast
        img, ok = _lookup(gt.image_ids, ids)
        if ok.all():
            cat, cat_ok = _lookup(gt.category_ids, cats)
            xyxy = np.c_[bbox[:, :2], bbox[:, :2] + bbox[:, 2:]]
            return BoxTable.build(img, np.where(cat_ok, cat, -1), xyxy, score=score, area=bbox[:, 2] * bbox[:, 3])
    data = _load_json(path, "results")
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a full COCO file used as results
    if not isinstance(data, list) or not all(isinstance(a, dict) for a in data):
        raise InputError("expected a list of result objects", path)
    ids = _ints(data, "image_id", path, "results")
    img, ok = _lookup(gt.image_ids, ids)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(f"image_id {int(ids[i])} is not in the ground truth", path, f"results[{i}]")
    cats = _ints(data, "category_id", path, "results")
    cat, cat_ok = _lookup(gt.category_ids, cats)
    bbox = _boxes(data, path, "results")
    try:
        score = np.fromiter(map(itemgetter("score"), data), np.float64, count=len(data))
    except (KeyError, TypeError, ValueError):
        raise InputError("every result needs a numeric 'score'", path, "results") from None
    xyxy = np.c_[bbox[:, :2], bbox[:, :2] + bbox[:, 2:]]
    return BoxTable.build(img, np.where(cat_ok, cat, -1), xyxy, score=score, area=bbox[:, 2] * bbox[:, 3])


def _fast_results(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Columns of a results file of flat objects via Arrow's JSON reader (about twice as fast as
    ``json``); None whenever the file is anything else (nested objects, odd types, missing keys), so
    that the plain reader handles it and reports errors with their place."""
    try:
        raw = Path(path).read_bytes().strip()
    except OSError:
        return None
    n = raw.count(b'"image_id"')
    if not (raw[:1] == b"[" and raw[-1:] == b"]") or n == 0 or raw.count(b"{") != n or raw.count(b"}") != n:
        return None
    chars = np.frombuffer(raw, np.uint8)
    braces = chars[(chars == ord("{")) | (chars == ord("}"))]
    if not (np.all(braces[0::2] == ord("{")) and np.all(braces[1::2] == ord("}"))):
        return None  # nested or stray braces: not one flat object per result
    import pyarrow as pa
    import pyarrow.json as pj

    body = raw[1:-1]
    for sep in (b"}, {", b"},{"):  # the separators json.dumps writes; plain replace is 2x faster
        if body.count(sep) == n - 1:
            lines = body.replace(sep, b"}\n{")
            break
    else:
        lines = re.sub(rb"}\s*,\s*{", b"}\n{", body)
    schema = pa.schema([("image_id", pa.int64()), ("category_id", pa.int64()), ("score", pa.float64()), ("bbox", pa.list_(pa.float64()))])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=True)
    try:
        table = pj.read_json(io.BytesIO(lines), parse_options=options)
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != n or any(table.column(c).null_count for c in schema.names):
        return None
    bbox = table.column("bbox").combine_chunks()
    if bbox.values.null_count or not np.all(np.diff(bbox.offsets.to_numpy()) == 4):
        return None
    values = bbox.values.to_numpy()[bbox.offsets[0].as_py() : bbox.offsets[-1].as_py()].reshape(n, 4)
    if not np.all(np.isfinite(values)):
        return None
    columns = [table.column(c).to_numpy() for c in ("image_id", "category_id", "score")]
    return columns[0], columns[1], values, columns[2]


def evaluate_coco_files(
    gt_path: Path | str,
    results_path: Path | str,
    *,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    relative_area: bool = False,
    honour_max_dets: bool = False,
) -> CocoResult:
    """pycocotools' ``COCOeval(gt, gt.loadRes(results), "bbox")`` stats from two JSON files.

    ``relative_area=True`` reads ``area_ranges`` as fractions of each image's ``width * height``.
    """
    gt = load_coco_gt(gt_path)
    pred = load_coco_results(results_path, gt)
    if relative_area and not np.all(gt.image_wh > 0):
        raise InputError("relative area ranges need 'width' and 'height' on every image", gt_path, "images")
    return evaluate_tables(
        gt.table,
        pred,
        n_images=gt.image_ids.size,
        class_names=gt.class_names,
        iou_thresholds=iou_thresholds,
        max_dets=max_dets,
        area_ranges=area_ranges,
        frame_wh=gt.image_wh if relative_area else None,
        honour_max_dets=honour_max_dets,
    )

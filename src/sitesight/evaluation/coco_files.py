"""COCO JSON straight into evaluation columns: the fast path of ``sitesight eval coco``.

Reading a ground-truth file and a results file into `BoxTable` columns skips building one
`Detections` per image, which matters at 5,000+ images. The semantics are pycocotools' own:
images are evaluated in ascending id order, categories in ascending id order, ground truth areas
come from the ``"area"`` field (``w * h`` when absent), ``iscrowd`` marks crowd boxes, annotations
of unknown images or categories are left out, result areas are ``w * h``, and a result whose image
is not in the ground truth is an error (pycocotools asserts). A result of a category the ground truth
does not list is an error too (pycocotools would silently ignore it); ``ignore_unknown`` drops both
kinds and ``CocoResult.counts`` says how many.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.coco import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, CocoResult, evaluate_tables
from sitesight.evaluation.coco_json import load_json, paused_gc, read_flat_results
from sitesight.evaluation.matching import BoxTable
from sitesight.limits import show

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


def _read(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file: {exc}", path) from None


def _load_json(path: Path | str, what: str, raw: bytes | None = None) -> Any:
    try:
        return load_json(_read(path, what) if raw is None else raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {str(exc)[:120]}", path) from None
    except RecursionError:
        raise InputError("JSON nested too deep", path) from None
    except ValueError as exc:  # an integer over Python's 4,300-digit limit
        raise InputError(f"unreadable JSON value ({str(exc)[:80]})", path) from None


def _boxes(items: Sequence[Mapping[str, Any]], path: Path | str, where: str) -> np.ndarray:
    try:
        boxes = list(map(itemgetter("bbox"), items))
        if boxes and not (min(map(len, boxes)) == max(map(len, boxes)) == 4):
            raise ValueError
        bbox = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, count=4 * len(items)).reshape(len(items), 4)
    except (KeyError, TypeError, ValueError, OverflowError):
        for i, a in enumerate(items):
            b = a.get("bbox") if isinstance(a, Mapping) else None
            if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and abs(v) < 1e300 for v in b)):
                raise InputError(f"expected 'bbox': [x, y, w, h] of numbers, got {show(b, 80)}", path, f"{where}[{i}]") from None
        raise InputError("unreadable 'bbox' values", path, where) from None
    if not np.all(np.isfinite(bbox)):
        i = int(np.flatnonzero(~np.isfinite(bbox).all(axis=1))[0])
        raise InputError("bbox contains NaN or infinity", path, f"{where}[{i}]")
    return bbox


def _finite_scores(score: np.ndarray, path: Path | str) -> None:
    if not np.all(np.isfinite(score)):
        i = int(np.flatnonzero(~np.isfinite(score))[0])
        raise InputError(f"score is {score[i]}, expected a finite number", path, f"results[{i}].score")


def _values(items: Sequence[Mapping[str, Any]], key: str, default: Any, dtype: type) -> np.ndarray:
    """``(N,)`` one key of every item; ``default`` where it is missing (``TypeError``/``ValueError`` on bad values)."""
    try:
        return np.fromiter(map(itemgetter(key), items), dtype, count=len(items))
    except KeyError:
        return np.fromiter((a.get(key, default) for a in items), dtype, count=len(items))


def _ints(items: Sequence[Mapping[str, Any]], key: str, path: Path | str, where: str, default: int | None = None) -> np.ndarray:
    try:
        if default is None:
            values = np.fromiter(map(itemgetter(key), items), np.float64, count=len(items))
            if not np.all((values == np.floor(values)) & (np.abs(values) < 2.0**63)):
                raise ValueError
            return values.astype(np.int64)
        return _values(items, key, default, np.int64)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        for i, a in enumerate(items):
            v = a.get(key, default) if isinstance(a, Mapping) else None
            if not isinstance(v, (int, bool)) and not (isinstance(v, float) and v.is_integer()):
                raise InputError(f"expected integer {key!r}, got {show(v)}", path, f"{where}[{i}]") from None
            if not -(2**63) <= v < 2**63:
                raise InputError(f"integer {key!r} out of range: {show(v)}", path, f"{where}[{i}]") from None
        # Every value is an integer in range, only past float64's exact range: convert exactly.
        return np.array([int(a.get(key, default)) for a in items], dtype=np.int64)


def _lookup(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each value in ``sorted_ids`` and whether it is there at all."""
    if sorted_ids.size == 0:
        return np.zeros(values.size, np.int64), np.zeros(values.size, bool)
    index = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.size - 1)
    return index, sorted_ids[index] == values


def load_coco_gt(path: Path | str) -> CocoGroundTruth:
    """Read a COCO ground-truth JSON into columns (see the module notes for the semantics)."""
    with paused_gc():
        return _gt_columns(_load_json(path, "ground-truth"), path)


def _gt_columns(data: Any, path: Path | str) -> CocoGroundTruth:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise InputError("expected a COCO object with 'images' and 'categories' lists", path)
    anns = data.get("annotations") or []
    if not isinstance(anns, list) or not all(map(isinstance, anns, itertools.repeat(dict))):
        raise InputError("'annotations' must be a list of objects", path, "annotations")
    images = data["images"]
    raw_ids = _ints(images, "id", path, "images")
    image_ids, first = np.unique(raw_ids, return_index=True)
    try:
        wh = np.c_[_values(images, "width", 0, np.float64), _values(images, "height", 0, np.float64)][first]
    except (TypeError, ValueError, OverflowError):
        raise InputError("'width' and 'height' must be numbers", path, "images") from None
    wh[np.isnan(wh)] = 0.0  # null: unknown
    if not np.all(np.isfinite(wh) & (wh >= 0)):
        i = int(np.flatnonzero(~(np.isfinite(wh) & (wh >= 0)).all(axis=1))[0])
        raise InputError(f"image size {wh[i].tolist()} is not a finite, non-negative number", path, f"images[{int(first[i])}]")
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
        area = _values(anns, "area", np.nan, np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError("'area' must be a number", path, "annotations") from None
    if np.isinf(area).any():
        raise InputError("'area' must be finite", path, f"annotations[{int(np.flatnonzero(np.isinf(area))[0])}].area")
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


def load_coco_results(path: Path | str, gt: CocoGroundTruth, *, ignore_unknown: bool = False) -> BoxTable:
    """Read a COCO results JSON (a list of ``image_id, category_id, bbox, score``) into columns.

    A result of a category or an image the ground truth does not list is an `InputError` naming
    them; with ``ignore_unknown`` results of unknown images are left out and those of unknown
    categories kept with class index ``-1`` (the evaluator drops them, as pycocotools does).
    """
    raw = _read(path, "results")
    fast = read_flat_results(raw)
    if fast is not None:
        ids, cats, bbox, score = fast
        img, ok = _lookup(gt.image_ids, ids)
        if ok.all() or ignore_unknown:
            _finite_scores(score, path)
            cat, cat_ok = _lookup(gt.category_ids, cats)
            _unknown_categories(cats, cat_ok, gt, path, ignore_unknown)
            xyxy = np.c_[bbox[:, :2], bbox[:, :2] + bbox[:, 2:]]
            return BoxTable.build(img, np.where(cat_ok, cat, -1), xyxy, score=score, area=bbox[:, 2] * bbox[:, 3]).take(ok)
    with paused_gc():
        return _results_columns(_load_json(path, "results", raw), path, gt, ignore_unknown)


def _unknown_categories(cats: np.ndarray, cat_ok: np.ndarray, gt: CocoGroundTruth, path: Path | str, ignore: bool) -> None:
    """The one policy for results of unknown categories: an error listing them, unless ``ignore``
    (then the evaluator leaves them out, as pycocotools does, and the counts say how many)."""
    if ignore or cat_ok.all():
        return
    unknown = np.unique(cats[~cat_ok])
    raise InputError(f"{int((~cat_ok).sum())} results have category ids {unknown[:20].tolist()} that the ground truth does "
                     f"not list (it has {gt.category_ids.tolist()}); pass --ignore-unknown to drop them", path)


def _results_columns(data: Any, path: Path | str, gt: CocoGroundTruth, ignore_unknown: bool = False) -> BoxTable:
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a full COCO file used as results
    if not isinstance(data, list) or not all(isinstance(a, dict) for a in data):
        raise InputError("expected a list of result objects", path)
    ids = _ints(data, "image_id", path, "results")
    img, ok = _lookup(gt.image_ids, ids)
    if not ok.all() and not ignore_unknown:
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(f"image_id {int(ids[i])} is not in the ground truth ({int((~ok).sum())} such results; "
                         "--ignore-unknown drops them)", path, f"results[{i}]")
    cats = _ints(data, "category_id", path, "results")
    cat, cat_ok = _lookup(gt.category_ids, cats)
    _unknown_categories(cats, cat_ok, gt, path, ignore_unknown)
    bbox = _boxes(data, path, "results")
    try:
        score = np.fromiter(map(itemgetter("score"), data), np.float64, count=len(data))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InputError("every result needs a numeric 'score'", path, "results") from None
    _finite_scores(score, path)
    xyxy = np.c_[bbox[:, :2], bbox[:, :2] + bbox[:, 2:]]
    return BoxTable.build(img, np.where(cat_ok, cat, -1), xyxy, score=score, area=bbox[:, 2] * bbox[:, 3]).take(ok)


def evaluate_coco_files(
    gt_path: Path | str,
    results_path: Path | str,
    *,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] = COCO_AREA_RANGES,
    relative_area: bool = False,
    honour_max_dets: bool = False,
    class_agnostic: bool = False,
    ignore_unknown: bool = False,
) -> CocoResult:
    """pycocotools' ``COCOeval(gt, gt.loadRes(results), "bbox")`` stats from two JSON files.

    ``relative_area=True`` reads ``area_ranges`` as fractions of each image's ``width * height``.
    ``class_agnostic`` scores every box as one class (pycocotools' ``useCats = 0``).
    ``ignore_unknown`` drops results of unknown images or categories (``counts`` says how many)
    instead of failing.
    """
    gt = load_coco_gt(gt_path)
    pred = load_coco_results(results_path, gt, ignore_unknown=ignore_unknown)
    n_results = len(pred)
    dropped_category = int((pred.class_id < 0).sum())
    class_names = gt.class_names
    table = gt.table
    if class_agnostic:
        pred = pred.take(pred.class_id >= 0) if not ignore_unknown else pred
        pred = pred.with_columns(class_id=np.zeros(len(pred), np.int64))
        table = table.with_columns(class_id=np.zeros(len(table), np.int64))
        class_names, dropped_category = ("object",), 0
    if relative_area and not np.all(gt.image_wh > 0):
        raise InputError("relative area ranges need 'width' and 'height' on every image", gt_path, "images")
    result = evaluate_tables(
        table,
        pred,
        n_images=gt.image_ids.size,
        class_names=class_names,
        iou_thresholds=iou_thresholds,
        max_dets=max_dets,
        area_ranges=area_ranges,
        frame_wh=gt.image_wh if relative_area else None,
        honour_max_dets=honour_max_dets,
    )
    if ignore_unknown:
        dropped = {"dropped_unknown_category": dropped_category}
        try:
            dropped["dropped_unknown_image"] = _count_results(results_path) - n_results
        except (OSError, ValueError):
            pass
        result = replace(result, counts={**result.counts, **dropped})
    return result


def _count_results(path: Path | str) -> int:
    data = load_json(_read(path, "results"))
    if isinstance(data, dict):
        data = data.get("annotations", [])
    return len(data) if isinstance(data, list) else 0

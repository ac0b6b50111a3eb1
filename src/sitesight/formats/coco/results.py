"""COCO results JSON (predictions): `load_coco_results` / `read_coco_results` and `write_coco_results`."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.coco.fields import (
    RESULT_KEYS,
    box_fields,
    category_ids_for,
    check_writable,
    coco_image_ids,
    load_json_doc,
    num,
    xywh_box,
)
from sitesight.limits import number as limits_number
from sitesight.limits import show

__all__ = ["load_coco_results", "read_coco_results", "write_coco_results"]

logger = logging.getLogger(__name__)

def load_coco_results(
    path: Path | str,
    dataset: Dataset,
    *,
    category_ids: Sequence[int] | None = None,
    class_map: Sequence[tuple[str, str]] = (),
    class_agnostic: bool = False,
    ignore_unknown: bool = False,
) -> tuple[list[Detections], dict[str, int]]:
    """`read_coco_results` plus counts: ``{"results", "dropped_unknown_category", "dropped_unknown_image"}``."""
    from sitesight.identity import align_paths

    path = Path(path)
    doc = load_json_doc(path)
    if isinstance(doc, dict) and "annotations" in doc:
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise InputError(f"expected a JSON list of results, got {type(doc).__name__}", path)
    for i, r in enumerate(doc):
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox"} <= set(r):
            raise InputError("expected an object with image_id, category_id, bbox", path, f"[{i}]")
    # Frames: by file_name when every result names its frame (sitesight exports do), else by image id.
    if doc and all(isinstance(r.get("file_name"), str) for r in doc):
        names = sorted({r["file_name"] for r in doc})
        sample = align_paths(names, [str(s.path) for s in dataset.samples], gt_root=dataset.root, what="results").sample
        row_of_name = dict(zip(names, sample.tolist(), strict=True))
        rows_of = [row_of_name[r["file_name"]] for r in doc]
    else:
        row_of = {image_id: i for i, image_id in enumerate(coco_image_ids(dataset))}
        rows_of = [row_of.get(int(num(r["image_id"], path, f"[{i}].image_id", integer=True)), -1) for i, r in enumerate(doc)]
    # Classes: the ground truth's category ids when known; else names when every result has one;
    # else the ids sitesight writes (1..K). Nothing is guessed from the ids present.
    mapping = dict(class_map)
    by_name = (category_ids is None or bool(class_map)) and bool(doc) and all("category_name" in r for r in doc)
    if class_map and not by_name:
        raise InputError("a class map applies to category names, and these results are matched by category id", path)
    cids = category_ids_for(dataset, category_ids)
    by_id = {int(c): dataset.class_names[i] for i, c in enumerate(cids)}
    classes: list[str | None] = []
    unknown: dict[str | int, int] = {}
    for i, r in enumerate(doc):
        if class_agnostic:
            classes.append(dataset.class_names[0] if dataset.class_names else None)
            continue
        if by_name:
            name = str(r["category_name"])
            target = mapping.get(name, name)
            if target == "":  # dropped by the class map
                classes.append("")
                continue
            ok = target in dataset.class_names
        else:
            cid = int(num(r["category_id"], path, f"[{i}].category_id", integer=True))
            target, ok = by_id.get(cid), cid in by_id
            name = cid  # type: ignore[assignment]
        classes.append(target if ok else None)
        if not ok:
            unknown[name] = unknown.get(name, 0) + 1
    bad_images = sum(1 for k in rows_of if k < 0)
    if (unknown or bad_images) and not ignore_unknown:
        if bad_images:
            first = next(i for i, k in enumerate(rows_of) if k < 0)
            what = f"file_name {show(doc[first]['file_name'])}" if "file_name" in doc[first] else f"image_id {show(doc[first]['image_id'])}"
            raise InputError(f"{what} matches no sample of the ground truth ({bad_images} such results); pass "
                             "--ignore-unknown to drop them", path, f"[{first}]")
        kind = "category_name" if by_name else "category_id"
        known = list(dataset.class_names) if by_name else sorted(by_id)
        raise InputError(f"unknown {kind} values {sorted(unknown)[:20]} ({sum(unknown.values())} results); the ground truth has "
                         f"{known}; pass --class-map, --class-agnostic or --ignore-unknown to drop them", path)
    per_image: list[ImageRows] = [ImageRows(path=str(s.path), image_wh=s.image_wh) for s in dataset.samples]
    for i, r in enumerate(doc):
        where = f"[{i}]"
        name = classes[i]
        if rows_of[i] < 0 or not name:
            continue
        attrs: dict[str, object] = {k: limits_number(v, path, f"{where}.{k}", lo=-3.4e38, hi=3.4e38) if isinstance(v, float) else v
                                    for k, v in r.items() if k not in RESULT_KEYS and isinstance(v, (int, float))}  # fmt: skip
        for k, v in attrs.items():
            if isinstance(v, int) and not -(2**63) <= v < 2**63:
                raise InputError(f"integer {show(v)} out of range", path, f"{where}.{k}")
        extra = r.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        attrs.update({k: str(v) for k, v in extra.items()})
        rows = per_image[rows_of[i]]
        rows.add(xywh_box(r["bbox"], path, where + ".bbox"), name, attrs)
        rows.scores.append(float(num(r.get("score", 1.0), path, where + ".score")))
    built = build_dataset(per_image, dataset.class_names, {}, None)
    counts = {"results": len(doc), "dropped_unknown_category": sum(unknown.values()), "dropped_unknown_image": bad_images}
    if ignore_unknown and (unknown or bad_images):
        logger.warning("%s: dropped %d results of unknown categories %s and %d of unknown images", path,
                       sum(unknown.values()), sorted(unknown)[:20], bad_images)
    return [_typed(s.gt) for s in built.samples], counts


def read_coco_results(
    path: Path | str,
    dataset: Dataset,
    *,
    category_ids: Sequence[int] | None = None,
    class_map: Sequence[tuple[str, str]] = (),
    class_agnostic: bool = False,
    ignore_unknown: bool = False,
) -> list[Detections]:
    """Read COCO results JSON into one `Detections` per sample of ``dataset`` (aligned, empty where none).

    Frames: by ``file_name`` when every result carries one (`sitesight.identity.align_paths`), else
    by ``image_id`` (`coco_image_ids`). Classes: ``category_ids`` (the ground truth's COCO ids) when
    given; else ``category_name`` when every result has one (through ``class_map``); else ids
    ``1..K``. ``class_agnostic`` puts every result in the first class. Nothing is guessed.
    Extra per-box fields become attributes: numbers at the top level as numeric arrays, the
    ``attributes`` dict as object arrays of ``str``.

    Raises:
        InputError: malformed JSON, wrong types; results of unknown images or categories (all
            listed) unless ``ignore_unknown`` drops them (counted by `load_coco_results`).
    """
    return load_coco_results(path, dataset, category_ids=category_ids, class_map=class_map,
                             class_agnostic=class_agnostic, ignore_unknown=ignore_unknown)[0]


def _typed(det: Detections) -> Detections:
    """Object columns holding only numbers (top-level result fields) become numeric arrays."""
    attributes = {}
    for key, column in det.attributes.items():
        values = list(column)
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            column = np.array(values, dtype=np.int64 if all(isinstance(v, int) for v in values) else np.float32)
        attributes[key] = column
    return det.replace(attributes=attributes)


def write_coco_results(
    dataset: Dataset,
    preds: Sequence[Detections],
    path: Path | str,
    *,
    category_ids: Sequence[int] | None = None,
    file_names: Sequence[str] | None = None,
    decimals: int | None = 3,
) -> Path:
    """Write predictions (one `Detections` per sample) as COCO results JSON.

    Each entry has ``image_id`` (`coco_image_ids`), ``category_id``, ``category_name``, ``bbox``
    (xywh), ``score``; numeric attributes as top-level fields and string attributes in an
    ``attributes`` dict, so that `read_coco_results` restores them. ``file_names`` (one per
    sample) adds a ``file_name`` to every entry, so readers can align frames by path rather than
    by id. ``decimals`` rounds boxes (scores get 3 more); None writes the float32 values exactly.
    """
    if len(preds) != len(dataset.samples):
        raise ValueError(f"preds: expected {len(dataset.samples)} Detections (one per sample), got {len(preds)}")
    cids = category_ids_for(dataset, category_ids)
    names = list(file_names) if file_names is not None else [None] * len(preds)
    results = []
    for image_id, det, name in zip(coco_image_ids(dataset), preds, names, strict=True):
        xywh = np.concatenate([det.xyxy[:, :2], det.xyxy[:, 2:] - det.xyxy[:, :2]], axis=1).astype(np.float64)
        check_writable(xywh, f"image_id {image_id}", det.score)
        for i in range(len(det)):
            c = int(det.class_id[i])
            box = [float(v) for v in xywh[i]] if decimals is None else [round(float(v), decimals) for v in xywh[i]]
            score = float(det.score[i]) if decimals is None else round(float(det.score[i]), decimals + 3)
            entry = {"image_id": image_id, "category_id": cids[c], "category_name": dataset.class_names[c],
                     "bbox": box, "score": score}  # fmt: skip
            if name is not None:
                entry["file_name"] = name
            top, attrs = box_fields(det, i, set())
            entry.update(top)
            if attrs:
                entry["attributes"] = attrs
            results.append(entry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(results), encoding="utf-8")
    return path

"""COCO instances JSON (ground truth) and COCO results JSON (predictions).

Boxes are COCO ``[x, y, w, h]`` in the file and ``xyxy`` inside. ``segmentation`` is ignored for
boxes. Per box, ``iscrowd`` becomes ``attributes["iscrowd"]`` (int64), ``area`` is kept as
``attributes["coco_area"]`` (float32, NaN when absent; pycocotools' area ranges use it) and the
``attributes`` dict that CVAT's COCO export writes becomes per-box attributes: ``occluded`` →
``cvat_occluded`` (bool), ``track_id`` → ``cvat_track_id``, ``keyframe`` dropped, ``rotation``
(CVAT writes the unrotated box plus its rotation in degrees) applied so the box is the rotated
box's axis-aligned extent, exactly as `sitesight.formats.cvat` reads the same shape from XML,
every other value an object array of ``str`` with a schema inferred from the values seen.

Category ids: classes are the categories in id order; ids may start at 0 or have gaps. `load_coco`
returns the ids in ``Loaded.meta["category_ids"]``; pass them to `write_coco` /
`write_coco_results` / `read_coco_results` as ``category_ids`` to write the same ids back
(default: ``1..K``). Image ids: `coco_image_ids` (the samples' ``image_id`` when all are set and
unique, else ``1..N``) is used both ways, so results written here read back onto the same samples.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import AttributeSpec, Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.cvat_shapes import rotated_box_extent
from sitesight.formats.issues import Issue, Loaded, log_issues

__all__ = ["read_coco", "load_coco", "write_coco", "read_coco_results", "write_coco_results", "coco_image_ids"]

logger = logging.getLogger(__name__)

_CVAT_KEYS = {"occluded": "cvat_occluded", "track_id": "cvat_track_id"}
_DROPPED_KEYS = {"keyframe"}
_RESULT_KEYS = {"image_id", "category_id", "bbox", "score", "segmentation", "iscrowd", "area", "id", "category_name", "attributes"}


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a JSON file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path) from None
    if not text.strip():
        raise InputError("empty file, expected COCO JSON", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path, f"line {exc.lineno}, column {exc.colno}") from None


def _num(value: Any, path: Path, where: str, *, integer: bool = False) -> float:
    """A JSON number (numeric strings tolerated, as some exporters write them)."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"expected a number, got {value!r}", path, where)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number, got {value!r}", path, where) from None
    if not math.isfinite(number) or (integer and number != int(number)):
        raise InputError(f"expected {'an integer' if integer else 'a finite number'}, got {value!r}", path, where)
    return number


def _list(doc: dict, key: str, path: Path, required: bool = True) -> list:
    value = doc.get(key, None if required else [])
    if not isinstance(value, list):
        raise InputError(f"expected key {key!r} with a list, got {type(value).__name__}", path, key)
    return value


def _xywh(value: Any, path: Path, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise InputError(f"expected bbox [x, y, w, h], got {value!r}"[:120], path, where)
    x, y, w, h = (_num(v, path, where) for v in value)
    if w < 0 or h < 0:
        raise InputError(f"negative bbox width/height {value!r}", path, where)
    return x, y, x + w, y + h


def load_coco(path: Path | str, *, image_root: Path | str | None = None) -> Loaded:
    """Read COCO instances JSON; ``Loaded.meta["category_ids"]`` holds the original category ids.

    Args:
        path: the JSON file.
        image_root: folder that ``file_name`` is relative to (default: the JSON's folder, or its
            ``images/`` subfolder when the files lie there).

    Raises:
        InputError: malformed JSON (line and column), missing keys, wrong types (key path named).
    """
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"expected a JSON object with images/annotations/categories, got {type(doc).__name__}", path)
    issues: list[Issue] = []
    categories: dict[int, str] = {}
    for i, cat in enumerate(_list(doc, "categories", path)):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise InputError("expected an object with 'id' and 'name'", path, where)
        categories[int(_num(cat["id"], path, where + ".id", integer=True))] = str(cat["name"])
    category_ids = sorted(categories)
    root = Path(image_root) if image_root is not None else path.parent
    images: dict[int, ImageRows] = {}
    for i, img in enumerate(_list(doc, "images", path)):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise InputError("expected an object", path, where)
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise InputError(f"missing key {key!r}", path, where)
        image_id = int(_num(img["id"], path, where + ".id", integer=True))
        wh = (int(_num(img["width"], path, where + ".width")), int(_num(img["height"], path, where + ".height")))
        name = str(img["file_name"])
        if image_root is None and not (root / name).exists() and (root / "images" / name).exists():
            name = f"images/{name}"
        images[image_id] = ImageRows(path=name, image_wh=wh, image_id=image_id)
    names = {cid: categories[cid] for cid in category_ids}
    value_sets: dict[str, dict[str, None]] = {}
    bool_keys: set[str] = set()
    for i, ann in enumerate(_list(doc, "annotations", path, required=False)):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise InputError("expected an object", path, where)
        for key in ("image_id", "category_id", "bbox"):
            if key not in ann:
                raise InputError(f"missing key {key!r}", path, where)
        image_id = int(_num(ann["image_id"], path, where + ".image_id", integer=True))
        if image_id not in images:
            raise InputError(f"image_id {image_id} is not in 'images'", path, where + ".image_id")
        cid = int(_num(ann["category_id"], path, where + ".category_id", integer=True))
        if cid not in names:
            names[cid] = str(cid)
            issues.append(Issue("error", "unknown_label", f"category_id {cid} is not in 'categories'", str(path), where))
        attrs: dict[str, object] = {"iscrowd": int(_num(ann.get("iscrowd", 0), path, where + ".iscrowd"))}
        attrs["coco_area"] = float(_num(ann["area"], path, where + ".area")) if ann.get("area") is not None else math.nan
        extra = ann.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        box = _xywh(ann["bbox"], path, where + ".bbox")
        for key, value in extra.items():
            if key == "rotation":
                box = rotated_box_extent(*box, _num(value, path, where + ".attributes.rotation"))
                continue
            if key in _DROPPED_KEYS:
                continue
            if key in _CVAT_KEYS and not isinstance(value, str):
                attrs[_CVAT_KEYS[key]] = value
                continue
            if isinstance(value, bool):
                bool_keys.add(key)
                value = "true" if value else "false"
            text = str(value)
            value_sets.setdefault(key, {})[text] = None
            attrs[key] = text
        images[image_id].add(box, names[cid], attrs)
    schema = {
        key: AttributeSpec(name=key, values=tuple(values), input_type="checkbox" if key in bool_keys else "select")
        for key, values in value_sets.items()
    }
    class_names = [names[c] for c in sorted(names)]
    dataset = build_dataset(list(images.values()), class_names, schema, root)
    return Loaded(dataset, issues, meta={"category_ids": tuple(sorted(names))})


def read_coco(path: Path | str, *, image_root: Path | str | None = None) -> Dataset:
    """`load_coco` without the issues (they are logged as warnings)."""
    loaded = load_coco(path, image_root=image_root)
    log_issues(loaded.issues, logger)
    return loaded.dataset


def coco_image_ids(dataset: Dataset) -> list[int]:
    """The COCO image id of each sample: their ``image_id`` when all set and unique, else ``1..N``."""
    ids = [s.image_id for s in dataset.samples]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return [int(i) for i in ids]  # type: ignore[arg-type]
    return list(range(1, len(ids) + 1))


def _category_ids(dataset: Dataset, category_ids: Sequence[int] | None) -> list[int]:
    if category_ids is None:
        return list(range(1, len(dataset.class_names) + 1))
    if len(category_ids) != len(dataset.class_names):
        raise ValueError(f"category_ids: expected {len(dataset.class_names)} ids, got {len(category_ids)}")
    return [int(c) for c in category_ids]


def _box_fields(det: Detections, i: int, schema_keys: set[str]) -> tuple[dict, dict]:
    """(top-level extras, attributes dict) for box ``i``: numbers go top level, strings into the dict."""
    top: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for key, column in det.attributes.items():
        value = column[i]
        if key in ("iscrowd", "coco_area", "cvat_z_order", "cvat_shape"):
            continue
        if key == "cvat_occluded":
            attrs["occluded"] = bool(value)
        elif key == "cvat_track_id":
            if int(value) >= 0:
                attrs["track_id"] = int(value)
        elif value is None:
            continue
        elif key in schema_keys or column.dtype == object:
            attrs[key] = value if isinstance(value, str) else str(value)
        elif column.dtype.kind in "iub":
            top[key] = int(value)
        elif column.dtype.kind == "f":
            top[key] = float(value)
    return top, attrs


def _file_name(dataset: Dataset, sample: object, out_dir: Path) -> str:
    """``file_name`` that resolves from ``out_dir``: relative when the image lies under it,
    absolute when it exists elsewhere, else the sample path as it is."""
    image = dataset.image_path(sample)  # type: ignore[arg-type]
    if image.is_file():
        image, out_dir = image.resolve(), out_dir.resolve()
        return image.relative_to(out_dir).as_posix() if image.is_relative_to(out_dir) else image.as_posix()
    return Path(sample.path).as_posix()  # type: ignore[attr-defined]


def write_coco(dataset: Dataset, path: Path | str, *, category_ids: Sequence[int] | None = None) -> Path:
    """Write COCO instances JSON (``iscrowd``, ``area`` and string attributes kept).

    Args:
        dataset: the dataset; sample paths are written as ``file_name``.
        path: the JSON file.
        category_ids: id per class (from ``load_coco(...).meta["category_ids"]``); default ``1..K``.
    """
    path = Path(path)
    cids = _category_ids(dataset, category_ids)
    image_ids = coco_image_ids(dataset)
    schema_keys = set(dataset.attribute_schema)
    annotations = []
    for sample, image_id in zip(dataset.samples, image_ids, strict=True):
        gt = sample.gt
        xywh = np.concatenate([gt.xyxy[:, :2], gt.xyxy[:, 2:] - gt.xyxy[:, :2]], axis=1).astype(np.float64)
        crowd = gt.attributes.get("iscrowd")
        area = gt.attributes.get("coco_area")
        for i in range(len(gt)):
            box = [round(float(v), 3) for v in xywh[i]]
            a = float(area[i]) if area is not None and area.dtype.kind == "f" and np.isfinite(area[i]) else box[2] * box[3]
            top, attrs = _box_fields(gt, i, schema_keys)
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": cids[int(gt.class_id[i])],
                   "bbox": box, "area": a, "iscrowd": int(crowd[i]) if crowd is not None else 0, "segmentation": []}  # fmt: skip
            ann.update(top)
            if attrs:
                ann["attributes"] = attrs
            annotations.append(ann)
    doc = {
        "info": {"description": "written by sitesight"},
        "categories": [{"id": c, "name": n, "supercategory": ""} for c, n in zip(cids, dataset.class_names, strict=True)],
        "images": [
            {"id": image_id, "file_name": _file_name(dataset, s, path.parent), "width": s.image_wh[0], "height": s.image_wh[1]}
            for s, image_id in zip(dataset.samples, image_ids, strict=True)
        ],
        "annotations": annotations,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _class_lookup(dataset: Dataset, category_ids: Sequence[int] | None, observed: set[int]) -> dict[int, int]:
    if category_ids is not None:
        return {int(c): i for i, c in enumerate(_category_ids(dataset, category_ids))}
    k = len(dataset.class_names)
    if observed and min(observed) >= 1 and max(observed) <= k:
        return {c: c - 1 for c in range(1, k + 1)}
    return {c: c for c in range(k)}


def read_coco_results(
    path: Path | str, dataset: Dataset, *, category_ids: Sequence[int] | None = None
) -> list[Detections]:
    """Read COCO results JSON into one `Detections` per sample of ``dataset`` (aligned, empty where none).

    Category mapping: ``category_ids`` when given; else ``category_name`` when every result has
    one; else ids ``1..K`` → classes ``0..K-1`` when all ids lie in ``1..K``, otherwise id = class.
    Extra per-box fields become attributes: numbers at the top level as numeric arrays, the
    ``attributes`` dict as object arrays of ``str``.

    Raises:
        InputError: malformed JSON, wrong types, unknown image or category ids (index named).
    """
    path = Path(path)
    doc = _load_json(path)
    if isinstance(doc, dict) and "annotations" in doc:
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise InputError(f"expected a JSON list of results, got {type(doc).__name__}", path)
    row_of = {image_id: i for i, image_id in enumerate(coco_image_ids(dataset))}
    for i, r in enumerate(doc):
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox"} <= set(r):
            raise InputError("expected an object with image_id, category_id, bbox", path, f"[{i}]")
    by_name = all("category_name" in r for r in doc) and bool(doc)
    lookup = _class_lookup(dataset, category_ids, {int(_num(r["category_id"], path, f"[{i}].category_id"))
                                                    for i, r in enumerate(doc)})  # fmt: skip
    per_image: list[ImageRows] = [ImageRows(path=str(s.path), image_wh=s.image_wh) for s in dataset.samples]
    for i, r in enumerate(doc):
        where = f"[{i}]"
        image_id = int(_num(r["image_id"], path, where + ".image_id", integer=True))
        if image_id not in row_of:
            raise InputError(f"image_id {image_id} matches no sample of the dataset", path, where)
        if by_name:
            name = str(r["category_name"])
            if name not in dataset.class_names:
                raise InputError(f"category_name {name!r} is not a class of the dataset", path, where)
        else:
            cid = int(_num(r["category_id"], path, where + ".category_id", integer=True))
            if cid not in lookup:
                raise InputError(f"category_id {cid} maps to no class (pass category_ids)", path, where)
            name = dataset.class_names[lookup[cid]]
        attrs: dict[str, object] = {k: v for k, v in r.items() if k not in _RESULT_KEYS and isinstance(v, (int, float))}
        extra = r.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        attrs.update({k: str(v) for k, v in extra.items()})
        rows = per_image[row_of[image_id]]
        rows.add(_xywh(r["bbox"], path, where + ".bbox"), name, attrs)
        rows.scores.append(float(_num(r.get("score", 1.0), path, where + ".score")))
    built = build_dataset(per_image, dataset.class_names, {}, None)
    return [_typed(s.gt) for s in built.samples]


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
    dataset: Dataset, preds: Sequence[Detections], path: Path | str, *, category_ids: Sequence[int] | None = None
) -> Path:
    """Write predictions (one `Detections` per sample) as COCO results JSON.

    Each entry has ``image_id`` (`coco_image_ids`), ``category_id``, ``category_name``, ``bbox``
    (xywh), ``score``; numeric attributes as top-level fields and string attributes in an
    ``attributes`` dict, so that `read_coco_results` restores them.
    """
    if len(preds) != len(dataset.samples):
        raise ValueError(f"preds: expected {len(dataset.samples)} Detections (one per sample), got {len(preds)}")
    cids = _category_ids(dataset, category_ids)
    results = []
    for image_id, det in zip(coco_image_ids(dataset), preds, strict=True):
        xywh = np.concatenate([det.xyxy[:, :2], det.xyxy[:, 2:] - det.xyxy[:, :2]], axis=1).astype(np.float64)
        for i in range(len(det)):
            c = int(det.class_id[i])
            entry = {"image_id": image_id, "category_id": cids[c], "category_name": dataset.class_names[c],
                     "bbox": [round(float(v), 3) for v in xywh[i]], "score": round(float(det.score[i]), 6)}  # fmt: skip
            top, attrs = _box_fields(det, i, set())
            entry.update(top)
            if attrs:
                entry["attributes"] = attrs
            results.append(entry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results), encoding="utf-8")
    return path

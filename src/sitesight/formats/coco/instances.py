"""COCO instances JSON (ground truth): `load_coco` / `read_coco` and `write_coco`; the layout rules are
in `sitesight.formats.coco`."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.coco.fields import (
    ANNOTATION_KEYS,
    CVAT_KEYS,
    DROPPED_KEYS,
    box_fields,
    category_ids_for,
    check_writable,
    coco_image_ids,
    list_field,
    load_json_doc,
    num,
    xywh_box,
)
from sitesight.formats.cvat_shapes import rotated_box_extent
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.limits import MAX_CELL_CHARS, image_side, show
from sitesight.limits import number as limits_number

__all__ = ["load_coco", "read_coco", "write_coco"]

logger = logging.getLogger(__name__)

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
    doc = load_json_doc(path)
    if not isinstance(doc, dict):
        raise InputError(f"expected a JSON object with images/annotations/categories, got {type(doc).__name__}", path)
    issues: list[Issue] = []
    categories: dict[int, str] = {}
    for i, cat in enumerate(list_field(doc, "categories", path)):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise InputError("expected an object with 'id' and 'name'", path, where)
        if not isinstance(cat["name"], (str, int)) or len(str(cat["name"])) > MAX_CELL_CHARS:
            raise InputError(f"expected a category name, got {show(cat['name'])}", path, where + ".name")
        categories[int(num(cat["id"], path, where + ".id", integer=True))] = str(cat["name"])
    category_ids = sorted(categories)
    declared = _read_schema(doc.get("attribute_schema"), path)
    root = Path(image_root) if image_root is not None else _image_root(doc, path)
    images: dict[int, ImageRows] = {}
    for i, img in enumerate(list_field(doc, "images", path)):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise InputError("expected an object", path, where)
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise InputError(f"missing key {key!r}", path, where)
        image_id = int(num(img["id"], path, where + ".id", integer=True))
        wh = (image_side(img["width"], path, where + ".width", allow_zero=True),
              image_side(img["height"], path, where + ".height", allow_zero=True))  # fmt: skip
        name = img["file_name"]
        if not isinstance(name, str) or not name or "\x00" in name or len(name) > 4096:
            raise InputError(f"expected a file name, got {show(name)}", path, where + ".file_name")
        if image_root is None and not os.path.exists(root / name) and os.path.exists(root / "images" / name):
            name = f"images/{name}"
        images[image_id] = ImageRows(path=name, image_wh=wh, image_id=image_id)
    names = {cid: categories[cid] for cid in category_ids}
    value_sets: dict[str, dict[str, None]] = {}
    labels_of: dict[str, dict[str, None]] = {}
    bool_keys: set[str] = set()
    number_keys: set[str] = set()
    for i, ann in enumerate(list_field(doc, "annotations", path, required=False)):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise InputError("expected an object", path, where)
        for key in ("image_id", "category_id", "bbox"):
            if key not in ann:
                raise InputError(f"missing key {key!r}", path, where)
        image_id = int(num(ann["image_id"], path, where + ".image_id", integer=True))
        if image_id not in images:
            raise InputError(f"image_id {image_id} is not in 'images'", path, where + ".image_id")
        cid = int(num(ann["category_id"], path, where + ".category_id", integer=True))
        if cid not in names:
            names[cid] = str(cid)
            issues.append(Issue("error", "unknown_label", f"category_id {cid} is not in 'categories'", str(path), where))
        attrs: dict[str, object] = {"iscrowd": int(num(ann.get("iscrowd", 0), path, where + ".iscrowd"))}
        attrs["coco_area"] = limits_number(ann["area"], path, where + ".area", lo=-1e14, hi=1e14) if ann.get("area") is not None else math.nan
        extra = ann.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        box = xywh_box(ann["bbox"], path, where + ".bbox")
        label = names[cid]
        for key, value in ann.items():  # FiftyOne's layout: label fields at the top level
            if key in ANNOTATION_KEYS or value is None or isinstance(value, (list, dict)):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in declared:
                number_keys.add(key)
                attrs[key] = limits_number(value, path, f"{where}.{key}", lo=-3.4e38, hi=3.4e38)
            elif key not in extra:
                extra = {**extra, key: value}
        for key, value in extra.items():
            if key == "rotation":
                box = rotated_box_extent(*box, num(value, path, where + ".attributes.rotation"))
                continue
            if key in DROPPED_KEYS:
                continue
            if key in CVAT_KEYS and not isinstance(value, str):
                attrs[CVAT_KEYS[key]] = value
                continue
            if isinstance(value, bool):
                bool_keys.add(key)
                value = "true" if value else "false"
            text = str(value)
            value_sets.setdefault(key, {})[text] = None
            labels_of.setdefault(key, {})[label] = None
            attrs[key] = text
        images[image_id].add(box, label, attrs)
    schema = {
        key: AttributeSpec(name=key, values=tuple(values), input_type="checkbox" if key in bool_keys else "select",
                           labels=tuple(labels_of[key]))  # fmt: skip
        for key, values in value_sets.items() if key not in declared
    }
    schema = {**declared, **schema}
    if number_keys:  # absent on some boxes: NaN, so the column is float everywhere
        for rows in images.values():
            for a in rows.attrs:
                for key in number_keys:
                    a.setdefault(key, math.nan)
    class_names = [names[c] for c in sorted(names)]
    dataset = build_dataset(list(images.values()), class_names, schema, root)
    if number_keys:
        dataset = dataset.with_samples([s.replace(gt=s.gt.replace(attributes={
            **s.gt.attributes, **{k: np.asarray(s.gt.attributes[k], np.float32) for k in number_keys}}))
            for s in dataset.samples])  # fmt: skip
    return Loaded(dataset, issues, meta={"category_ids": tuple(sorted(names))})


def _read_schema(value: Any, path: Path) -> dict[str, AttributeSpec]:
    """The ``attribute_schema`` list `write_coco` stores (absent in other tools' files: empty)."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InputError(f"expected 'attribute_schema' to be a list, got {type(value).__name__}", path, "attribute_schema")
    out = {}
    for i, item in enumerate(value):
        spec = _read_spec(item, path, f"attribute_schema[{i}]")
        out[spec.name] = spec
    return out


def _read_spec(item: Any, path: Path, where: str) -> AttributeSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InputError("expected an object with a 'name'", path, where)
    variants = item.get("variants") or []
    if not isinstance(variants, list):
        raise InputError("expected 'variants' to be a list", path, where)
    try:
        return AttributeSpec(name=item["name"], values=tuple(str(v) for v in item.get("values") or ()),
                             input_type=str(item.get("input_type", "select")),
                             default=None if item.get("default") is None else str(item["default"]),
                             labels=tuple(str(v) for v in item.get("labels") or ()),
                             variants=tuple(_read_spec(v, path, f"{where}.variants[{j}]") for j, v in enumerate(variants)))
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc), path, where) from None


def _image_root(doc: dict, path: Path) -> Path:
    """The JSON's folder, or ``info.image_root`` (relative to it) when the file names resolve only there."""
    info = doc.get("info")
    hint = info.get("image_root") if isinstance(info, dict) else None
    images = doc.get("images")
    first = images[0].get("file_name") if isinstance(images, list) and images and isinstance(images[0], dict) else None
    if isinstance(hint, str) and isinstance(first, str) and not os.path.exists(path.parent / first):
        candidate = Path(os.path.normpath(path.parent.absolute() / hint))
        if os.path.exists(candidate / first):  # (False, not an error, for a name too long)
            return candidate
    return path.parent


def read_coco(path: Path | str, *, image_root: Path | str | None = None) -> Dataset:
    """`load_coco` without the issues (they are logged as warnings)."""
    loaded = load_coco(path, image_root=image_root)
    log_issues(loaded.issues, logger)
    return loaded.dataset


def _file_names(dataset: Dataset, out_dir: Path) -> tuple[list[str], str | None]:
    """(``file_name`` per sample, ``info.image_root`` or None): paths relative to the JSON's folder
    when every image lies under it (no symlink is resolved), else the sample paths as they are,
    relative to the dataset root, which ``info.image_root`` then locates relative to the JSON."""
    out_abs = Path(os.path.normpath(out_dir.absolute()))
    names = [Path(s.path).as_posix() for s in dataset.samples]
    if dataset.root is None:
        return names, None
    root = Path(os.path.normpath(Path(dataset.root).absolute()))
    if root == out_abs:
        return names, None
    if root.is_relative_to(out_abs):
        prefix = root.relative_to(out_abs).as_posix()
        return [n if Path(n).is_absolute() else f"{prefix}/{n}" for n in names], None
    return names, Path(os.path.relpath(root, out_abs)).as_posix()


def _spec_doc(s: AttributeSpec) -> dict[str, Any]:
    doc = {"name": s.name, "input_type": s.input_type, "values": list(s.values), "default": s.default, "labels": list(s.labels)}
    if s.variants:
        doc["variants"] = [_spec_doc(v) for v in s.variants]
    return doc


def _schema_doc(dataset: Dataset) -> list[dict[str, Any]]:
    return [_spec_doc(s) for s in dataset.attribute_schema.values()]


def write_coco(dataset: Dataset, path: Path | str, *, category_ids: Sequence[int] | None = None) -> Path:
    """Write COCO instances JSON (``iscrowd``, ``area`` and string attributes kept).

    Args:
        dataset: the dataset; sample paths are written as ``file_name``.
        path: the JSON file.
        category_ids: id per class (from ``load_coco(...).meta["category_ids"]``); default ``1..K``.
    """
    path = Path(path)
    cids = category_ids_for(dataset, category_ids)
    image_ids = coco_image_ids(dataset)
    schema_keys = set(dataset.attribute_schema)
    annotations = []
    for sample, image_id in zip(dataset.samples, image_ids, strict=True):
        gt = sample.gt
        xywh = np.concatenate([gt.xyxy[:, :2], gt.xyxy[:, 2:] - gt.xyxy[:, :2]], axis=1).astype(np.float64)
        check_writable(xywh, sample.path, gt.score)
        crowd = gt.attributes.get("iscrowd")
        area = gt.attributes.get("coco_area")
        for i in range(len(gt)):
            box = [round(float(v), 3) for v in xywh[i]]
            a = float(area[i]) if area is not None and area.dtype.kind == "f" and np.isfinite(area[i]) else box[2] * box[3]
            top, attrs = box_fields(gt, i, schema_keys)
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": cids[int(gt.class_id[i])],
                   "bbox": box, "area": a, "iscrowd": int(crowd[i]) if crowd is not None else 0, "segmentation": []}  # fmt: skip
            ann.update(top)
            if attrs:
                ann["attributes"] = attrs
            annotations.append(ann)
    file_names, image_root = _file_names(dataset, path.parent)
    info: dict[str, Any] = {"description": "written by sitesight"}
    if image_root is not None:
        info["image_root"] = image_root
    doc = {
        "info": info,
        "categories": [{"id": c, "name": n, "supercategory": ""} for c, n in zip(cids, dataset.class_names, strict=True)],
        "images": [
            {"id": image_id, "file_name": name, "width": s.image_wh[0], "height": s.image_wh[1]}
            for s, image_id, name in zip(dataset.samples, image_ids, file_names, strict=True)
        ],
        "annotations": annotations,
    }
    if dataset.attribute_schema:
        doc["attribute_schema"] = _schema_doc(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(doc), encoding="utf-8")
    return path

"""COCO instances JSON (ground truth) and COCO results JSON (predictions).

Boxes are COCO ``[x, y, w, h]`` in the file and ``xyxy`` inside. ``segmentation`` is ignored for
boxes. Per box, ``iscrowd`` becomes ``attributes["iscrowd"]`` (int64), ``area`` is kept as
``attributes["coco_area"]`` (float32, NaN when absent; pycocotools' area ranges use it) and the
``attributes`` dict that CVAT's COCO export writes becomes per-box attributes: ``occluded`` →
``cvat_occluded`` (bool), ``track_id`` → ``cvat_track_id``, ``keyframe`` dropped, ``rotation``
(CVAT writes the unrotated box plus its rotation in degrees) applied so the box is the rotated
box's axis-aligned extent, exactly as `sitesight.formats.cvat` reads the same shape from XML,
every other value an object array of ``str``. Other tools' layouts read the same way: FiftyOne's
extra fields at the top level of an annotation (strings → attributes, numbers → float extras, NaN
where absent), Roboflow's files with no attributes at all.

Attribute schema: `write_coco` stores the dataset's schema (per attribute: input type, values,
default, the labels that carry it) in a top-level ``attribute_schema`` list that `load_coco` reads
back, so CVAT → COCO → CVAT keeps it. Without it the schema is inferred: the labels whose boxes
carry the key, the values seen in order, ``checkbox`` for JSON booleans, else ``select``. A box
keeps only the attributes its annotation had (``None`` elsewhere); no default is filled in.

``file_name`` is the sample path relative to the dataset's image root (relative to the JSON's
folder when the image lies under it), never an absolute or symlink-resolved path; ``info.image_root``
records where that root lies relative to the JSON, and `load_coco` uses it when the names do not
resolve from the JSON's folder.

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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.cvat_shapes import rotated_box_extent
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.limits import MAX_CELL_CHARS, image_side, load_json, show
from sitesight.limits import integer as limits_integer
from sitesight.limits import number as limits_number

__all__ = ["read_coco", "load_coco", "write_coco", "read_coco_results", "load_coco_results", "write_coco_results",
           "coco_image_ids"]

logger = logging.getLogger(__name__)

_CVAT_KEYS = {"occluded": "cvat_occluded", "track_id": "cvat_track_id"}
_DROPPED_KEYS = {"keyframe"}
# Annotation keys of the COCO format itself (and of its keypoint/panoptic cousins): never attributes.
_ANNOTATION_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes",
                    "keypoints", "num_keypoints", "category_name", "ignore"}  # fmt: skip
_RESULT_KEYS = {"image_id", "category_id", "bbox", "score", "segmentation", "iscrowd", "area", "id", "category_name", "attributes",
                "file_name"}


def _load_json(path: Path) -> Any:
    return load_json(path, what="COCO JSON")


def _num(value: Any, path: Path, where: str, *, integer: bool = False) -> float:
    """A finite JSON number in range (numeric strings tolerated, as some exporters write them)."""
    return float(limits_integer(value, path, where)) if integer else limits_number(value, path, where)


def _list(doc: dict, key: str, path: Path, required: bool = True) -> list:
    value = doc.get(key, None if required else [])
    if not isinstance(value, list):
        raise InputError(f"expected key {key!r} with a list, got {type(value).__name__}", path, key)
    return value


def _xywh(value: Any, path: Path, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise InputError(f"expected bbox [x, y, w, h], got {show(value, 80)}", path, where)
    x, y, w, h = (_num(v, path, where) for v in value)
    if w < 0 or h < 0:
        raise InputError(f"negative bbox width/height {show(value, 80)}", path, where)
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
        if not isinstance(cat["name"], (str, int)) or len(str(cat["name"])) > MAX_CELL_CHARS:
            raise InputError(f"expected a category name, got {show(cat['name'])}", path, where + ".name")
        categories[int(_num(cat["id"], path, where + ".id", integer=True))] = str(cat["name"])
    category_ids = sorted(categories)
    declared = _read_schema(doc.get("attribute_schema"), path)
    root = Path(image_root) if image_root is not None else _image_root(doc, path)
    images: dict[int, ImageRows] = {}
    for i, img in enumerate(_list(doc, "images", path)):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise InputError("expected an object", path, where)
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise InputError(f"missing key {key!r}", path, where)
        image_id = int(_num(img["id"], path, where + ".id", integer=True))
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
        attrs["coco_area"] = limits_number(ann["area"], path, where + ".area", lo=-1e14, hi=1e14) if ann.get("area") is not None else math.nan
        extra = ann.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        box = _xywh(ann["bbox"], path, where + ".bbox")
        label = names[cid]
        for key, value in ann.items():  # FiftyOne's layout: label fields at the top level
            if key in _ANNOTATION_KEYS or value is None or isinstance(value, (list, dict)):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in declared:
                number_keys.add(key)
                attrs[key] = limits_number(value, path, f"{where}.{key}", lo=-3.4e38, hi=3.4e38)
            elif key not in extra:
                extra = {**extra, key: value}
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
        if key in ("iscrowd", "coco_area", "cvat_z_order", "cvat_shape", "cvat_source"):
            continue
        if key == "cvat_occluded":
            if "occluded" not in schema_keys:  # a labelled 'occluded' attribute wins over CVAT's shape flag
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


def _check_writable(xywh: np.ndarray, image: object, score: np.ndarray | None) -> None:
    """Nothing non-finite and no negative width reaches a COCO file (sitesight itself would refuse it)."""
    bad = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
    if score is not None and len(score) == len(bad):
        bad |= ~np.isfinite(score)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"box #{k} of {str(image)[:120]} is not writable as COCO (x, y, w, h) {xywh[k].round(3).tolist()}: "
                         "NaN, infinite or negative size; `sitesight data validate` lists such boxes")


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
        _check_writable(xywh, sample.path, gt.score)
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
    doc = _load_json(path)
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
        rows_of = [row_of.get(int(_num(r["image_id"], path, f"[{i}].image_id", integer=True)), -1) for i, r in enumerate(doc)]
    # Classes: the ground truth's category ids when known; else names when every result has one;
    # else the ids sitesight writes (1..K). Nothing is guessed from the ids present.
    mapping = dict(class_map)
    by_name = (category_ids is None or bool(class_map)) and bool(doc) and all("category_name" in r for r in doc)
    if class_map and not by_name:
        raise InputError("a class map applies to category names, and these results are matched by category id", path)
    cids = _category_ids(dataset, category_ids)
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
            cid = int(_num(r["category_id"], path, f"[{i}].category_id", integer=True))
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
                                    for k, v in r.items() if k not in _RESULT_KEYS and isinstance(v, (int, float))}  # fmt: skip
        for k, v in attrs.items():
            if isinstance(v, int) and not -(2**63) <= v < 2**63:
                raise InputError(f"integer {show(v)} out of range", path, f"{where}.{k}")
        extra = r.get("attributes") or {}
        if not isinstance(extra, dict):
            raise InputError("expected 'attributes' to be an object", path, where + ".attributes")
        attrs.update({k: str(v) for k, v in extra.items()})
        rows = per_image[rows_of[i]]
        rows.add(_xywh(r["bbox"], path, where + ".bbox"), name, attrs)
        rows.scores.append(float(_num(r.get("score", 1.0), path, where + ".score")))
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
    cids = _category_ids(dataset, category_ids)
    names = list(file_names) if file_names is not None else [None] * len(preds)
    results = []
    for image_id, det, name in zip(coco_image_ids(dataset), preds, names, strict=True):
        xywh = np.concatenate([det.xyxy[:, :2], det.xyxy[:, 2:] - det.xyxy[:, :2]], axis=1).astype(np.float64)
        _check_writable(xywh, f"image_id {image_id}", det.score)
        for i in range(len(det)):
            c = int(det.class_id[i])
            box = [float(v) for v in xywh[i]] if decimals is None else [round(float(v), decimals) for v in xywh[i]]
            score = float(det.score[i]) if decimals is None else round(float(det.score[i]), decimals + 3)
            entry = {"image_id": image_id, "category_id": cids[c], "category_name": dataset.class_names[c],
                     "bbox": box, "score": score}  # fmt: skip
            if name is not None:
                entry["file_name"] = name
            top, attrs = _box_fields(det, i, set())
            entry.update(top)
            if attrs:
                entry["attributes"] = attrs
            results.append(entry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(results), encoding="utf-8")
    return path

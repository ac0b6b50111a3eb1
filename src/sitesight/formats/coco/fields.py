"""The fields of COCO JSON both ways: checked numbers and boxes, image and category ids, per-box
extras, and the writability check (nothing non-finite reaches a file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.limits import integer as limits_integer
from sitesight.limits import load_json, show
from sitesight.limits import number as limits_number

__all__ = ["ANNOTATION_KEYS", "CVAT_KEYS", "DROPPED_KEYS", "RESULT_KEYS", "box_fields", "category_ids_for", "check_writable",
           "coco_image_ids", "list_field", "load_json_doc", "num", "xywh_box"]

CVAT_KEYS = {"occluded": "cvat_occluded", "track_id": "cvat_track_id"}
DROPPED_KEYS = {"keyframe"}
# Annotation keys of the COCO format itself (and of its keypoint/panoptic cousins): never attributes.
ANNOTATION_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes",
                    "keypoints", "num_keypoints", "category_name", "ignore"}  # fmt: skip
RESULT_KEYS = {"image_id", "category_id", "bbox", "score", "segmentation", "iscrowd", "area", "id", "category_name", "attributes",
                "file_name"}


def load_json_doc(path: Path) -> Any:
    return load_json(path, what="COCO JSON")


def num(value: Any, path: Path, where: str, *, integer: bool = False) -> float:
    """A finite JSON number in range (numeric strings tolerated, as some exporters write them)."""
    return float(limits_integer(value, path, where)) if integer else limits_number(value, path, where)


def list_field(doc: dict, key: str, path: Path, required: bool = True) -> list:
    value = doc.get(key, None if required else [])
    if not isinstance(value, list):
        raise InputError(f"expected key {key!r} with a list, got {type(value).__name__}", path, key)
    return value


def xywh_box(value: Any, path: Path, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise InputError(f"expected bbox [x, y, w, h], got {show(value, 80)}", path, where)
    x, y, w, h = (num(v, path, where) for v in value)
    if w < 0 or h < 0:
        raise InputError(f"negative bbox width/height {show(value, 80)}", path, where)
    return x, y, x + w, y + h


def coco_image_ids(dataset: Dataset) -> list[int]:
    """The COCO image id of each sample: their ``image_id`` when all set and unique, else ``1..N``."""
    ids = [s.image_id for s in dataset.samples]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return [int(i) for i in ids]  # type: ignore[arg-type]
    return list(range(1, len(ids) + 1))


def category_ids_for(dataset: Dataset, category_ids: Sequence[int] | None) -> list[int]:
    if category_ids is None:
        return list(range(1, len(dataset.class_names) + 1))
    if len(category_ids) != len(dataset.class_names):
        raise ValueError(f"category_ids: expected {len(dataset.class_names)} ids, got {len(category_ids)}")
    return [int(c) for c in category_ids]


def box_fields(det: Detections, i: int, schema_keys: set[str]) -> tuple[dict, dict]:
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


def check_writable(xywh: np.ndarray, image: object, score: np.ndarray | None) -> None:
    """Nothing non-finite and no negative width reaches a COCO file (sitesight itself would refuse it)."""
    bad = ~np.isfinite(xywh).all(axis=1) | (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
    if score is not None and len(score) == len(bad):
        bad |= ~np.isfinite(score)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(f"box #{k} of {str(image)[:120]} is not writable as COCO (x, y, w, h) {xywh[k].round(3).tolist()}: "
                         "NaN, infinite or negative size; `sitesight data validate` lists such boxes")

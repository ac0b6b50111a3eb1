"""Build a `Dataset` from what a parser collected per image (labels as names, boxes as tuples).

Every reader collects plain Python rows per image and hands them here, so that all formats agree
on the attribute layout: every sample carries the same attribute keys; schema attributes are object
arrays of ``str`` (``None`` where the box's label lacks the attribute); the typed per-box extras in
`TYPED_EXTRAS` get their dtype and a fill value; any other key is an object array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.detections import Detections

__all__ = ["ImageRows", "TYPED_EXTRAS", "build_dataset", "merge_specs"]

# Per-box extras kept from the source format, with their dtype and the value used where absent.
TYPED_EXTRAS: dict[str, tuple[type, object]] = {
    "cvat_occluded": (bool, False),
    "cvat_z_order": (np.int64, 0),
    "cvat_track_id": (np.int64, -1),
    "iscrowd": (np.int64, 0),
    "coco_area": (np.float32, float("nan")),
}


@dataclass
class ImageRows:
    """Mutable collector for one image while parsing (internal to the format modules).

    ``xyxy`` holds ``(x1, y1, x2, y2)`` absolute pixels; ``labels`` class names; ``attrs`` one dict
    per box (attribute name → value); ``scores`` per box or empty for ground truth.
    """

    path: str
    image_wh: tuple[int, int]
    image_id: int | None = None
    subset: str | None = None
    tags: list[str] = field(default_factory=list)
    xyxy: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    attrs: list[dict[str, object]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    columns: dict[str, list] = field(default_factory=dict)  # per-box extras kept as columns (faster)

    def add(self, box: tuple[float, float, float, float], label: str, attrs: dict[str, object]) -> None:
        self.xyxy.append(box)
        self.labels.append(label)
        self.attrs.append(attrs)


def merge_specs(schema: dict[str, AttributeSpec], spec: AttributeSpec) -> None:
    """Fold ``spec`` into ``schema`` (same name on several labels: values and labels united)."""
    old = schema.get(spec.name)
    if old is None:
        schema[spec.name] = spec
        return
    values = tuple(dict.fromkeys((*old.values, *spec.values)))
    labels = tuple(dict.fromkeys((*old.labels, *spec.labels)))
    schema[spec.name] = AttributeSpec(
        name=old.name, values=values, input_type=old.input_type, default=old.default, labels=labels
    )


def _column(key: str, attrs: Sequence[Mapping[str, object]], schema_keys: set[str]) -> np.ndarray:
    raw = [a.get(key) for a in attrs]
    if key in TYPED_EXTRAS and key not in schema_keys:
        dtype, fill = TYPED_EXTRAS[key]
        return np.array([fill if v is None else v for v in raw], dtype=dtype)
    out = np.empty(len(raw), dtype=object)
    out[:] = [None if v is None else (v if key not in schema_keys else str(v)) for v in raw]
    return out


def _from_columns(key: str, image: ImageRows, schema_keys: set[str]) -> np.ndarray:
    values = image.columns.get(key)
    if values is None or len(values) != len(image.xyxy):
        return _column(key, image.attrs, schema_keys)
    if key in TYPED_EXTRAS and key not in schema_keys:
        return np.array(values, dtype=TYPED_EXTRAS[key][0])
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def build_dataset(
    images: Sequence[ImageRows],
    class_names: Sequence[str],
    schema: Mapping[str, AttributeSpec],
    root: Path | None,
) -> Dataset:
    """Assemble the dataset; every label used must be in ``class_names`` (readers add unknown ones)."""
    index = {name: i for i, name in enumerate(class_names)}
    schema_keys = set(schema)
    keys: dict[str, None] = dict.fromkeys(schema)
    for image in images:
        for a in image.attrs:
            for k in a:
                if k not in keys:
                    keys[k] = None
        for k in image.columns:
            keys.setdefault(k, None)
    samples = []
    for image in images:
        n = len(image.xyxy)
        gt = Detections(
            xyxy=np.array(image.xyxy, dtype=np.float32).reshape(n, 4),
            score=np.array(image.scores, np.float32) if image.scores else None,
            class_id=np.array([index[label] for label in image.labels], dtype=np.int64),
            attributes={k: _from_columns(k, image, schema_keys) for k in keys},
        )
        samples.append(
            Sample(
                path=image.path,
                image_wh=image.image_wh,
                gt=gt,
                image_id=image.image_id,
                tags=tuple(image.tags),
                subset=image.subset,
            )
        )
    return Dataset(class_names=tuple(class_names), samples=tuple(samples), attribute_schema=dict(schema), root=root)

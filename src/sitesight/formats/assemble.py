"""Build a `Dataset` from what a parser collected.

Two collectors: `ImageRows` keeps one image's boxes as Python rows (labels as names, boxes as
tuples, a dict of attributes per box) for `build_dataset`; `BoxColumns` keeps every box of a file
as flat, aligned lists (a box costs a few list appends and no per-box objects), `finish_boxes`
turns it into one numpy array per column once per file (label defaults filled in bulk), and
`build_from_boxes` splits those arrays per image (views). Both agree on the attribute layout:
every sample carries the same attribute keys; schema attributes are object arrays of ``str``
(``None`` where the box's label lacks the attribute); the typed per-box extras in `TYPED_EXTRAS`
get their dtype and a fill value; any other key is an object array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.limits import MAX_COORD, show

__all__ = ["ImageRows", "BoxColumns", "BoxArrays", "TYPED_EXTRAS", "build_dataset", "build_from_boxes",
           "finish_boxes", "concat_boxes", "merge_specs", "with_variants", "check_boxes"]  # fmt: skip

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


def with_variants(spec: AttributeSpec, declared: Sequence[AttributeSpec]) -> AttributeSpec:
    """``spec`` (the merged schema entry) plus, as `AttributeSpec.variants`, the per-label
    declarations in ``declared`` whose input type, values or default differ from it."""
    variants: dict[tuple, AttributeSpec] = {}
    for d in declared:
        key = (d.input_type, d.values, d.default)
        if d.name != spec.name or key == (spec.input_type, spec.values, spec.default):
            continue
        old = variants.get(key)
        variants[key] = d if old is None else AttributeSpec(d.name, d.values, d.input_type, d.default,
                                                            tuple(dict.fromkeys((*old.labels, *d.labels))))  # fmt: skip
    return AttributeSpec(spec.name, spec.values, spec.input_type, spec.default, spec.labels, tuple(variants.values()))


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


def check_boxes(xyxy: np.ndarray, source: Path | str | None, image_of: Sequence[str] | None = None,
                score: np.ndarray | None = None) -> None:
    """Refuse non-finite or absurd (beyond ``±MAX_COORD`` px) box coordinates and non-finite scores.

    Args:
        xyxy: ``(N, 4)`` boxes as read.
        source: the file they came from (named in the error).
        image_of: ``N`` image names, one per box, for the error's place.
        score: ``(N,)`` scores, when the file has them.

    Raises:
        InputError: naming the file, the image and the box.
    """
    bad = ~(np.isfinite(xyxy) & (np.abs(xyxy) <= MAX_COORD)).all(axis=1)
    what = "coordinates"
    if score is not None and score.size == bad.size:
        bad_score = ~np.isfinite(score)
        if bad_score.any() and not bad.any():
            bad, what = bad_score, "score"
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        where = f"image {show(image_of[k], 80)}, box #{k}" if image_of is not None else f"box #{k}"
        values = [float(v) for v in (xyxy[k] if what == "coordinates" else score[k : k + 1])]  # type: ignore[index]
        raise InputError(f"non-finite or out-of-range box {what} {values}", source, where)


def build_dataset(
    images: Sequence[ImageRows],
    class_names: Sequence[str],
    schema: Mapping[str, AttributeSpec],
    root: Path | None,
    *,
    source: Path | str | None = None,
) -> Dataset:
    """Assemble the dataset; every label used must be in ``class_names`` (readers add unknown ones).

    Non-finite or absurd boxes and scores are refused (`check_boxes`), naming ``source``.
    """
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
        xyxy = np.array(image.xyxy, dtype=np.float64).reshape(n, 4)
        scores = np.array(image.scores, np.float64) if image.scores else None
        check_boxes(xyxy, source, [image.path] * n, scores)
        gt = Detections(
            xyxy=xyxy.astype(np.float32),
            score=scores.astype(np.float32) if scores is not None else None,
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


@dataclass
class BoxColumns:
    """Every box of one file as flat, aligned Python lists (internal to the format modules).

    Box ``k`` lies on image ``image[k]`` (an index into the parser's image list), spans
    ``xyxy[4k:4k+4]`` (``x1, y1, x2, y2`` absolute pixels) and has class name ``label[k]``.
    ``extras`` holds dense per-box columns (one value per box, e.g. ``cvat_z_order``);
    ``explicit`` holds attribute values as given in the file, sparse: name → (box indices, values).
    """

    image: list[int] = field(default_factory=list)
    xyxy: list[float] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    extras: dict[str, list] = field(default_factory=dict)
    explicit: dict[str, tuple[list[int], list[object]]] = field(default_factory=dict)


@dataclass(frozen=True)
class BoxArrays:
    """`BoxColumns` as arrays: ``image (N,) int64``, ``xyxy (N, 4) float32``, ``label`` N names,
    ``columns`` name → ``(N,)`` array (typed extras with their dtype, attributes object arrays)."""

    image: np.ndarray
    xyxy: np.ndarray
    label: list[str]
    columns: dict[str, np.ndarray]


def _objects(values: Sequence[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _typed(key: str, values: Sequence[object]) -> np.ndarray:
    if key in TYPED_EXTRAS:
        dtype, _ = TYPED_EXTRAS[key]
        return np.array(values, dtype=dtype).reshape(len(values))
    return _objects(values)


def finish_boxes(
    boxes: BoxColumns, defaults: Mapping[str, Mapping[str, object]], image_order: np.ndarray | None = None
) -> BoxArrays:
    """Arrays of one file's boxes; an attribute a box omits gets its label's default.

    Args:
        boxes: the file's collected boxes.
        defaults: label → attribute name → default value (``None`` when declared without one); an
            attribute not listed for a box's label is ``None`` for that box.
        image_order: ``(M,)`` new image index of each old one, when the parser reordered its images.
    """
    n = len(boxes.label)
    names = list(dict.fromkeys(boxes.label))
    label_index = {name: i for i, name in enumerate(names)}
    label_id = np.array([label_index[name] for name in boxes.label], dtype=np.int64)
    image = np.array(boxes.image, dtype=np.int64)
    if image_order is not None:
        image = image_order[image]
    columns = {key: _typed(key, values) for key, values in boxes.extras.items()} if n else {}  # (no boxes, no keys)
    keys = dict.fromkeys(k for label in names for k in defaults.get(label, {}))
    keys.update(dict.fromkeys(boxes.explicit))
    for key in keys:
        table = _objects([defaults.get(label, {}).get(key) for label in names])
        column = table[label_id] if n else np.empty(0, dtype=object)
        index, values = boxes.explicit.get(key, ((), ()))
        where = np.array(index, dtype=np.intp)
        if not np.any(where[1:] <= where[:-1]):  # box indices arrive in order: equal ones are repeats
            column[where] = _objects(values)
        else:  # the same attribute twice on one box: the last one wins
            for i, value in zip(index, values, strict=True):
                column[i] = value
        columns[key] = column
    xyxy = np.array(boxes.xyxy, dtype=np.float32).reshape(n, 4)
    return BoxArrays(image=image, xyxy=xyxy, label=list(boxes.label), columns=columns)


def concat_boxes(parts: Sequence[BoxArrays], image_offsets: Sequence[int]) -> BoxArrays:
    """Boxes of several files as one; file ``i``'s image indices are shifted by ``image_offsets[i]``.

    A column missing from a file is filled with its `TYPED_EXTRAS` fill value, or ``None``.
    """
    if len(parts) == 1 and image_offsets[0] == 0:
        return parts[0]
    keys = dict.fromkeys(k for p in parts for k in p.columns)
    columns = {}
    for key in keys:
        pieces = []
        for p in parts:
            if key in p.columns:
                pieces.append(p.columns[key])
            elif key in TYPED_EXTRAS:
                dtype, fill = TYPED_EXTRAS[key]
                pieces.append(np.full(len(p.label), fill, dtype=dtype))
            else:
                pieces.append(np.full(len(p.label), None, dtype=object))
        columns[key] = np.concatenate(pieces)
    return BoxArrays(
        image=np.concatenate([p.image + off for p, off in zip(parts, image_offsets, strict=True)]),
        xyxy=np.concatenate([p.xyxy for p in parts]).reshape(-1, 4),
        label=[name for p in parts for name in p.label],
        columns=columns,
    )


def build_from_boxes(
    images: Sequence[ImageRows],
    boxes: BoxArrays,
    class_names: Sequence[str],
    schema: Mapping[str, AttributeSpec],
    root: Path | None,
    *,
    source: Path | str | None = None,
) -> Dataset:
    """Assemble the dataset; every label used must be in ``class_names`` (readers add unknown ones).

    Each sample's arrays are views into the dataset-wide arrays (one slice per image). Non-finite
    or absurd boxes are refused (`check_boxes`), naming ``source``.
    """
    if boxes.xyxy.size and not np.isfinite(boxes.xyxy).all() or np.abs(boxes.xyxy).max(initial=0) > MAX_COORD:
        check_boxes(boxes.xyxy, source, [images[int(i)].path for i in boxes.image])
    index = {name: i for i, name in enumerate(class_names)}
    class_id = np.array([index[label] for label in boxes.label], dtype=np.int64)
    keys = list(dict.fromkeys([*schema, *boxes.columns]))
    n = len(class_id)
    columns = {k: boxes.columns.get(k, np.full(n, None, dtype=object)) for k in keys}
    image, xyxy = boxes.image, boxes.xyxy
    if n > 1 and np.any(image[1:] < image[:-1]):  # track shapes land on earlier frames: sort stably
        order = np.argsort(image, kind="stable")
        image, xyxy, class_id = image[order], xyxy[order], class_id[order]
        columns = {k: v[order] for k, v in columns.items()}
    ends = np.cumsum(np.bincount(image, minlength=len(images))).tolist()
    score = np.ones(n, np.float32)
    samples = []
    start = 0
    for rows, end in zip(images, ends, strict=True):
        gt = Detections(
            xyxy=xyxy[start:end],
            score=score[start:end],
            class_id=class_id[start:end],
            attributes={k: v[start:end] for k, v in columns.items()},
        )
        samples.append(Sample(path=rows.path, image_wh=rows.image_wh, gt=gt, image_id=rows.image_id,
                              tags=tuple(rows.tags), subset=rows.subset))  # fmt: skip
        start = end
    return Dataset(class_names=tuple(class_names), samples=tuple(samples), attribute_schema=dict(schema), root=root)

"""`Sample` (one frame and its ground truth) and `Dataset` (class names, attribute schema, samples).

Every format reads into a `Dataset` and writes out of one. Ground-truth attribute values are kept
as they were labelled: an object array of ``str`` per attribute name (``None`` where the box's label
does not carry that attribute), with the allowed values in ``Dataset.attribute_schema``.

Example:
    >>> from sitesight import Dataset, Detections, Sample
    >>> s = Sample(path="f.jpg", image_wh=(1920, 1080), gt=Detections(xyxy=[[0, 0, 10, 20]]))
    >>> ds = Dataset(class_names=("person",), samples=(s,))
    >>> ds.box_count()
    1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from sitesight.detections import Detections

__all__ = ["AttributeSpec", "Sample", "Dataset"]

ATTRIBUTE_INPUT_TYPES = ("radio", "select", "checkbox", "text", "number")


@dataclass(frozen=True)
class AttributeSpec:
    """The schema of one per-box attribute.

    Args:
        name: attribute name, the key in ``Detections.attributes``.
        values: allowed values in order (empty for free text). For ``number`` CVAT stores
            ``min, max, step`` here as strings.
        input_type: one of ``radio``, ``select``, ``checkbox``, ``text``, ``number``.
        default: the value CVAT fills in when the labeller did not choose one.
        labels: class names whose boxes carry this attribute (empty = any class).
        variants: per-label declarations that differ from this one (CVAT lets two labels declare
            the same attribute name with another input type, value list or default); each has
            the ``labels`` it applies to. ``values`` above is the union over all of them.
    """

    name: str
    values: tuple[str, ...] = ()
    input_type: str = "select"
    default: str | None = None
    labels: tuple[str, ...] = ()
    variants: tuple[AttributeSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.input_type not in ATTRIBUTE_INPUT_TYPES:
            raise ValueError(f"AttributeSpec {self.name!r}: input_type must be one of {ATTRIBUTE_INPUT_TYPES}, got {self.input_type!r}")
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "variants", tuple(self.variants))

    def for_label(self, label: str) -> AttributeSpec:
        """The declaration that applies to boxes of ``label`` (a variant, or this spec)."""
        return next((v for v in self.variants if label in v.labels), self)

    @property
    def is_categorical(self) -> bool:
        """True when values form a closed set (radio, select, checkbox)."""
        return self.input_type in ("radio", "select", "checkbox")

    def allowed(self) -> tuple[str, ...]:
        """Values a box may hold: ``values`` plus both booleans for a checkbox."""
        if self.input_type == "checkbox":
            return tuple(dict.fromkeys((*self.values, "false", "true")))
        return self.values


@dataclass(frozen=True)
class Sample:
    """One frame.

    Args:
        path: image file (absolute, or relative to the dataset's root).
        image_wh: ``(width, height)`` in pixels.
        gt: ground-truth boxes in this frame's pixels.
        image_id: stable integer id (COCO image id, CVAT frame id); ``None`` when unknown.
        camera_id: the camera that took it, when known (splits and sampling group by it).
        timestamp: seconds since the epoch, when known.
        tags: image-level labels (CVAT ``<tag>``).
        subset: split name from the source (``train``, ``val``, CVAT subset), when known.
    """

    path: Path | str
    image_wh: tuple[int, int]
    gt: Detections = field(default_factory=Detections.empty)
    image_id: int | None = None
    camera_id: str | None = None
    timestamp: float | None = None
    tags: tuple[str, ...] = ()
    subset: str | None = None

    def __post_init__(self) -> None:
        w, h = (int(v) for v in self.image_wh)
        if w < 0 or h < 0:
            raise ValueError(f"Sample {self.path}: image_wh must be non-negative, got {self.image_wh}")
        object.__setattr__(self, "image_wh", (w, h))
        object.__setattr__(self, "tags", tuple(self.tags))

    def replace(self, **changes: object) -> Sample:
        """A copy with the given fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Dataset:
    """Class names, attribute schema and samples.

    Args:
        class_names: index ``i`` is the name of ``class_id == i``.
        samples: the frames, in order.
        attribute_schema: attribute name → `AttributeSpec`.
        root: folder that relative sample paths are resolved against.
    """

    class_names: tuple[str, ...]
    samples: tuple[Sample, ...] = ()
    attribute_schema: Mapping[str, AttributeSpec] = field(default_factory=dict)
    root: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "samples", tuple(self.samples))
        object.__setattr__(self, "attribute_schema", MappingProxyType(dict(self.attribute_schema)))
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"Dataset: class names must be unique, got {list(self.class_names)}")
        n = len(self.class_names)
        for s in self.samples:
            if len(s.gt) and (s.gt.class_id.min() < 0 or s.gt.class_id.max() >= n):
                raise ValueError(
                    f"Dataset: sample {s.path} has class_id outside 0..{n - 1}: {sorted(set(s.gt.class_id.tolist()))}"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def class_index(self, name: str) -> int:
        """Index of a class name; a clear error listing the names when it is unknown."""
        try:
            return self.class_names.index(name)
        except ValueError:
            raise KeyError(f"unknown class {name!r}; classes are {list(self.class_names)}") from None

    def image_path(self, sample: Sample) -> Path:
        """The sample's image path resolved against ``root``."""
        path = Path(sample.path)
        return path if path.is_absolute() or self.root is None else self.root / path

    def box_count(self) -> int:
        """Total ground-truth boxes."""
        return sum(len(s.gt) for s in self.samples)

    def to_pandas(self) -> Any:
        """One row per ground-truth box: ``frame`` (sample index), ``image`` (path), ``subset``,
        ``width``, ``height``, ``x1 y1 x2 y2``, ``class_id``, ``class_name``, one column per
        attribute. Samples without boxes have no row. Needs pandas."""
        from sitesight.interop import detections_frame

        frame = detections_frame([s.gt for s in self.samples], keys=[str(s.path) for s in self.samples],
                                 class_names=self.class_names, score=False)  # fmt: skip
        rows = frame["frame"].to_numpy()
        frame.insert(2, "subset", np.asarray([s.subset for s in self.samples], dtype=object)[rows] if len(rows) else [])
        wh = np.asarray([s.image_wh for s in self.samples], np.int64).reshape(-1, 2)
        frame.insert(3, "width", wh[rows, 0] if len(rows) else np.zeros(0, np.int64))
        frame.insert(4, "height", wh[rows, 1] if len(rows) else np.zeros(0, np.int64))
        return frame

    def class_counts(self) -> dict[str, int]:
        """Boxes per class name, every class listed (zero included)."""
        counts = np.zeros(len(self.class_names), np.int64)
        for s in self.samples:
            counts += np.bincount(s.gt.class_id, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def replace(self, **changes: object) -> Dataset:
        """A copy with the given fields changed."""
        return replace(self, **changes)

    def with_samples(self, samples: Sequence[Sample]) -> Dataset:
        """The same classes and schema over other samples."""
        return replace(self, samples=tuple(samples))

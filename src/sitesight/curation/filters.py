"""Label and prediction filters: tiny fixed-location false positives, class remapping, attribute → class.

The fixed-location filter comes from the field: a fixed CCTV camera sees the same bolt, sign or
reflection in every frame, and a detector (or a hurried labeller) marks it as a tiny object again
and again. A box is flagged when it is tiny (normalised width < ``max_w`` **and** height < ``max_h``)
and a tiny box of the same class (any class with ``class_agnostic``) overlaps it with IoU >=
``iou`` in at least ``min_frames`` distinct frames of the same camera, its own frame included.

Example:
    >>> rule = parse_attribute_rule("head:has_safety_helmet=no->person_without_helmet")
    >>> rule.new_class
    'person_without_helmet'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.boxes import pairwise_iou
from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError

__all__ = [
    "fixed_location_mask",
    "drop_fixed_location",
    "remap_classes",
    "AttributeRule",
    "parse_attribute_rule",
    "attributes_to_classes",
]

_CHUNK_CELLS = 1 << 22  # bound on the (rows x boxes) IoU block held in memory at once


def fixed_location_mask(
    detections: Sequence[Detections],
    camera_ids: Sequence[str | None],
    image_wh: Sequence[tuple[int, int]] | tuple[int, int],
    *,
    max_w: float = 0.03,
    max_h: float = 0.05,
    iou: float = 0.5,
    min_frames: int = 3,
    class_agnostic: bool = False,
) -> list[np.ndarray]:
    """Which boxes are tiny and recur at the same place across frames of one camera.

    Args:
        detections: one `Detections` per frame (ground truth or predictions), pixel xyxy.
        camera_ids: the camera of each frame (``None`` = a camera of its own).
        image_wh: ``(width, height)`` of every frame, or one pair for all.
        max_w: a box is tiny when ``w / width < max_w`` ...
        max_h: ... and ``h / height < max_h``.
        iou: two tiny boxes are "the same place" at IoU >= this.
        min_frames: flagged when the place holds a tiny box in at least this many distinct frames.
        class_agnostic: match boxes of any class, not only the same class.

    Returns:
        One ``(N_i,)`` bool mask per frame, True for boxes to drop.
    """
    n = len(detections)
    if len(camera_ids) != n:
        raise InputError(f"fixed-location filter: {n} frames but {len(camera_ids)} camera ids")
    sizes = [tuple(image_wh)] * n if _is_pair(image_wh) else list(image_wh)  # type: ignore[arg-type]
    if len(sizes) != n:
        raise InputError(f"fixed-location filter: {n} frames but {len(sizes)} image sizes")
    masks = [np.zeros(len(d), bool) for d in detections]
    by_camera: dict[str, list[int]] = {}
    for i, cam in enumerate(camera_ids):
        by_camera.setdefault(f"\0{i}" if cam is None else str(cam), []).append(i)
    for frames in by_camera.values():
        frame_of, box_of, boxes, classes = [], [], [], []
        for f in frames:
            d = detections[f]
            w, h = sizes[f]
            bw = (d.xyxy[:, 2] - d.xyxy[:, 0]) / max(w, 1)
            bh = (d.xyxy[:, 3] - d.xyxy[:, 1]) / max(h, 1)
            tiny = np.flatnonzero((bw < max_w) & (bh < max_h))
            frame_of.append(np.full(len(tiny), f))
            box_of.append(tiny)
            boxes.append(d.xyxy[tiny])
            classes.append(d.class_id[tiny])
        if not boxes or sum(len(b) for b in boxes) == 0:
            continue
        frame_arr, box_arr = np.concatenate(frame_of), np.concatenate(box_of)
        xyxy, cls = np.concatenate(boxes), np.concatenate(classes)
        counts = _distinct_frame_counts(xyxy, cls, frame_arr, iou, class_agnostic)
        for f, b in zip(frame_arr[counts >= min_frames], box_arr[counts >= min_frames], strict=True):
            masks[f][b] = True
    return masks


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value)


def _distinct_frame_counts(
    xyxy: np.ndarray, cls: np.ndarray, frame: np.ndarray, iou: float, class_agnostic: bool
) -> np.ndarray:
    """For each box, the number of distinct frames holding a matching box (itself included)."""
    order = np.argsort(frame, kind="stable")  # boxes grouped by frame, so reduceat sees runs
    xyxy, cls, frame = xyxy[order], cls[order], frame[order]
    starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]])
    counts = np.empty(len(xyxy), np.int64)
    rows = max(1, _CHUNK_CELLS // max(len(xyxy), 1))
    for r in range(0, len(xyxy), rows):
        near = pairwise_iou(xyxy[r : r + rows], xyxy) >= iou
        if not class_agnostic:
            near &= cls[r : r + rows, None] == cls[None, :]
        near[np.arange(near.shape[0]), np.arange(r, r + near.shape[0])] = True
        counts[r : r + rows] = np.logical_or.reduceat(near, starts, axis=1).sum(axis=1)
    out = np.empty_like(counts)
    out[order] = counts
    return out


def drop_fixed_location(
    dataset: Dataset,
    *,
    max_w: float = 0.03,
    max_h: float = 0.05,
    iou: float = 0.5,
    min_frames: int = 3,
    class_agnostic: bool = False,
    pattern: str | None = None,
) -> tuple[Dataset, int]:
    """`fixed_location_mask` applied to a dataset's ground truth; returns ``(dataset, boxes dropped)``.

    Cameras come from ``Sample.camera_id``, else the file name (``pattern``, see
    `sitesight.curation.captures`), else the image's folder.
    """
    from sitesight.curation.captures import CAPTURE_NAME_PATTERN, captures_from_dataset

    captures = captures_from_dataset(dataset, pattern=pattern or CAPTURE_NAME_PATTERN, use_mtime=False)
    masks = fixed_location_mask(
        [s.gt for s in dataset.samples],
        [c.camera_id for c in captures],
        [s.image_wh for s in dataset.samples],
        max_w=max_w,
        max_h=max_h,
        iou=iou,
        min_frames=min_frames,
        class_agnostic=class_agnostic,
    )
    samples = [s.replace(gt=s.gt[~m]) if m.any() else s for s, m in zip(dataset.samples, masks, strict=True)]
    return dataset.with_samples(samples), int(sum(m.sum() for m in masks))


def remap_classes(dataset: Dataset, mapping: Mapping[str, str | None]) -> Dataset:
    """Rename, merge (several old names → one new name) or drop (→ ``None``) classes.

    Classes absent from ``mapping`` keep their name. New class order: first appearance when walking
    the old classes in order. Attribute schema ``labels`` follow the renaming.

    Raises:
        InputError: ``mapping`` names a class the dataset does not have.
    """
    unknown = sorted(set(mapping) - set(dataset.class_names))
    if unknown:
        raise InputError(f"class remap: unknown classes {unknown}; classes are {list(dataset.class_names)}")
    target = [mapping.get(c, c) for c in dataset.class_names]
    new_names = list(dict.fromkeys(t for t in target if t is not None))
    lut = np.array([-1 if t is None else new_names.index(t) for t in target] + [-1], np.int64)
    samples = []
    for s in dataset.samples:
        new_ids = lut[s.gt.class_id]
        keep = new_ids >= 0
        samples.append(s.replace(gt=s.gt[keep].replace(class_id=new_ids[keep])))
    schema = {
        k: AttributeSpec(
            name=v.name, values=v.values, input_type=v.input_type, default=v.default,
            labels=tuple(dict.fromkeys(mapping.get(lb, lb) for lb in v.labels if mapping.get(lb, lb) is not None)),
        )
        for k, v in dataset.attribute_schema.items()
    }
    return Dataset(class_names=tuple(new_names), samples=tuple(samples), attribute_schema=schema, root=dataset.root)


@dataclass(frozen=True)
class AttributeRule:
    """Boxes of ``class_name`` whose ``attribute`` equals ``value`` become ``new_class``."""

    class_name: str
    attribute: str
    value: str
    new_class: str


_RULE = re.compile(r"^\s*([^:]+?)\s*:\s*([^=]+?)\s*=\s*(.*?)\s*->\s*(.+?)\s*$")


def parse_attribute_rule(text: str) -> AttributeRule:
    """Parse ``"class:attribute=value->new_class"``, e.g. ``head:has_safety_helmet=no->person_without_helmet``."""
    match = _RULE.match(text)
    if not match:
        raise InputError(f"attribute rule {text!r}: expected 'class:attribute=value->new_class'")
    return AttributeRule(*match.groups())


def attributes_to_classes(dataset: Dataset, rules: Sequence[AttributeRule]) -> Dataset:
    """Reclassify boxes by attribute value; new class names are appended to ``class_names``.

    Rules are applied in order to the original classes (a box changes at most once). Attribute
    arrays are kept as they are.

    Raises:
        InputError: a rule names an unknown class.
    """
    names = list(dataset.class_names)
    for rule in rules:
        if rule.class_name not in dataset.class_names:
            raise InputError(f"attribute rule {rule}: unknown class {rule.class_name!r}; classes are {names}")
        if rule.new_class not in names:
            names.append(rule.new_class)
    samples: list[Sample] = []
    for s in dataset.samples:
        old = s.gt.class_id
        new = old.copy()
        changed = np.zeros(len(old), bool)
        for rule in rules:
            values = s.gt.attributes.get(rule.attribute)
            if values is None:
                continue
            hit = (old == dataset.class_names.index(rule.class_name)) & ~changed
            hit &= np.array([v is not None and str(v) == rule.value for v in values], bool)
            new[hit] = names.index(rule.new_class)
            changed |= hit
        samples.append(s.replace(gt=s.gt.replace(class_id=new)) if changed.any() else s)
    schema = dict(dataset.attribute_schema)
    for key, spec in schema.items():  # boxes keep their attributes, so their new class must carry them too
        extra = [r.new_class for r in rules if spec.labels and r.class_name in spec.labels]
        if extra:
            schema[key] = AttributeSpec(
                name=spec.name, values=spec.values, input_type=spec.input_type, default=spec.default,
                labels=tuple(dict.fromkeys((*spec.labels, *extra))),
            )
    return Dataset(class_names=tuple(names), samples=tuple(samples), attribute_schema=schema, root=dataset.root)

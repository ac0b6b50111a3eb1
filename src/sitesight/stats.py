"""Dataset statistics: boxes per class and attribute value, box sizes, images without boxes.

Sizes are given both in pixels and relative to the frame (``w / W``, ``h / H``), as quantiles per
class, plus COCO's size buckets (area < 32², < 96², larger) that decide which AP a box counts in.

Example:
    >>> from sitesight.stats import dataset_stats
    >>> dataset_stats(ds).to_dict()["class_counts"]  # doctest: +SKIP
    {'person': 120, 'helmet': 80}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sitesight.dataset import Dataset

__all__ = ["QUANTILES", "DatasetStats", "dataset_stats"]

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
QUANTILE_NAMES = ("min", "p5", "p25", "median", "p75", "p95", "max")
_SMALL, _MEDIUM = 32**2, 96**2


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.quantile(values.astype(np.float64), QUANTILES)
    return {name: round(float(v), 4) for name, v in zip(QUANTILE_NAMES, q, strict=True)}


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of one dataset; ``to_dict()`` is the JSON form.

    Args:
        n_images: samples.
        n_boxes: boxes.
        images_without_boxes: paths of samples with no box.
        class_counts: boxes per class (every class listed).
        images_per_class: samples containing the class at least once.
        attribute_counts: attribute → value → boxes (``None`` values are not counted).
        tag_counts: image tag → samples.
        box_size: class (and ``"all"``) → measure → quantiles; measures are ``width_px``,
            ``height_px``, ``width_rel``, ``height_rel``.
        size_buckets: class (and ``"all"``) → ``small``/``medium``/``large`` box counts (COCO areas).
        image_sizes: ``"WxH"`` → samples.
    """

    n_images: int
    n_boxes: int
    images_without_boxes: tuple[str, ...]
    class_counts: dict[str, int]
    images_per_class: dict[str, int]
    attribute_counts: dict[str, dict[str, int]]
    tag_counts: dict[str, int] = field(default_factory=dict)
    box_size: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    size_buckets: dict[str, dict[str, int]] = field(default_factory=dict)
    image_sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "images": self.n_images, "boxes": self.n_boxes,
            "images_without_boxes": {"count": len(self.images_without_boxes), "paths": list(self.images_without_boxes)},
            "class_counts": self.class_counts, "images_per_class": self.images_per_class,
            "attribute_counts": self.attribute_counts, "tag_counts": self.tag_counts,
            "box_size": self.box_size, "size_buckets": self.size_buckets, "image_sizes": self.image_sizes,
        }  # fmt: skip


def dataset_stats(dataset: Dataset) -> DatasetStats:
    """Count and measure the boxes of ``dataset`` (one pass over the samples)."""
    names = dataset.class_names
    k = len(names)
    per_image = np.zeros(k, np.int64)
    class_ids, wh_px, wh_rel = [], [], []
    attribute_counts: dict[str, dict[str, int]] = {a: {} for a in dataset.attribute_schema}
    tags: dict[str, int] = {}
    sizes: dict[str, int] = {}
    empty = []
    for sample in dataset.samples:
        gt = sample.gt
        w, h = sample.image_wh
        sizes[f"{w}x{h}"] = sizes.get(f"{w}x{h}", 0) + 1
        for t in sample.tags:
            tags[t] = tags.get(t, 0) + 1
        if not len(gt):
            empty.append(str(sample.path))
            continue
        per_image += np.bincount(gt.class_id, minlength=k) > 0
        class_ids.append(gt.class_id)
        bw = (gt.xyxy[:, 2:] - gt.xyxy[:, :2]).astype(np.float64)
        wh_px.append(bw)
        wh_rel.append(bw / np.array([max(w, 1), max(h, 1)], np.float64))
        for name, column in gt.attributes.items():
            if name in attribute_counts:
                counts = attribute_counts[name]
                for value in column:
                    if value is not None:
                        counts[str(value)] = counts.get(str(value), 0) + 1
    cls = np.concatenate(class_ids) if class_ids else np.zeros(0, np.int64)
    px = np.concatenate(wh_px) if wh_px else np.zeros((0, 2))
    rel = np.concatenate(wh_rel) if wh_rel else np.zeros((0, 2))
    counts = np.bincount(cls, minlength=k)
    box_size: dict[str, dict[str, dict[str, float]]] = {}
    buckets: dict[str, dict[str, int]] = {}
    for label, mask in [("all", np.ones(cls.size, bool))] + [(n, cls == i) for i, n in enumerate(names)]:
        if not mask.any():
            continue
        box_size[label] = {
            "width_px": _quantiles(px[mask, 0]), "height_px": _quantiles(px[mask, 1]),
            "width_rel": _quantiles(rel[mask, 0]), "height_rel": _quantiles(rel[mask, 1]),
        }  # fmt: skip
        area = px[mask, 0] * px[mask, 1]
        buckets[label] = {
            "small": int((area < _SMALL).sum()), "medium": int(((area >= _SMALL) & (area < _MEDIUM)).sum()),
            "large": int((area >= _MEDIUM).sum()),
        }  # fmt: skip
    return DatasetStats(
        n_images=len(dataset),
        n_boxes=int(cls.size),
        images_without_boxes=tuple(empty),
        class_counts={n: int(c) for n, c in zip(names, counts, strict=True)},
        images_per_class={n: int(c) for n, c in zip(names, per_image, strict=True)},
        attribute_counts={a: dict(sorted(v.items())) for a, v in attribute_counts.items()},
        tag_counts=tags,
        box_size=box_size,
        size_buckets=buckets,
        image_sizes=dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
    )

"""Boxes of many images as aligned columns: the input of every matching and metric.

`BoxTable` is built from per-image `Detections` by `table_from_detections`, or straight from COCO
JSON by `sitesight.evaluation.coco_files`. Boxes are float64 absolute-pixel xyxy; ``area`` is the box
area used by IoU (``w * h``) and ``range_area`` the area compared with area ranges (COCO's ``"area"``
field for ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections

__all__ = ["BoxTable", "table_from_detections", "class_names_for"]


@dataclass(frozen=True)
class BoxTable:
    """Boxes of many images as aligned columns.

    Attributes:
        image: ``(N,)`` int64 image index (position in the evaluated image list).
        class_id: ``(N,)`` int64 class index.
        xyxy: ``(N, 4)`` float64 absolute-pixel boxes.
        area: ``(N,)`` float64 box area ``w * h`` used by IoU.
        range_area: ``(N,)`` float64 area compared with area ranges.
        score: ``(N,)`` float64 confidence (ones for ground truth).
        crowd: ``(N,)`` bool COCO ``iscrowd`` (ground truth only).
        zero_id: ``(N,)`` bool, ground truth whose COCO annotation id is 0 (pycocotools counts a
            prediction matched to it as unmatched; kept for exact parity, all False otherwise).
        source: ``(N,)`` int64 slice index that produced a prediction (-1 = full frame or unknown).
    """

    image: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    area: np.ndarray
    range_area: np.ndarray
    score: np.ndarray
    crowd: np.ndarray
    zero_id: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def build(
        cls,
        image: np.ndarray,
        class_id: np.ndarray,
        xyxy: np.ndarray,
        *,
        score: np.ndarray | None = None,
        area: np.ndarray | None = None,
        range_area: np.ndarray | None = None,
        crowd: np.ndarray | None = None,
        zero_id: np.ndarray | None = None,
    ) -> BoxTable:
        """A table with defaults: area from the boxes, score 1, not crowd, source -1."""
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        n = xyxy.shape[0]
        if area is None:
            area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        area = np.asarray(area, np.float64)
        return cls(
            image=np.asarray(image, np.int64).reshape(n),
            class_id=np.asarray(class_id, np.int64).reshape(n),
            xyxy=xyxy,
            area=area,
            range_area=area if range_area is None else np.asarray(range_area, np.float64),
            score=np.ones(n) if score is None else np.asarray(score, np.float64),
            crowd=np.zeros(n, bool) if crowd is None else np.asarray(crowd, bool),
            zero_id=np.zeros(n, bool) if zero_id is None else np.asarray(zero_id, bool),
            source=np.full(n, -1, np.int64),
        )

    def take(self, index: np.ndarray) -> BoxTable:
        """Rows by index or mask."""
        return BoxTable(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    def with_columns(self, **columns: np.ndarray) -> BoxTable:
        """A copy with some columns replaced (same length)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(columns)
        return BoxTable(**values)


def table_from_detections(per_image: Sequence[Detections], *, gt: bool) -> BoxTable:
    """Flatten one `Detections` per image into a `BoxTable`.

    Args:
        per_image: one `Detections` per image, in image order.
        gt: True for ground truth: scores are ignored, ``attributes["iscrowd"]`` marks crowd boxes and
            ``attributes["coco_area"]`` (the COCO reader's ``area``; else ``attributes["area"]``) is
            the area compared with ranges.
            For predictions ``attributes["source"]`` (slice index, -1 = full frame) is kept.
    """
    boxes = [d.xyxy for d in per_image]
    counts = np.fromiter(map(len, boxes), np.int64, count=len(boxes))
    image = np.repeat(np.arange(len(per_image), dtype=np.int64), counts)
    n = int(counts.sum())
    if n == 0:
        return BoxTable.build(image, np.zeros(0), np.zeros((0, 4)))
    xyxy = np.concatenate(boxes).astype(np.float64)
    class_id = np.concatenate([d.class_id for d in per_image])
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    if gt:
        crowd = _column(per_image, "iscrowd", 0, n).astype(np.int64) != 0
        # the COCO reader keeps a file's "area" as "coco_area" (pycocotools' area ranges use it)
        range_area = _column(per_image, "coco_area", np.nan, n)
        range_area = np.where(np.isnan(range_area), _column(per_image, "area", np.nan, n), range_area)
        range_area = np.where(np.isnan(range_area), area, range_area)
        return BoxTable.build(image, class_id, xyxy, area=area, range_area=range_area, crowd=crowd)
    score = np.concatenate([d.score for d in per_image]).astype(np.float64)
    table = BoxTable.build(image, class_id, xyxy, score=score, area=area)
    return table.with_columns(source=_column(per_image, "source", -1, n).astype(np.int64))


def class_names_for(
    gt: BoxTable, pred: BoxTable, *, class_names: Sequence[str] | None = None, num_classes: int | None = None
) -> tuple[str, ...]:
    """``class_names`` as a tuple, else ``("c0", …)`` for ``num_classes`` classes (default: 1 + the
    largest class id in ``gt`` and ``pred``; none when both are empty)."""
    if class_names is not None:
        return tuple(class_names)
    if num_classes is None:
        num_classes = int(max(gt.class_id.max(initial=-1), pred.class_id.max(initial=-1))) + 1
    return tuple(f"c{i}" for i in range(num_classes))


def _column(parts: Sequence[Detections], key: str, default: float, n: int) -> np.ndarray:
    """``(n,)`` float64 one attribute over all parts; ``default`` where a part lacks it or holds None."""
    if not any(key in d.attributes for d in parts):
        return np.full(n, default, np.float64)
    chunks = []
    for d in parts:
        values = d.attributes.get(key)
        if values is None:
            values = np.full(len(d), default)
        elif values.dtype == object:
            values = np.array([default if v is None else v for v in values], np.float64)
        chunks.append(np.asarray(values, np.float64))
    return np.concatenate(chunks)

"""The evaluation engine's derived index of a `FrameTable`: float64 boxes plus the COCO columns.

A multi-frame box set enters evaluation as a `sitesight.frametable.FrameTable` (frame index + the
`Detections` columns), the one table sweeps, gates and mining use too. `BoxTable.from_frame_table`
derives from it what the matching engine reads: the same rows in the same order, boxes widened to
float64 absolute-pixel xyxy, ``area`` the box area used by IoU (``w * h``), ``range_area`` the area
compared with area ranges (COCO's ``"area"`` field for ground truth), and the ``crowd`` /
``zero_id`` / ``source`` flags. `table_from_detections` is the same for one `Detections` per frame.

The one exception: `sitesight.evaluation.coco_files` builds a `BoxTable` straight from COCO JSON
(`BoxTable.build`), because `Detections` stores float32 boxes and pycocotools computes in float64:
a COCO file rounded through `Detections` would not give pycocotools' numbers exactly.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.frametable import FrameTable
    >>> t = FrameTable.from_frames([Detections(xyxy=[[0, 0, 10, 5]]), Detections.empty()])
    >>> b = BoxTable.from_frame_table(t, gt=True)
    >>> b.frame.tolist(), b.area.tolist(), b.crowd.tolist()
    ([0], [50.0], [False])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections
from sitesight.frametable import FrameTable

__all__ = ["BoxTable", "Frames", "box_table", "table_from_detections", "class_names_for"]

# what evaluation's entry points take: one `Detections` per frame, or the frames' `FrameTable`
Frames = Sequence[Detections] | FrameTable

# the attributes evaluation reads, and the value of a box that lacks one
_GT_COLUMNS = {"iscrowd": 0.0, "coco_area": np.nan, "area": np.nan}
_PRED_COLUMNS = {"source": -1.0}


@dataclass(frozen=True)
class BoxTable:
    """Boxes of many frames as aligned columns.

    Attributes:
        frame: ``(N,)`` int64 frame index (position in the evaluated frame list; for a COCO file
            the position of the image id in the ground truth's sorted ids).
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

    frame: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    area: np.ndarray
    range_area: np.ndarray
    score: np.ndarray
    crowd: np.ndarray
    zero_id: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @classmethod
    def build(
        cls,
        frame: np.ndarray,
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
            frame=np.asarray(frame, np.int64).reshape(n),
            class_id=np.asarray(class_id, np.int64).reshape(n),
            xyxy=xyxy,
            area=area,
            range_area=area if range_area is None else np.asarray(range_area, np.float64),
            score=np.ones(n) if score is None else np.asarray(score, np.float64),
            crowd=np.zeros(n, bool) if crowd is None else np.asarray(crowd, bool),
            zero_id=np.zeros(n, bool) if zero_id is None else np.asarray(zero_id, bool),
            source=np.full(n, -1, np.int64),
        )

    @classmethod
    def from_frame_table(cls, table: FrameTable, *, gt: bool) -> BoxTable:
        """The engine's index of ``table``: the same rows, ``frame`` = ``table.frame``.

        Args:
            table: boxes of many frames.
            gt: True for ground truth: scores are ignored, ``attributes["iscrowd"]`` marks crowd
                boxes and ``attributes["coco_area"]`` (the COCO reader's ``area``; else
                ``attributes["area"]``; else ``w * h``) is the area compared with ranges.
                For predictions ``attributes["source"]`` (slice index, -1 = full frame) is kept.
        """
        boxes = table.boxes
        xyxy = boxes.xyxy.astype(np.float64)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        attributes = boxes.attributes
        if gt:
            crowd = _column(attributes, "iscrowd", 0, len(boxes)).astype(np.int64) != 0
            # the COCO reader keeps a file's "area" as "coco_area" (pycocotools' area ranges use it)
            range_area = _column(attributes, "coco_area", np.nan, len(boxes))
            range_area = np.where(np.isnan(range_area), _column(attributes, "area", np.nan, len(boxes)), range_area)
            range_area = np.where(np.isnan(range_area), area, range_area)
            return cls.build(table.frame, boxes.class_id, xyxy, area=area, range_area=range_area, crowd=crowd)
        built = cls.build(table.frame, boxes.class_id, xyxy, score=boxes.score.astype(np.float64), area=area)
        return built.with_columns(source=_column(attributes, "source", -1, len(boxes)).astype(np.int64))

    def take(self, index: np.ndarray) -> BoxTable:
        """Rows by index or mask."""
        return BoxTable(**{k: getattr(self, k)[index] for k in self.__dataclass_fields__})

    def with_columns(self, **columns: np.ndarray) -> BoxTable:
        """A copy with some columns replaced (same length)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(columns)
        return BoxTable(**values)


def table_from_detections(per_frame: Sequence[Detections], *, gt: bool) -> BoxTable:
    """`BoxTable.from_frame_table` of one `Detections` per frame (frame = position in the list).

    Frames may disagree on which of the attributes evaluation reads they carry (a box without one
    takes its default); every other attribute is left out.
    """
    return BoxTable.from_frame_table(_frame_table(per_frame, _GT_COLUMNS if gt else _PRED_COLUMNS), gt=gt)


def box_table(frames: Frames, *, gt: bool) -> tuple[BoxTable, int]:
    """``(table, number of frames)`` of one `Detections` per frame or of a `FrameTable`
    (`BoxTable.from_frame_table`, no per-frame split)."""
    if isinstance(frames, FrameTable):
        return BoxTable.from_frame_table(frames, gt=gt), frames.n_frames
    return table_from_detections(frames, gt=gt), len(frames)


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


def _frame_table(per_frame: Sequence[Detections], defaults: Mapping[str, float]) -> FrameTable:
    """`FrameTable.from_frames`; when the frames do not stack (attribute keys or widths differ),
    each frame keeps only the attributes in ``defaults`` that some frame holds, as ``(n,)``
    float64 (missing or None values take the default)."""
    try:
        return FrameTable.from_frames(per_frame)
    except ValueError:  # frames that differ in attribute keys, or e.g. in the width of an (n, K) attribute
        pass
    used = [k for k in defaults if any(k in d.attributes for d in per_frame)]
    return FrameTable.from_frames([
        Detections(xyxy=d.xyxy, score=d.score, class_id=d.class_id,
                   attributes={k: _column(d.attributes, k, defaults[k], len(d)) for k in used})
        for d in per_frame
    ])


def _column(attributes: Mapping[str, np.ndarray], key: str, default: float, n: int) -> np.ndarray:
    """``(n,)`` float64 attribute ``key``; ``default`` where it is absent or holds None."""
    values = attributes.get(key)
    if values is None:
        return np.full(n, default, np.float64)
    if values.dtype == object:
        return np.array([default if v is None else v for v in values], np.float64).reshape(n)
    return np.asarray(values, np.float64).reshape(n)

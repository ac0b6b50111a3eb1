"""`Detections`: the one container for boxes, ground truth and predictions alike.

Every array is aligned on the first axis: row ``i`` of ``xyxy``, ``score``, ``class_id`` and of
every array in ``attributes`` describes the same box. Boxes are absolute pixels in the full frame,
``(x1, y1, x2, y2)`` with ``x2 >= x1`` and ``y2 >= y1`` (continuous coordinates, area = w * h).

Example:
    >>> import numpy as np
    >>> from sitesight import Detections
    >>> d = Detections(xyxy=[[10, 10, 50, 90]], score=[0.9], class_id=[0])
    >>> len(d), d.xyxy.dtype.name
    (1, 'float32')
    >>> len(d.filter(min_score=0.95))
    0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from sitesight.errors import MissingExtraError

__all__ = ["Detections"]


def _as_array(name: str, value: Any, dtype: type, ndim_shape: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Detections.{name}: expected {ndim_shape} {np.dtype(dtype).name}, got {exc}") from None
    return array


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes with scores, classes and per-box attributes, as aligned numpy arrays.

    Args:
        xyxy: ``(N, 4)`` float32 absolute pixel boxes in the full frame.
        score: ``(N,)`` float32 confidences; ground truth uses 1.0. Defaults to ones.
        class_id: ``(N,)`` int64 indices into the dataset's class names. Defaults to zeros.
        attributes: name → array whose first dimension is N (e.g. ``"source"`` int64 slice index,
            ``"safety_rope"`` values, ``"iou_pred"`` float32).

    Empty detections have ``len(d) == 0``; they are never ``None``.
    """

    xyxy: np.ndarray
    score: np.ndarray = None  # type: ignore[assignment]
    class_id: np.ndarray = None  # type: ignore[assignment]
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = _as_array("xyxy", self.xyxy, np.float32, "(N, 4)")
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy: expected shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        score = np.ones(n, np.float32) if self.score is None else _as_array("score", self.score, np.float32, "(N,)")
        class_id = (
            np.zeros(n, np.int64) if self.class_id is None else _as_array("class_id", self.class_id, np.int64, "(N,)")
        )
        for name, array in (("score", score), ("class_id", class_id)):
            if array.shape != (n,):
                raise ValueError(f"Detections.{name}: expected shape ({n},), got {array.shape}")
        attributes: dict[str, np.ndarray] = {}
        for key, value in dict(self.attributes).items():
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != n:
                raise ValueError(f"Detections.attributes[{key!r}]: expected first dimension {n}, got shape {array.shape}")
            attributes[str(key)] = array
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "attributes", MappingProxyType(attributes))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls, attribute_names: Iterable[str] = ()) -> Detections:
        """Zero boxes; ``attribute_names`` get empty object arrays so concat keeps the keys."""
        return cls(xyxy=np.zeros((0, 4), np.float32), attributes={k: np.zeros(0, object) for k in attribute_names})

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Stack several `Detections` into one. Attribute keys must agree unless a part is empty."""
        parts = [p for p in parts if len(p) > 0] or list(parts[:1])
        if not parts:
            return cls.empty()
        keys = set(parts[0].attributes)
        for p in parts[1:]:
            if set(p.attributes) != keys:
                raise ValueError(
                    f"Detections.concat: attribute keys differ: {sorted(keys)} vs {sorted(p.attributes)}"
                )
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            attributes={k: np.concatenate([p.attributes[k] for p in parts]) for k in keys},
        )

    # -- basic protocol -----------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __reduce__(self) -> tuple:
        # attributes are a read-only mapping proxy, which pickle refuses: rebuild from a plain dict
        return (Detections, (self.xyxy, self.score, self.class_id, dict(self.attributes)))

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Detections:
        """Select rows by integer, slice, integer array or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        index = index if isinstance(index, slice) else np.asarray(index)
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise IndexError(f"Detections: boolean mask of shape {index.shape} for {len(self)} boxes")
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            class_id=self.class_id[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
        )

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, attributes={sorted(self.attributes)})"

    def equals(self, other: Detections, atol: float = 0.0) -> bool:
        """True when boxes, scores, classes and attributes agree (boxes and scores within ``atol``)."""
        if len(self) != len(other) or set(self.attributes) != set(other.attributes):
            return False
        if not np.array_equal(self.class_id, other.class_id):
            return False
        if not (np.allclose(self.xyxy, other.xyxy, atol=atol, rtol=0) and np.allclose(self.score, other.score, atol=atol, rtol=0)):
            return False
        return all(_array_equal(self.attributes[k], other.attributes[k]) for k in self.attributes)

    # -- derived values -----------------------------------------------------------------------

    @property
    def area(self) -> np.ndarray:
        """``(N,)`` float32 box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    @property
    def center(self) -> np.ndarray:
        """``(N, 2)`` float32 box centres ``(cx, cy)``."""
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2

    # -- operations (each returns a new value) -------------------------------------------------

    def select(self, index: np.ndarray | Sequence[int] | slice) -> Detections:
        """Rows by index array, boolean mask or slice."""
        return self[index]

    def replace(
        self,
        *,
        xyxy: np.ndarray | None = None,
        score: np.ndarray | None = None,
        class_id: np.ndarray | None = None,
        attributes: Mapping[str, np.ndarray] | None = None,
    ) -> Detections:
        """A copy with the given fields replaced."""
        return Detections(
            xyxy=self.xyxy if xyxy is None else xyxy,
            score=self.score if score is None else score,
            class_id=self.class_id if class_id is None else class_id,
            attributes=self.attributes if attributes is None else attributes,
        )

    def with_attributes(self, **arrays: np.ndarray) -> Detections:
        """A copy with attributes added or replaced."""
        return self.replace(attributes={**self.attributes, **arrays})

    def shift(self, dx: float, dy: float) -> Detections:
        """Boxes translated by ``(dx, dy)`` pixels, e.g. from slice to frame coordinates."""
        offset = np.array([dx, dy, dx, dy], np.float32)
        return self.replace(xyxy=self.xyxy + offset)

    def clip(self, image_wh: tuple[int, int]) -> Detections:
        """Boxes clipped to ``[0, w] x [0, h]``; boxes that end up with zero area are kept."""
        w, h = image_wh
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        return self.replace(xyxy=xyxy)

    def filter(
        self,
        *,
        min_score: float | None = None,
        class_ids: Iterable[int] | None = None,
        min_area: float | None = None,
    ) -> Detections:
        """Boxes with ``score >= min_score``, class in ``class_ids`` and ``area >= min_area``."""
        keep = np.ones(len(self), bool)
        if min_score is not None:
            keep &= self.score >= min_score
        if class_ids is not None:
            keep &= np.isin(self.class_id, np.fromiter(class_ids, np.int64))
        if min_area is not None:
            keep &= self.area >= min_area
        return self[keep]

    def sorted_by_score(self) -> Detections:
        """Highest score first; ties keep their original order (stable)."""
        return self[np.argsort(-self.score, kind="stable")]

    # -- other libraries ------------------------------------------------------------------------

    @classmethod
    def from_supervision(cls, sv_det: Any, *, class_names: Sequence[str] | None = None) -> Detections:
        """From a ``supervision.Detections``.

        ``confidence`` None → scores of 1 (ground truth); ``class_id`` None → class 0, or, with
        ``class_names``, looked up from ``data["class_name"]``. ``tracker_id`` and every ``data``
        array become attributes (``class_name`` too, when it was not used for the lookup).

        Raises:
            ValueError: a ``data["class_name"]`` value that is not in ``class_names``.
        """
        n = len(sv_det.xyxy)
        data = dict(sv_det.data or {})
        class_id = sv_det.class_id
        if class_names is not None and "class_name" in data:
            index = {name: k for k, name in enumerate(class_names)}
            unknown = sorted({str(v) for v in data["class_name"]} - set(index))
            if unknown:
                raise ValueError(f"from_supervision: class names {unknown} are not in {list(class_names)}")
            class_id = np.array([index[str(v)] for v in data.pop("class_name")], np.int64)
        attributes = {k: np.asarray(v) for k, v in data.items()}
        if sv_det.tracker_id is not None:
            attributes["tracker_id"] = np.asarray(sv_det.tracker_id, np.int64)
        return cls(xyxy=np.asarray(sv_det.xyxy, np.float32).reshape(n, 4),
                   score=None if sv_det.confidence is None else np.asarray(sv_det.confidence, np.float32),
                   class_id=None if class_id is None else np.asarray(class_id, np.int64), attributes=attributes)  # fmt: skip

    def to_supervision(self, *, class_names: Sequence[str] | None = None) -> Any:
        """``supervision.Detections`` with the same boxes (xyxy float32), ``confidence``, ``class_id``;
        attributes go to ``data`` (``"tracker_id"`` to ``tracker_id``), class names to ``data["class_name"]``."""
        try:
            import supervision as sv
        except ImportError:
            raise MissingExtraError("supervision", "supervision") from None
        data = {k: np.asarray(v) for k, v in self.attributes.items() if k != "tracker_id"}
        if class_names is not None:
            data["class_name"] = np.asarray([class_names[int(c)] for c in self.class_id], dtype=object) \
                if len(self) else np.zeros(0, dtype=object)  # fmt: skip
        tracker = self.attributes.get("tracker_id")
        return sv.Detections(xyxy=self.xyxy.copy(), confidence=self.score.copy(), class_id=self.class_id.copy(),
                             tracker_id=None if tracker is None else np.asarray(tracker, np.int64), data=data)  # fmt: skip


def _array_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.all(a == b))

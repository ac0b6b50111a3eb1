"""Bridges to the tools a notebook already has: supervision's ``Detections`` and pandas tables.

Both libraries are optional and imported only on use; a missing one fails with the pip line. The supervision
bridge is `Detections.to_supervision` / `Detections.from_supervision` (named here too).

* `to_supervision` / `from_supervision`: sitesight `Detections` ↔ ``supervision.Detections``.
  ``xyxy``, ``score`` ↔ ``confidence``, ``class_id`` map one to one; per-box attributes ↔
  ``data`` (plus ``tracker_id`` both ways, and ``data["class_name"]`` when class names are given);
  masks are not carried (sitesight holds boxes).
* `detections_frame`: one row per box of several frames (``frame``, a key, ``x1 y1 x2 y2``,
  ``score``, ``class_id``, ``class_name``, one column per attribute); `Dataset.to_pandas`,
  `Run.to_pandas` and the evaluation results' ``to_pandas`` are views built on it.

Example:
    >>> from sitesight import Detections
    >>> d = Detections(xyxy=[[0, 0, 10, 20]], score=[0.9], class_id=[1])
    >>> to_supervision(d, class_names=["person", "helmet"]).data["class_name"].tolist()  # doctest: +SKIP
    ['helmet']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import MissingExtraError

__all__ = ["to_supervision", "from_supervision", "detections_frame", "records_frame"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingExtraError("pandas", "pandas") from None
    return pandas


def to_supervision(det: Detections, *, class_names: Sequence[str] | None = None) -> Any:
    """``supervision.Detections`` with the same boxes (`Detections.to_supervision`)."""
    return det.to_supervision(class_names=class_names)


def from_supervision(sv_det: Any, *, class_names: Sequence[str] | None = None) -> Detections:
    """sitesight `Detections` from a ``supervision.Detections`` (`Detections.from_supervision`)."""
    return Detections.from_supervision(sv_det, class_names=class_names)


def detections_frame(
    dets: Sequence[Detections],
    *,
    keys: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    key_name: str = "image",
    score: bool = True,
) -> Any:
    """A pandas DataFrame with one row per box of ``dets`` (frames in order; a frame without
    boxes has no row): ``frame``, ``key_name`` (from ``keys``), ``x1 y1 x2 y2``, ``score`` (when
    ``score``), ``class_id``, ``class_name`` (with ``class_names``), then one column per attribute
    (an attribute absent from a frame is missing there)."""
    pd = _pandas()
    counts = np.array([len(d) for d in dets], np.int64)
    frame = np.repeat(np.arange(len(dets)), counts)
    xyxy = np.concatenate([d.xyxy for d in dets]) if len(dets) else np.zeros((0, 4), np.float32)
    cls = np.concatenate([d.class_id for d in dets]) if len(dets) else np.zeros(0, np.int64)
    columns: dict[str, Any] = {"frame": frame}
    if keys is not None:
        columns[key_name] = np.asarray(list(keys), dtype=object)[frame] if len(frame) else np.zeros(0, object)
    columns.update({"x1": xyxy[:, 0], "y1": xyxy[:, 1], "x2": xyxy[:, 2], "y2": xyxy[:, 3]})
    if score:
        columns["score"] = np.concatenate([d.score for d in dets]) if len(dets) else np.zeros(0, np.float32)
    columns["class_id"] = cls
    if class_names is not None:
        names = np.asarray(list(class_names), dtype=object)
        columns["class_name"] = names[cls] if len(cls) else np.zeros(0, object)
    attr_keys = list(dict.fromkeys(k for d in dets for k in d.attributes))
    for key in attr_keys:
        parts = []
        for d in dets:
            value = d.attributes.get(key)
            if value is None:
                value = np.full(len(d), None, dtype=object)
            parts.append(np.asarray(value).reshape(len(d), -1)[:, 0] if np.asarray(value).ndim > 1 else np.asarray(value))
        columns[key] = np.concatenate(parts) if parts else np.zeros(0, object)
    return pd.DataFrame(columns)


def records_frame(rows: Sequence[dict[str, Any]] | dict[str, dict[str, Any]], *, index_name: str | None = None) -> Any:
    """A DataFrame from result rows: a list of dicts, or name → dict (the names become the index)."""
    pd = _pandas()
    if isinstance(rows, dict):
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = index_name
        return frame
    return pd.DataFrame(list(rows))

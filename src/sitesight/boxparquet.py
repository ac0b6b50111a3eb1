"""Boxes at rest: the one Parquet schema for raw and final boxes of many frames.

A `sitesight.frametable.FrameTable` and the list of frames it covers become one Arrow table, and
back. A run's shards (`sitesight.sliced.store`, raw boxes) and a mining folder's
``MINED/boxes.parquet`` (final boxes of every model) are both written and read here.

Columns, one row per box::

    image_id     int64    the frame's index in the frame list below (a run: position in its manifest)
    source       int32    slice index the box came from; -1: the full frame (and every final box)
    x1 y1 x2 y2  float32  absolute pixels in the frame
    score        float32
    class_id     int64
    class_name   dictionary<string>  the class id's name, when the writer knows the names (final and
                 mined boxes; a run's raw shards name their classes in its manifest); null outside them
    ...          one column per box attribute (1-D arrays: a plain column, 2-D: a fixed-size list),
                 e.g. ``iou_pred``, ``cls_score``, ``model`` (which model's box, in a mining folder)

Key-value metadata (JSON)::

    sitesight.sliced.frames  [[index, key, [width, height] | null, reason | null], ...]: every frame
                             the file covers, those without boxes too; a null size marks a frame that
                             could not be read, ``reason`` says why (the key's name predates this module)
    sitesight.class_names    ["person", ...]: names of the class ids (absent: a run's are in its manifest)
    sitesight.spec           the `sitesight.sliced.spec.PostprocessSpec` dict that made final boxes
                             (absent: raw boxes)

pandas, polars, DuckDB and Ray read the files as they are.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.frametable import FrameTable
    >>> from sitesight.boxparquet import table_from_arrow, table_to_arrow
    >>> t = FrameTable.from_frames([Detections(xyxy=[[0, 0, 9, 9]]), Detections.empty()])
    >>> arrow = table_to_arrow(t, [[7, "a.jpg", [20, 10], None], [8, "b.jpg", [20, 10], None]])
    >>> arrow.column("image_id").to_pylist(), table_from_arrow(arrow, [7, 8]).counts().tolist()
    ([7], [1, 0])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sitesight import atomic
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.frametable import FrameTable
from sitesight.limits import load_json

__all__ = ["BOX_COLUMNS", "FRAMES_KEY", "StoredBoxes", "check_columns", "frames_meta", "read_boxes", "table_from_arrow", "table_to_arrow",
           "write_boxes"]

FRAMES_KEY = b"sitesight.sliced.frames"
CLASS_NAMES_KEY = b"sitesight.class_names"
SPEC_KEY = b"sitesight.spec"
BOX_COLUMNS = ("image_id", "source", "x1", "y1", "x2", "y2", "score", "class_id")
CLASS_NAME = "class_name"  # derived from class_id and the names: written when known, never read back as an attribute


@dataclass(frozen=True)
class StoredBoxes:
    """A box file read back.

    Args:
        frames: the frame list, ``[index, key, [w, h] | None, reason | None]`` rows in file order.
        table: the boxes; frame ``f`` of the table is ``frames[f]``; attributes hold ``"source"``
            (int32) and every other stored column.
        class_names: names of the class ids, None when the file does not record them.
        spec: the post-processing spec (a dict) that made these final boxes; None for raw boxes.
    """

    frames: list[list[Any]]
    table: FrameTable
    class_names: tuple[str, ...] | None
    spec: dict[str, Any] | None

    @property
    def keys(self) -> list[str]:
        """The frame keys, in table order."""
        return [str(row[1]) for row in self.frames]


def _attribute_array(name: str, values: np.ndarray) -> pa.Array:
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    if values.ndim != 1:
        raise ValueError(f"attribute {name!r}: only 1-D or 2-D arrays can be stored, got shape {values.shape}")
    return pa.array(values.tolist() if values.dtype == object else values)


def table_to_arrow(
    table: FrameTable,
    frames: Sequence[Sequence[Any]],
    *,
    class_names: Sequence[str] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> pa.Table:
    """``table`` as the Arrow form above.

    Args:
        table: the boxes; ``table.n_frames == len(frames)``.
        frames: ``[index, key, [w, h] | None, reason | None]`` per table frame; a box of table frame
            ``f`` is stored with ``image_id = frames[f][0]``.
        class_names: recorded as ``sitesight.class_names`` when given.
        spec: recorded as ``sitesight.spec`` when given (final boxes).

    Raises:
        ValueError: a frame list of the wrong length, or an attribute named like a box column.
    """
    if len(frames) != table.n_frames:
        raise ValueError(f"table_to_arrow: {table.n_frames} table frames but {len(frames)} frame rows")
    boxes = table.boxes
    names = sorted(k for k in boxes.attributes if k != "source")
    for k in names:
        if k in BOX_COLUMNS or k == CLASS_NAME:
            raise ValueError(f"attribute name {k!r} clashes with a box column")
    ids = np.array([int(row[0]) for row in frames], np.int64)
    source = boxes.attributes.get("source")
    columns: dict[str, pa.Array] = {
        "image_id": pa.array(ids[table.frame]),
        "source": pa.array(np.full(len(boxes), -1, np.int32) if source is None else np.asarray(source, np.int32)),
        "x1": pa.array(boxes.xyxy[:, 0]),
        "y1": pa.array(boxes.xyxy[:, 1]),
        "x2": pa.array(boxes.xyxy[:, 2]),
        "y2": pa.array(boxes.xyxy[:, 3]),
        "score": pa.array(boxes.score),
        "class_id": pa.array(boxes.class_id),
    }
    if class_names is not None:
        known = (boxes.class_id >= 0) & (boxes.class_id < len(class_names))
        indices = pa.array(np.where(known, boxes.class_id, 0).astype(np.int32), mask=~known)
        columns[CLASS_NAME] = pa.DictionaryArray.from_arrays(indices, pa.array([str(n) for n in class_names], pa.string()))
    for k in names:
        columns[k] = _attribute_array(k, np.asarray(boxes.attributes[k]))
    meta = {FRAMES_KEY: json.dumps([[int(r[0]), str(r[1]), None if r[2] is None else [int(v) for v in r[2]],
                                     None if len(r) < 4 or r[3] is None else str(r[3])] for r in frames]).encode()}
    if class_names is not None:
        meta[CLASS_NAMES_KEY] = json.dumps([str(n) for n in class_names]).encode()
    if spec is not None:
        meta[SPEC_KEY] = json.dumps(dict(spec), sort_keys=True).encode()
    return pa.table(columns).replace_schema_metadata(meta)


def _column_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_fixed_size_list(column.type):
        flat = pa.concat_arrays([c.flatten() for c in column.chunks]) if column.num_chunks else pa.array([])
        return flat.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
    values = column.to_numpy(zero_copy_only=False)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = values.astype(object)
    return values


def check_columns(path: Path | str, schema: pa.Schema) -> None:
    """`InputError` unless every box column is there with a number type."""
    for name in BOX_COLUMNS:
        if name not in schema.names:
            raise InputError(f"box file lacks the {name!r} column", path)
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or (pa.types.is_floating(kind) and name in ("x1", "y1", "x2", "y2", "score"))):
            raise InputError(f"box column {name!r} has type {kind}, expected a number", path)


def table_from_arrow(table: pa.Table, frame_ids: Sequence[int] | np.ndarray, *, path: Path | str = "") -> FrameTable:
    """Box rows (the Arrow form, one file or several concatenated) → a `FrameTable` over ``frame_ids``.

    Args:
        table: box rows; schema metadata is not read.
        frame_ids: ``(F,)`` the ``image_id`` of each table frame (e.g. a run's processed frame
            indices, ascending); rows keep their file order within a frame.
        path: named in errors.

    Raises:
        InputError: a missing or non-numeric box column, non-finite coordinates or scores, or a
            row whose ``image_id`` is not in ``frame_ids``.
    """
    check_columns(path, table.schema)
    ids = np.asarray(frame_ids, np.int64).reshape(-1)
    by_id = np.argsort(ids, kind="stable")
    if len(ids) > 1 and (np.diff(ids[by_id]) == 0).any():
        raise InputError("the frame list names a frame index twice", path, "sitesight.sliced.frames")
    image_id = table.column("image_id").to_numpy().astype(np.int64)
    pos = np.minimum(np.searchsorted(ids[by_id], image_id), max(len(ids) - 1, 0))
    if len(image_id) and (len(ids) == 0 or (ids[by_id][pos] != image_id).any()):
        bad = image_id[np.flatnonzero(len(ids) == 0 or ids[by_id][pos] != image_id)[0]]
        raise InputError(f"box rows of frame {int(bad)}, which the frame list does not hold", path, "image_id")
    frame = by_id[pos] if len(ids) else np.zeros(0, np.int64)
    order = np.argsort(frame, kind="stable")
    xyxy = np.stack([table.column(c).to_numpy()[order] for c in ("x1", "y1", "x2", "y2")], axis=1).astype(np.float32)
    score = table.column("score").to_numpy()[order].astype(np.float32)
    if not (np.isfinite(xyxy).all() and np.isfinite(score).all()):
        raise InputError("non-finite box coordinates or scores", path)
    attributes = {"source": table.column("source").to_numpy()[order].astype(np.int32)}
    for name in table.column_names:
        if name not in BOX_COLUMNS and name != CLASS_NAME:
            attributes[name] = _column_to_numpy(table.column(name))[order]
    boxes = Detections(xyxy=xyxy.reshape(-1, 4), score=score, class_id=table.column("class_id").to_numpy()[order].astype(np.int64),
                       attributes=attributes)
    return FrameTable(frame[order], boxes, len(ids))


def frames_meta(path: Path | str, metadata: Mapping[bytes, bytes] | None) -> list[list[Any]]:
    """The checked ``sitesight.sliced.frames`` list of a file's schema metadata.

    Raises:
        InputError: absent, not UTF-8 JSON, or a row that is not ``[index, key, [w, h] | null, reason]``.
    """
    raw = (metadata or {}).get(FRAMES_KEY)
    if raw is None:
        raise InputError("box file lacks its sitesight.sliced.frames metadata", path)
    try:
        rows = load_json(path, what="box file frame list", text=raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("box file frame list is not UTF-8", path, "sitesight.sliced.frames") from None
    if not isinstance(rows, list):
        raise InputError("box file frame list must be a list", path, "sitesight.sliced.frames")
    for i, row in enumerate(rows):
        ok = isinstance(row, list) and len(row) == 4 and isinstance(row[0], int) and 0 <= row[0] < 1 << 40
        ok = ok and isinstance(row[1], str) and (row[2] is None or (
            isinstance(row[2], list) and len(row[2]) == 2 and all(isinstance(v, int) and 0 <= v <= 1 << 20 for v in row[2])))
        if not ok:
            raise InputError("expected [index, key, [width, height] or null, reason]", path, f"sitesight.sliced.frames[{i}]")
    return rows


def _json_meta(path: Path | str, metadata: Mapping[bytes, bytes], key: bytes, kind: type) -> Any:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        value = load_json(path, what=key.decode(), text=raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{key.decode()} is not UTF-8", path, key.decode()) from None
    if not isinstance(value, kind):
        raise InputError(f"{key.decode()} must be a JSON {kind.__name__}", path, key.decode())
    return value


def write_boxes(
    path: Path | str,
    table: FrameTable,
    frames: Sequence[Sequence[Any]],
    *,
    class_names: Sequence[str] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Path:
    """Write `table_to_arrow` of the arguments to ``path``, atomically (temporary ``.tmp-`` name, then rename)."""
    return atomic.write_parquet(table_to_arrow(table, frames, class_names=class_names, spec=spec), path)


def read_boxes(path: Path | str) -> StoredBoxes:
    """Read a box file written by `write_boxes`: frame list, boxes, class names and spec.

    Raises:
        InputError: unreadable, or not a box file (no frame list, missing box columns).
    """
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"unreadable box file ({str(exc)[:160]})", path) from None
    metadata = arrow.schema.metadata or {}
    frames = frames_meta(path, metadata)
    names = _json_meta(path, metadata, CLASS_NAMES_KEY, list)
    spec = _json_meta(path, metadata, SPEC_KEY, dict)
    table = table_from_arrow(arrow.replace_schema_metadata(None), [row[0] for row in frames], path=path)
    return StoredBoxes(frames, table, None if names is None else tuple(str(n) for n in names), spec)

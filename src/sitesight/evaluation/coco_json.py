"""Fast readers for the two COCO JSON files of an evaluation.

* `load_json`: ``orjson`` when installed (2-3x faster than ``json``), with the cyclic garbage
  collector paused while the objects are built (it otherwise rescans the growing heap over and
  over: half of the load time of a 50 MB file). The previous state is restored.
* `read_flat_results`: a results file (a list of flat ``{"image_id", "category_id", "bbox",
  "score", ...}`` objects, keys in any order, the shape every detector writes) parsed column-wise
  by Arrow's CSV reader after one byte translation: ``{`` starts a line, ``:`` and ``[`` separate
  fields, and ``]``, ``}``, quotes and line breaks become blanks. Each line is then ``key, value,
  key, value, ...`` with a list as a blank plus its items. The last object (read by ``json``) gives
  the layout; it returns None (the caller falls back to `load_json`) unless every line has the
  same keys at the same places, every id, score and bbox value parses as the type COCO requires,
  and nothing breaks a line or shifts a field (a nested object or list, a ``:``/``,`` in a string
  does); so a valid file is either read exactly as ``json`` reads it, or not read here at all.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["load_json", "paused_gc", "read_flat_results"]

_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
# '{' starts a line, ':' and '[' separate fields, the rest is blank (whitespace included).
_TRANSLATE = bytes.maketrans(b'{:[]}"\n\r\t', b"\n,,      ")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are built and read.

    JSON values hold no reference cycles, so reference counting frees them all; the collector
    would only rescan them, again and again, as they accumulate.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_json(raw: bytes) -> Any:
    """``json.loads(raw)``, faster (see the module notes). Raises ``ValueError`` on invalid JSON."""
    with paused_gc():
        try:
            import orjson
        except ImportError:  # optional speed-up: the standard library reads the same values
            return json.loads(raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(raw)  # NaN/Infinity (Python's json writes them) or a real error


def read_flat_results(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(image_id (N,) int64, category_id (N,) int64, bbox (N, 4) float64 xywh, score (N,) float64)``.

    None when the file is not a non-empty list of flat result objects (see the module notes).
    """
    lo, hi = _trimmed(raw)
    if raw[lo : lo + 1] != b"[" or raw[hi - 1 : hi] != b"]":
        return None
    text = raw.translate(_TRANSLATE)  # same length: positions in text are positions in raw
    first, last = text.find(b"\n", lo), text.rfind(b"\n", lo, hi)
    if first < 0 or raw[lo + 1 : first].strip():
        return None
    # The last object has no separator after it: json reads it, and it gives the line layout.
    tail = _result_object(raw[last : hi - 1])
    if tail is None:
        return None
    layout = {key: _width(value) for key, value in tail.items()}
    columns: dict[str, list[np.ndarray]] = {key: [] for key in _RESULT_KEYS}
    if last > first:
        import pyarrow as pa

        table = _read_lines(pa.py_buffer(text).slice(first + 1, last - first - 1), layout)
        if table is None:
            return None
        col = 0
        for key, width in layout.items():
            try:
                found = table.column(col).combine_chunks().dictionary.to_pylist()
            except UnicodeDecodeError:
                return None
            if not all(v.strip() == key for v in found):
                return None
            if key in columns:  # its values are the last fields of the key (after the bbox's '[')
                n = 4 if key == "bbox" else 1
                columns[key] = [_column_numpy(table.column(col + 1 + width - n + i)) for i in range(n)]
            col += 1 + width
    try:  # the last object's values: anything numpy cannot hold exactly goes to the checked slow path
        for key in _RESULT_KEYS:
            values = tail[key] if key == "bbox" else [tail[key]]
            parts = columns[key] or [np.zeros(0)] * len(values)
            columns[key] = [np.append(p, v) for p, v in zip(parts, values, strict=True)]
        bbox = np.column_stack(columns["bbox"]).astype(np.float64, copy=False)
        ids, cats = (columns[k][0].astype(np.int64, copy=False) for k in ("image_id", "category_id"))
    except (OverflowError, ValueError, TypeError):
        return None
    if not np.all(np.isfinite(bbox)):
        return None
    return ids, cats, bbox, columns["score"][0].astype(np.float64, copy=False)


def _column_numpy(column: Any) -> np.ndarray:
    """A numeric Arrow column as numpy, read from its buffers: pyarrow's own ``to_numpy`` imports
    pandas when it is installed (~0.5 s of a CLI run that never uses it)."""
    dtypes = {"double": np.float64, "int64": np.int64, "float": np.float32, "int32": np.int32}
    parts = []
    for chunk in column.chunks:
        dtype = dtypes.get(str(chunk.type))
        if dtype is None or chunk.null_count:
            return column.to_numpy()
        item = np.dtype(dtype).itemsize
        parts.append(np.frombuffer(chunk.buffers()[1], dtype, count=len(chunk), offset=chunk.offset * item))
    return np.concatenate(parts) if parts else np.zeros(0)


def _trimmed(raw: bytes) -> tuple[int, int]:
    """``raw[lo:hi]`` is ``raw.strip()``, without copying a large file."""
    lo, hi = 0, len(raw)
    while lo < hi and raw[lo : lo + 1].isspace():
        lo += 1
    while hi > lo and raw[hi - 1 : hi].isspace():
        hi -= 1
    return lo, hi


def _width(value: Any) -> int:
    """Fields a value takes on a translated line: 1, or for a list the blank before '[' plus its items."""
    return 1 + max(len(value), 1) if isinstance(value, list) else 1


def _result_object(text: bytes) -> dict[str, Any] | None:
    """One result object: the four keys with integer ids, a numeric score and a 4-number bbox; other
    keys only with a scalar or a flat list of numbers as value (as SAHI writes ``"segmentation": []``)."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not set(_RESULT_KEYS) <= set(obj):
        return None

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    ids_ok = all(isinstance(obj[k], int) and number(obj[k]) for k in ("image_id", "category_id"))
    bbox = obj["bbox"]
    bbox_ok = isinstance(bbox, list) and len(bbox) == 4 and all(map(number, bbox))
    extra_ok = all(
        isinstance(v, (int, float, str, type(None))) or (isinstance(v, list) and all(map(number, v)))
        for k, v in obj.items()
        if k not in _RESULT_KEYS
    )
    return obj if ids_ok and bbox_ok and number(obj["score"]) and extra_ok else None


def _read_lines(buffer: Any, layout: dict[str, int]) -> Any:
    """Arrow table of the translated lines: per key a dictionary-encoded key column, then its fields."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names: list[str] = []
    types: dict[str, Any] = {}
    for key, width in layout.items():
        names.append(key)
        types[key] = pa.dictionary(pa.int32(), pa.string())
        if key in ("image_id", "category_id", "score"):
            value_type = pa.int64() if key != "score" else pa.float64()
        else:
            value_type = pa.float64() if key == "bbox" else pa.binary()  # other keys: read, not used
        for i in range(width):
            name = f"{key}:{i}"
            names.append(name)
            types[name] = pa.binary() if key == "bbox" and i == 0 else value_type  # the bbox's '['
    names.append("rest")  # the blank after the separator
    types["rest"] = pa.binary()
    try:
        return pcsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pcsv.ParseOptions(delimiter=",", quote_char=False, double_quote=False, escape_char=False),
            convert_options=pcsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False, check_utf8=False),
        )
    except (pa.ArrowException, ValueError):
        return None

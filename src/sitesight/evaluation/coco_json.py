"""Fast readers for the two COCO JSON files of an evaluation.

* `load_json`: ``orjson`` when installed (2-3x faster than ``json``), with the cyclic garbage
  collector paused while the objects are built (it otherwise rescans the growing heap over and
  over: half of the load time of a 50 MB file). The previous state is restored.
* `read_flat_results`: a results file (a list of flat ``{"image_id", "category_id", "bbox",
  "score"}`` objects, keys in any order, the shape every detector writes) parsed column-wise by
  Arrow's CSV reader after one byte translation: ``{`` starts a line, ``:`` separates fields, and
  brackets, quotes and line breaks become blanks. Each line is then ``key, value, key, value, ...``
  with the bbox as four values. It returns None (the caller falls back to `load_json`) unless every
  line has exactly the four keys at the places the first object has them, every value parses as
  the type COCO requires, and the bracket counts say each bbox is a flat list; so a valid file is
  either read exactly as ``json`` reads it, or not read here at all.
"""

from __future__ import annotations

import gc
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["load_json", "paused_gc", "read_flat_results"]

_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
# '{' starts a line, ':' separates a key from its value, the rest is blank (whitespace included).
_TRANSLATE = bytes.maketrans(b'{:[]}"\n\r\t', b"\n,       ")


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
    body = raw.strip()
    if body[:1] != b"[" or body[-1:] != b"]":
        return None
    keys = _first_keys(body)
    if keys is None:
        return None
    table = _read_lines(body[1:-1].translate(_TRANSLATE) + b",", keys)
    # A '{' inside an object would have broken its line; one '[' per bbox keeps them flat lists.
    if table is None or table.num_rows == 0 or not body.count(b"[") == body.count(b"]") == table.num_rows + 1:
        return None
    columns = {}
    col = 0
    for key in keys:
        try:
            found = table.column(col).combine_chunks().dictionary.to_pylist()
        except UnicodeDecodeError:
            return None
        if not all(v.strip() == key for v in found):
            return None
        width = 4 if key == "bbox" else 1
        parts = [table.column(col + 1 + i).to_numpy() for i in range(width)]
        columns[key] = np.column_stack(parts) if width == 4 else parts[0]
        col += 1 + width
    bbox = np.ascontiguousarray(columns["bbox"], np.float64)
    if not np.all(np.isfinite(bbox)):
        return None
    return columns["image_id"], columns["category_id"], bbox, columns["score"]


def _first_keys(body: bytes) -> tuple[str, ...] | None:
    """Key order of the first object, if it has exactly the four result keys and a 4-number bbox."""
    end = body.find(b"}")
    try:
        first = json.loads(body[body.find(b"{") : end + 1])
    except ValueError:
        return None
    if not isinstance(first, dict) or set(first) != set(_RESULT_KEYS):
        return None
    bbox = first["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return None
    return tuple(first)


def _read_lines(text: bytes, keys: tuple[str, ...]) -> Any:
    """Arrow table of the translated lines: per key a dictionary-encoded key column, then its values."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names: list[str] = []
    types: dict[str, Any] = {}
    for key in keys:
        names.append(key)
        types[key] = pa.dictionary(pa.int32(), pa.string())
        value_type = pa.int64() if key in ("image_id", "category_id") else pa.float64()
        for i in range(4 if key == "bbox" else 1):
            names.append(f"{key}{i}")
            types[f"{key}{i}"] = value_type
    names.append("rest")  # the blank after the last comma
    types["rest"] = pa.string()
    try:
        return pcsv.read_csv(
            io.BytesIO(text),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
            parse_options=pcsv.ParseOptions(delimiter=",", quote_char=False, double_quote=False, escape_char=False),
            convert_options=pcsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False, check_utf8=False),
        )
    except (pa.ArrowException, ValueError):
        return None


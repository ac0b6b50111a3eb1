"""Validation at the boundary: numbers, sizes, nesting and text read from files outside.

Every reader takes numbers and structures from files through these, so that a hostile or broken
file ends in one `InputError` naming the file and the place, never in a raw Python exception, a
hang, a structure sized by a number from the file, or a NaN that travels on.

Example:
    >>> from sitesight.limits import number
    >>> number("12.5", "a.xml", "<box #0>")
    12.5
    >>> number("nan", "a.xml", "<box #0> xtl")                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sitesight.errors.InputError: a.xml (<box #0> xtl): expected a finite number, got 'nan'
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sitesight.errors import InputError

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_CLASSES",
    "MAX_COORD",
    "MAX_IMAGE_SIDE",
    "MAX_LINE_CHARS",
    "number",
    "integer",
    "image_side",
    "show",
    "load_json",
    "read_text",
]

MAX_COORD = 1e7  # pixels: far beyond any camera, far below float32 trouble
MAX_IMAGE_SIDE = 1 << 20  # pixels per side of a declared image size
MAX_CLASSES = 100_000  # class ids / names a dataset may declare or use
MAX_LINE_CHARS = 1 << 20  # one label line / CSV row
MAX_CELL_CHARS = 1 << 16  # one CSV cell / one name
_MAX_INT = 1 << 62  # ids: inside int64 with room


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages (a 100 MB name is never echoed)."""
    text = repr(value) if not isinstance(value, str) or len(value) <= 4 * limit else repr(value[: 4 * limit])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(value: Any, path: Path | str | None, where: str, *, lo: float = -MAX_COORD, hi: float = MAX_COORD) -> float:
    """A finite number within ``[lo, hi]`` from a JSON value or a text attribute.

    Numeric strings are accepted (some exporters write them); booleans and None are not.

    Raises:
        InputError: not a number, not finite, or out of range (file and ``where`` named).
    """
    if isinstance(value, bool) or value is None:
        raise InputError(f"expected a number, got {show(value)}", path, where)
    if isinstance(value, str) and len(value) > 64:
        raise InputError(f"expected a number, got a {len(value)}-character text", path, where)
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"expected a number, got {show(value)}", path, where) from None
    if not math.isfinite(result):
        raise InputError(f"expected a finite number, got {show(value)}", path, where)
    if not lo <= result <= hi:
        raise InputError(f"number {show(value)} is outside [{lo:g}, {hi:g}]", path, where)
    return result


def integer(value: Any, path: Path | str | None, where: str, *, lo: int = -_MAX_INT, hi: int = _MAX_INT) -> int:
    """An integer within ``[lo, hi]`` (``3.0`` and ``"3"`` accepted; ``3.5``, ``nan``, 5,000 digits not)."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"expected an integer, got {show(value)}", path, where)
    if isinstance(value, int):
        result = value
    else:
        if isinstance(value, str):
            value = value.strip()
            if len(value) > 24:
                raise InputError(f"expected an integer, got a {len(value)}-character text", path, where)
            try:
                result = int(value)
            except ValueError:
                result = None
            if result is None:
                try:
                    flt = float(value)
                except ValueError:
                    raise InputError(f"{show(value)} is not an integer", path, where) from None
                flt = number(flt, path, where, lo=-float(_MAX_INT), hi=float(_MAX_INT))
                if flt != int(flt):
                    raise InputError(f"expected an integer, got {show(value)}", path, where)
                result = int(flt)
        else:
            flt = number(value, path, where, lo=-float(_MAX_INT), hi=float(_MAX_INT))
            if flt != int(flt):
                raise InputError(f"expected an integer, got {show(value)}", path, where)
            result = int(flt)
    if not lo <= result <= hi:
        raise InputError(f"integer {show(result)} is outside [{lo}, {hi}]", path, where)
    return result


def image_side(value: Any, path: Path | str | None, where: str, *, allow_zero: bool = False) -> int:
    """An image width or height: an integer in ``1..MAX_IMAGE_SIDE`` (``0`` too when allowed: unknown)."""
    side = number(value, path, where, lo=0.0, hi=float(MAX_IMAGE_SIDE))
    if side != int(side):
        raise InputError(f"expected a whole number of pixels, got {show(value)}", path, where)
    if side == 0 and not allow_zero:
        raise InputError("image size must be at least 1 pixel, got 0", path, where)
    return int(side)


def read_text(path: Path | str, *, what: str = "file") -> str:
    """A UTF-8 text file (BOM allowed), with every read failure as one `InputError`."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path) from None
    except IsADirectoryError:
        raise InputError(f"is a folder, expected a {what}", path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path) from None
    except (OSError, MemoryError) as exc:
        raise InputError(f"cannot read {what} ({getattr(exc, 'strerror', None) or 'too large'})", path) from None


def _decode(text: str, path: Path | str | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", path, f"line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise InputError("JSON nested too deep", path) from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise InputError(f"unreadable JSON value ({str(exc)[:80]})", path) from None


def load_json(path: Path | str, *, what: str = "JSON file", text: str | None = None) -> Any:
    """Decoded JSON of ``path`` (or of ``text`` read from it).

    Nesting deeper than Python's recursion limit (about 1,000) ends in an `InputError`, not a
    RecursionError; no reader walks decoded JSON recursively, so shallower nesting is harmless.

    Raises:
        InputError: unreadable, empty, malformed (line and column), too deep, or a number
            Python refuses (more than 4,300 digits).
    """
    if text is None:
        text = read_text(path, what=what)
    if not text.strip():
        raise InputError(f"empty file, expected {what}", path)
    return _decode(text, path)

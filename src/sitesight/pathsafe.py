"""Paths built from input data stay where they belong.

Names that come from files (a CVAT ``subset``, a task name, an image ``file_name``, a split) are
data, not trusted paths. Every output path built from them goes through `output_path`, which
refuses anything that would land outside the output folder: ``..`` that climbs out, absolute
paths, drive letters, NUL bytes, empty names and components longer than file systems allow.
Every *input* path a label file points to goes through `input_path`, which refuses paths outside
the dataset root unless the user passed an explicit flag (``allow_outside=True``; on the CLI,
``--allow-outside-root``), so that packaging a dataset never packs ``/etc/passwd``.

Example:
    >>> from sitesight.pathsafe import output_path
    >>> output_path("out", "images/train/a.jpg").as_posix()
    'out/images/train/a.jpg'
    >>> output_path("out", "../../x")                          # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sitesight.errors.InputError: ...outside the output folder...
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from sitesight.errors import InputError

__all__ = ["MAX_COMPONENT_BYTES", "output_path", "safe_component", "input_path", "is_inside"]

MAX_COMPONENT_BYTES = 255
_DRIVE = re.compile(r"^[A-Za-z]:")


def _show(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def _parts(name: str, what: str, source: Path | str | None) -> list[str]:
    if not isinstance(name, str):
        raise InputError(f"{what} must be text, got {type(name).__name__}", source)
    if "\x00" in name:
        raise InputError(f"{what} {_show(name)} contains a NUL byte", source)
    text = name.replace("\\", "/")
    if not text.strip() or text.startswith("/") or _DRIVE.match(text):
        reason = "is empty" if not text.strip() else "is an absolute path"
        raise InputError(f"{what} {_show(name)} {reason}; it would be written outside the output folder", source)
    parts: list[str] = []
    for part in PurePosixPath(text).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InputError(f"{what} {_show(name)} climbs outside the output folder", source)
            parts.pop()
            continue
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise InputError(f"{what} {_show(name)} has a path component over {MAX_COMPONENT_BYTES} bytes", source)
        parts.append(part)
    if not parts:
        raise InputError(f"{what} {_show(name)} names no file inside the output folder", source)
    return parts


def output_path(root: Path | str, name: str, *, what: str = "name", source: Path | str | None = None) -> Path:
    """``root / name`` for a relative ``name`` read from data, guaranteed to stay inside ``root``.

    ``name`` may hold sub-folders (``train/a.jpg``) and ``..`` that stays inside. Symlinks already
    inside ``root`` that point out are caught too (the resolved parent must lie inside ``root``).

    Args:
        root: the output folder.
        name: the relative path taken from input data.
        what: what ``name`` is, for the message (``"subset"``, ``"image file_name"``).
        source: the input file ``name`` came from, named in the message.

    Raises:
        InputError: ``name`` is absolute, empty, holds a NUL byte or an over-long component, or
            would land outside ``root``.
    """
    root = Path(root)
    path = root.joinpath(*_parts(name, what, source))
    real_root = root.resolve()
    real_parent = path.parent.resolve()
    if real_parent != real_root and not real_parent.is_relative_to(real_root):
        raise InputError(f"{what} {_show(name)} resolves outside the output folder (through a link)", source)
    return path


def safe_component(name: str, *, what: str = "name", source: Path | str | None = None) -> str:
    """``name`` as one path component (a split, subset or task name used as a folder or file stem).

    Raises:
        InputError: ``name`` has a separator, is ``.``/``..``, empty, holds NUL or is over-long.
    """
    parts = _parts(name, what, source)
    if len(parts) != 1 or "/" in name.replace("\\", "/") or name in (".", ".."):
        raise InputError(f"{what} {_show(name)} must be a plain name without '/' or '..'", source)
    return parts[0]


def is_inside(path: Path | str, root: Path | str) -> bool:
    """True when ``path`` (links resolved) lies inside ``root`` (links resolved)."""
    real, real_root = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == real_root or real.is_relative_to(real_root)


def input_path(
    root: Path | str, path: Path | str, *, allow_outside: bool = False, what: str = "input file", source: Path | str | None = None
) -> Path:
    """``path`` (relative to ``root`` or absolute) after checking it lies inside the dataset ``root``.

    Args:
        root: the dataset root.
        path: a path read from a label file, a list file or a manifest.
        allow_outside: the user's explicit consent to read outside ``root``.

    Raises:
        InputError: ``path`` lies outside ``root`` and ``allow_outside`` is False.
    """
    root = Path(root)
    full = Path(path) if Path(path).is_absolute() else root / path
    if "\x00" in str(path):
        raise InputError(f"{what} {_show(str(path))} contains a NUL byte", source)
    if not allow_outside and not is_inside(full, root):
        raise InputError(
            f"{what} {_show(str(path))} lies outside the dataset root {str(root)[:120]}; "
            "pass --allow-outside-root (allow_outside=True) to read it anyway",
            source,
        )
    return full

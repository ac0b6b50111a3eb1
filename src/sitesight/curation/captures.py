"""Which camera took a frame and when: from `Sample` fields, the file name, or the file's mtime.

Curation groups and orders frames by camera and time. The information is taken, in order, from:

1. the `Sample`'s ``camera_id`` / ``timestamp`` fields when they are set;
2. the file name, matched (``re.search`` on the name without folder) against a regex with the
   named groups ``camera`` and/or ``ts``. The default `CAPTURE_NAME_PATTERN` reads names such as
   ``cam03_20240512T081500.jpg``, ``cam03-20240512_081500_250.jpg`` or ``gate2_1715501700.jpg``.
   ``ts`` may be ``YYYYmmdd[T_-]HHMMSS`` with optional ``[._]fff`` milliseconds (read as UTC), or
   epoch seconds (10 digits) / milliseconds (13 digits);
3. fallbacks: the camera is the name of the folder holding the file, the timestamp is the file's
   modification time (``use_mtime=True``) or ``None``.

Example:
    >>> parse_capture_name("cam03_20240512T081500.jpg")
    ('cam03', 1715501700.0)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sitesight.dataset import Dataset, Sample
from sitesight.errors import InputError
from sitesight.images import IMAGE_SUFFIXES, list_image_files

__all__ = [
    "CAPTURE_NAME_PATTERN",
    "Capture",
    "parse_capture_name",
    "capture_from_path",
    "captures_from_dataset",
    "list_captures",
]

CAPTURE_NAME_PATTERN = r"^(?P<camera>.+?)[_-](?P<ts>\d{8}[T_-]?\d{6}(?:[._]\d{1,6})?|\d{13}|\d{10})(?:\D|$)"


_DATETIME = re.compile(r"^(\d{8})[T_-]?(\d{6})(?:[._](\d{1,6}))?$")


@dataclass(frozen=True)
class Capture:
    """One frame on disk with its camera and time.

    Args:
        path: the image file.
        camera_id: camera name; ``""`` when nothing identifies it.
        timestamp: seconds since the epoch (UTC), ``None`` when unknown.
        index: position in the input list (stable tie-breaker and link back to a `Dataset`).
    """

    path: Path
    camera_id: str
    timestamp: float | None
    index: int = 0


def _parse_ts(text: str) -> float | None:
    match = _DATETIME.match(text)
    if match:
        try:
            dt = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        frac = match.group(3)
        return dt.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)
    if text.isdigit() and len(text) in (10, 13):
        return int(text) / (1000.0 if len(text) == 13 else 1.0)
    return None


def parse_capture_name(name: str, pattern: str = CAPTURE_NAME_PATTERN) -> tuple[str | None, float | None]:
    """``(camera_id, timestamp)`` parsed from a file name; ``None`` for what the pattern does not give.

    Args:
        name: a file name or path (only the last component is matched).
        pattern: regex with optional named groups ``camera`` and ``ts``.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"invalid capture name pattern {pattern!r}: {exc}") from None
    match = regex.search(Path(name).name)
    if not match:
        return None, None
    groups = match.groupdict()
    camera = groups.get("camera") or None
    ts = groups.get("ts")
    return camera, (_parse_ts(ts) if ts else None)


def capture_from_path(
    path: Path | str,
    *,
    camera_id: str | None = None,
    timestamp: float | None = None,
    pattern: str | None = CAPTURE_NAME_PATTERN,
    use_mtime: bool = True,
    index: int = 0,
) -> Capture:
    """A `Capture` for one file; given ``camera_id``/``timestamp`` win over the name and fallbacks."""
    path = Path(path)
    cam, ts = parse_capture_name(path.name, pattern) if pattern else (None, None)
    cam = camera_id if camera_id is not None else cam
    ts = timestamp if timestamp is not None else ts
    if cam is None:
        cam = path.parent.name
    if ts is None and use_mtime:
        try:
            ts = path.stat().st_mtime
        except OSError:
            ts = None
    return Capture(path=path, camera_id=str(cam), timestamp=ts, index=index)


def captures_from_dataset(
    dataset: Dataset, *, pattern: str | None = CAPTURE_NAME_PATTERN, use_mtime: bool = True
) -> list[Capture]:
    """One `Capture` per sample, in sample order, using `Sample` fields first (see module doc)."""
    return [_sample_capture(dataset, s, i, pattern, use_mtime) for i, s in enumerate(dataset.samples)]


def _sample_capture(dataset: Dataset, sample: Sample, index: int, pattern: str | None, use_mtime: bool) -> Capture:
    return capture_from_path(
        dataset.image_path(sample),
        camera_id=sample.camera_id,
        timestamp=sample.timestamp,
        pattern=pattern,
        use_mtime=use_mtime,
        index=index,
    )


def list_captures(
    sources: Iterable[Path | str],
    *,
    pattern: str | None = CAPTURE_NAME_PATTERN,
    use_mtime: bool = True,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> list[Capture]:
    """Captures for image files and folders (searched recursively), sorted by path.

    Raises:
        InputError: a source does not exist.
    """
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            files.extend(list_image_files(source, suffixes))  # dangling links too: skipped later, with their reason
        elif source.is_file() or source.is_symlink():
            files.append(source)
        else:
            raise InputError("no such file or folder", source)
    files = sorted(dict.fromkeys(files))
    return [capture_from_path(p, pattern=pattern, use_mtime=use_mtime, index=i) for i, p in enumerate(files)]

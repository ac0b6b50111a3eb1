"""Time-based sampling of CCTV captures: one frame per N seconds per camera, cameras interleaved.

Per camera, in time order, a frame is taken when at least ``every_s`` seconds have passed since the
last frame taken (the first frame is always taken). Frames listed in ``exclude_paths`` (a bare file name
matches in any folder, a path with folders matches that file) or whose timestamp lies within ``tolerance_s`` of one in
``exclude_timestamps`` (e.g. frames already labelled) are never taken. The result interleaves the
cameras round-robin (first pick of every camera, then the second of every camera, ...), so that
cutting it at ``max_frames`` leaves every camera an equal share.

Example:
    >>> picks = sample_by_time(list_captures(["captures/"]), every_s=60)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from sitesight.curation.captures import Capture
from sitesight.errors import InputError

__all__ = ["sample_by_time", "sample_frames", "read_exclusions"]


def sample_by_time(
    captures: Sequence[Capture],
    *,
    every_s: float,
    exclude_paths: Iterable[Path | str] = (),
    exclude_timestamps: Iterable[float] = (),
    tolerance_s: float = 0.5,
    max_frames: int | None = None,
) -> list[Capture]:
    """Pick one frame per ``every_s`` seconds per camera (see module doc); `sample_frames` without a check."""
    return sample_frames(captures, every_s=every_s, exclude_paths=exclude_paths, exclude_timestamps=exclude_timestamps,
                         tolerance_s=tolerance_s, max_frames=max_frames)[0]


def sample_frames(
    captures: Sequence[Capture],
    *,
    every_s: float,
    exclude_paths: Iterable[Path | str] = (),
    exclude_timestamps: Iterable[float] = (),
    tolerance_s: float = 0.5,
    max_frames: int | None = None,
    check: Callable[[Path], str | None] | None = None,
) -> tuple[list[Capture], list[tuple[Path, str]]]:
    """Pick one frame per ``every_s`` seconds per camera (see module doc); ``(picks, skipped)``.

    Args:
        captures: frames with camera and time (`sitesight.curation.captures.list_captures`).
        every_s: minimum spacing in seconds between two picks of one camera (0 takes every frame).
        exclude_paths: frames never to pick (paths or bare file names).
        exclude_timestamps: seconds since the epoch never to pick, any camera.
        tolerance_s: how close a timestamp must be to an excluded one to count as it.
        max_frames: cut the interleaved result to this many frames.
        check: asked about a frame before it is picked (e.g. `sitesight.images.frame_problem`, a header
            read); a frame it names a reason for is passed over, so the camera's next frame can be
            picked instead, and listed in ``skipped`` as ``(path, reason)``.

    Returns:
        The picked captures, cameras interleaved (frames without a timestamp are not picked), and the
        frames ``check`` turned down.
    """
    if every_s < 0:
        raise InputError(f"sampling interval must be >= 0 seconds, got {every_s}")
    entries = [Path(p) for p in exclude_paths]
    excluded_names = {p.name for p in entries if p.parent == Path(".")}  # bare names match any folder
    excluded_full = {p.resolve() for p in entries if p.parent != Path(".")}
    stamps = np.sort(np.asarray(list(exclude_timestamps), np.float64))

    def is_excluded(c: Capture) -> bool:
        if c.path.name in excluded_names or (excluded_full and c.path.resolve() in excluded_full):
            return True
        if stamps.size and c.timestamp is not None:
            j = np.searchsorted(stamps, c.timestamp)
            near = [stamps[k] for k in (j - 1, j) if 0 <= k < stamps.size]
            return any(abs(s - c.timestamp) <= tolerance_s for s in near)
        return False

    by_camera: dict[str, list[Capture]] = {}
    skipped: list[tuple[Path, str]] = []
    for c in captures:
        if c.timestamp is not None:
            by_camera.setdefault(c.camera_id, []).append(c)
        elif check is not None and (problem := check(c.path)) is not None:  # e.g. a dangling link: no time, and a reason
            skipped.append((c.path, problem))
    picks: list[list[Capture]] = []
    for camera in sorted(by_camera):
        frames = sorted(by_camera[camera], key=lambda c: (c.timestamp, str(c.path)))
        chosen: list[Capture] = []
        for c in frames:
            if is_excluded(c):
                continue
            if not chosen or c.timestamp - chosen[-1].timestamp >= every_s:  # type: ignore[operator]
                problem = check(c.path) if check is not None else None
                if problem is None:
                    chosen.append(c)
                else:
                    skipped.append((c.path, problem))
        picks.append(chosen)
    out = [cam[k] for k in range(max((len(p) for p in picks), default=0)) for cam in picks if k < len(cam)]
    return (out if max_frames is None else out[:max_frames]), skipped


def read_exclusions(path: Path | str) -> tuple[list[str], list[float]]:
    """Read an exclusion list: one image path / file name or one epoch timestamp per line (``#`` comments).

    Returns:
        ``(paths, timestamps)``.

    Raises:
        InputError: the file cannot be read.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read exclusion list: {exc}", path) from None
    paths: list[str] = []
    stamps: list[float] = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            stamp = float(text)
        except ValueError:
            paths.append(text)
            continue
        if not math.isfinite(stamp):
            raise InputError(f"timestamp {text[:40]!r} is not a finite number", path, f"line {n}")
        stamps.append(stamp)
    return paths, stamps

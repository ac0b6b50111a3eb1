"""Frame sources: image files, folders, globs and video files (every N-th frame).

A frame is named by a *key*: the image path as given (resolved to an absolute path), or
``"<video path>#frame=<n>"`` for frame ``n`` of a video. Keys are what a run's manifest lists,
so a resumed run finds the same frames in the same order.

Example:
    >>> from sitesight.sliced.frames import list_frames
    >>> refs = list_frames(["captures/", "clip.mp4"], video_step=25)  # doctest: +SKIP
    >>> for ref, rgb, error in iter_frames(refs):  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.errors import InputError
from sitesight.images import read_frame_rgb

__all__ = ["FrameRef", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "list_frames", "read_frame", "iter_frames"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class FrameRef:
    """One frame to read.

    Args:
        path: the image or video file.
        video_frame: frame number inside a video; ``None`` for an image file.
    """

    path: Path
    video_frame: int | None = None

    @property
    def key(self) -> str:
        """Stable name used in manifests and exports."""
        return str(self.path) if self.video_frame is None else f"{self.path}#frame={self.video_frame}"

    @classmethod
    def from_key(cls, key: str) -> FrameRef:
        """Inverse of `key`."""
        path, sep, frame = key.rpartition("#frame=")
        if sep and frame.isdigit():
            return cls(Path(path), int(frame))
        return cls(Path(key))


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _is_listed(path: Path) -> bool:
    """A frame file of a folder or glob: a file, or a link to one that is gone (listed, then skipped
    with its reason, rather than dropped without a word)."""
    if not (_is_image(path) or _is_video(path)):
        return False
    return path.is_file() or (path.is_symlink() and not path.exists())


def _video_refs(path: Path, step: int) -> list[FrameRef]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError("cannot open video", path)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        raise InputError("video reports no frames", path)
    return [FrameRef(path, n) for n in range(0, count, step)]


def list_frames(inputs: Sequence[str | Path], *, video_step: int = 1) -> list[FrameRef]:
    """Expand files, folders (recursively, sorted), glob patterns and videos into frame refs.

    Args:
        inputs: image files, video files, folders or glob patterns, in the order wanted.
        video_step: keep every ``video_step``-th frame of each video (1 keeps all).

    Returns:
        Frame refs in input order, duplicates removed; folders contribute images and videos.

    Raises:
        InputError: an input matches nothing, or a video cannot be opened.
    """
    if video_step < 1:
        raise InputError(f"video_step must be >= 1, got {video_step}")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_listed(p))
            files.extend(found)
        elif path.is_file() or path.is_symlink():
            files.append(path)
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            matches = [p for p in matches if _is_listed(p)]
            if not matches:
                raise InputError("glob matches no image or video", item)
            files.extend(matches)
        else:
            raise InputError("no such file, folder or glob", item)
    refs: list[FrameRef] = []
    seen: set[str] = set()
    for path in files:
        path = path.resolve() if path.exists() else path.absolute()  # a dangling link keeps its own name
        for ref in _video_refs(path, video_step) if _is_video(path) and path.exists() else [FrameRef(path)]:
            if ref.key not in seen:
                seen.add(ref.key)
                refs.append(ref)
    return refs


def read_frame(ref: FrameRef) -> np.ndarray:
    """Decode one frame fully as RGB uint8 ``(H, W, 3)``.

    Raises:
        InputError: unreadable, truncated or missing image; video frame past the end.
    """
    if ref.video_frame is not None:
        frame = _read_video_frames(ref.path, [ref.video_frame])[0]
        if isinstance(frame, InputError):
            raise frame
        return frame
    return read_frame_rgb(ref.path)  # as displayed (EXIF applied), the frame labels refer to


def _read_video_frames(path: Path, frame_numbers: Sequence[int]) -> list[np.ndarray | InputError]:
    """Frames of one video in increasing order, grabbing (not decoding) the frames between."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    out: list[np.ndarray | InputError] = []
    try:
        if not capture.isOpened():
            return [InputError("cannot open video", path) for _ in frame_numbers]
        position = 0  # grab from the start: seeking is frame-inexact for many codecs
        for n in sorted(frame_numbers):
            ok = True
            while ok and position < n:
                ok = capture.grab()
                position += 1
            ok, bgr = capture.read() if ok else (False, None)
            position += 1
            if not ok or bgr is None:
                out.append(InputError("video frame past the end or undecodable", path, f"frame {n}"))
            else:
                out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    finally:
        capture.release()
    return out


def iter_frames(refs: Sequence[FrameRef]) -> Iterator[tuple[FrameRef, np.ndarray | None, InputError | None]]:
    """Yield ``(ref, rgb, None)`` or ``(ref, None, error)`` for each ref, in order.

    Consecutive frames of one video are decoded in a single pass. Errors are yielded, not raised,
    so that batch work can log them and go on.
    """
    i = 0
    while i < len(refs):
        ref = refs[i]
        if ref.video_frame is None or not ref.path.exists():
            try:
                yield ref, read_frame(ref), None
            except InputError as exc:
                yield ref, None, exc
            i += 1
            continue
        j = i
        while j < len(refs) and refs[j].path == ref.path and refs[j].video_frame is not None:
            if j > i and refs[j].video_frame <= refs[j - 1].video_frame:  # type: ignore[operator]
                break
            j += 1
        group = refs[i:j]
        for r, result in zip(group, _read_video_frames(ref.path, [g.video_frame for g in group]), strict=True):
            if isinstance(result, InputError):
                yield r, None, result
            else:
                yield r, result, None
        i = j

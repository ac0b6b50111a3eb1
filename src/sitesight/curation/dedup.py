"""Frozen-frame dedup for CCTV captures: drop frames that look like the last frame kept.

A frozen camera repeats one picture for hours, with only its burned-in clock changing. Per camera,
in time order, each frame is compared with the **last frame kept** (not the previous frame, so a
slow drift still yields a new frame once it has drifted far enough) by a 64-bit perceptual hash;
frames within ``max_distance`` bits are dropped. Nothing is deleted here: `remove_dropped` does
that, only when called.

The hash is imagehash's DCT ``phash`` (32x32 grey, 2-D DCT-II, top-left 8x8 against their median)
computed on a JPEG draft-mode decode (the decoder's own 1/2, 1/4 or 1/8 scaling, ``Image.draft``),
which is what makes it fast: a 1080p JPEG decodes at 240x135. Rectangles listed in
``ignore_regions`` (e.g. the timestamp overlay) are filled with the mean grey of the rest of the
frame before hashing, so the clock never makes two frozen frames differ.

Example:
    >>> result = dedup_frames(["cam1_20240101T000000.jpg", ...])  # doctest: +SKIP
    >>> result.dropped_paths  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sitesight import atomic
from sitesight.curation.captures import CAPTURE_NAME_PATTERN, Capture, capture_from_path
from sitesight.errors import InputError
from sitesight.images import REFUSED_FRAME_SUFFIXES, grey8

__all__ = [
    "Region",
    "phash_array",
    "phash_file",
    "hamming",
    "DedupDecision",
    "DedupResult",
    "dedup_frames",
    "remove_dropped",
]

log = logging.getLogger(__name__)

Region = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` rectangle in the full frame: pixels, or fractions of the frame when all four are <= 1."""

_HASH_SIZE = 8
_IMG_SIZE = 32  # imagehash's hash_size * highfreq_factor


def _dct_matrix(n: int) -> np.ndarray:
    # Unnormalised DCT-II as scipy.fftpack.dct(type=2): y[k] = 2 * sum_n x[n] cos(pi k (2n + 1) / 2N).
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT_LOW = _dct_matrix(_IMG_SIZE)[:_HASH_SIZE]  # only the 8 lowest frequencies are ever used
_BITS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def _region_px(region: Region, image_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in region)
    w, h = image_wh
    if max(x1, y1, x2, y2) <= 1.0:
        x1, x2, y1, y2 = x1 * w, x2 * w, y1 * h, y2 * h
    return int(np.floor(x1)), int(np.floor(y1)), int(np.ceil(x2)), int(np.ceil(y2))


def phash_array(grey: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a ``(32, 32)`` grey image (any real dtype), imagehash's bit order."""
    low = _DCT_LOW @ np.asarray(grey, np.float64) @ _DCT_LOW.T
    bits = (low > np.median(low)).reshape(-1)
    return int(_BITS[bits].sum(dtype=np.uint64))


def _masked(image: Image.Image, regions: Sequence[Region], full_wh: tuple[int, int]) -> Image.Image:
    if not regions:
        return image
    grey = np.array(image, dtype=np.uint8)  # (h, w) uint8, a writable copy
    sx, sy = image.width / full_wh[0], image.height / full_wh[1]
    mask = np.zeros(grey.shape, bool)
    for region in regions:
        x1, y1, x2, y2 = _region_px(region, full_wh)
        mask[max(0, int(y1 * sy)) : int(np.ceil(y2 * sy)), max(0, int(x1 * sx)) : int(np.ceil(x2 * sx))] = True
    if mask.all():
        return image
    grey[mask] = np.round(grey[~mask].astype(np.float32).mean())
    return Image.fromarray(grey, mode="L")


def phash_file(path: Path | str, *, ignore_regions: Sequence[Region] = (), draft: bool = True) -> int:
    """Perceptual hash of an image file, decoded at reduced size when the format allows (JPEG).

    Args:
        path: image file.
        ignore_regions: rectangles of the full frame (px, or fractions when all values <= 1) to blank.
        draft: use the JPEG decoder's reduced-size decode (``Image.draft('L', (w/8, h/8))``).

    Returns:
        The 64-bit hash as a Python int.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    if os.path.islink(path) and not os.path.exists(path):
        raise InputError("dangling symbolic link (its target does not exist)", path)
    refused = REFUSED_FRAME_SUFFIXES.get(Path(path).suffix.lower())
    if refused:
        raise InputError(refused, path)
    data = None
    try:
        # One read of the whole file, handed to the decoder in one call (not 64 KiB chunks, each a
        # trip back to Python under the GIL); the decoder itself runs without the GIL.
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            if hasattr(image, "decodermaxblock"):
                image.decodermaxblock = max(len(data), 65536)
            full_wh = image.size
            if draft:
                image.draft("L", (max(1, full_wh[0] // 8), max(1, full_wh[1] // 8)))
            grey = grey8(image)  # (h, w) 8-bit grey; 16-bit scaled, bombs refused before decoding
    except InputError as exc:
        raise InputError(str(exc), path) from None
    except MemoryError:
        raise InputError("image too large to decode in memory", path) from None
    except Image.DecompressionBombError as exc:  # worded as every other batch command words it
        raise InputError(f"decompression-bomb limit: {str(exc)[:120]}", path) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, IndexError,
            TypeError, ZeroDivisionError, struct.error) as exc:  # fmt: skip
        reason = "empty file" if data == b"" else f"cannot read image: {str(exc)[:120]}"
        raise InputError(reason, path) from None
    grey = _masked(grey, ignore_regions, full_wh)
    small = grey.resize((_IMG_SIZE, _IMG_SIZE), Image.Resampling.LANCZOS)
    return phash_array(np.asarray(small))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return int(a ^ b).bit_count()


@dataclass(frozen=True)
class DedupDecision:
    """What happened to one frame.

    Args:
        path: the frame.
        camera_id: its camera.
        timestamp: seconds since the epoch, or ``None``.
        kept: False when it duplicates ``reference``.
        reference: the last kept frame it was compared with (``""`` for a camera's first frame).
        distance: Hamming distance to ``reference`` (-1 for a camera's first frame).
        phash: the frame's hash, 16 hex digits.
    """

    path: str
    camera_id: str
    timestamp: float | None
    kept: bool
    reference: str
    distance: int
    phash: str


@dataclass(frozen=True)
class DedupResult:
    """Decisions in processing order (camera, then time) and the frames that could not be read."""

    decisions: tuple[DedupDecision, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def kept_paths(self) -> list[Path]:
        return [Path(d.path) for d in self.decisions if d.kept]

    @property
    def dropped_paths(self) -> list[Path]:
        return [Path(d.path) for d in self.decisions if not d.kept]

    def summary(self) -> dict[str, int]:
        """Counts: frames, kept, dropped, skipped (unreadable), cameras."""
        kept = sum(d.kept for d in self.decisions)
        return {
            "frames": len(self.decisions) + len(self.skipped),
            "kept": kept,
            "dropped": len(self.decisions) - kept,
            "skipped": len(self.skipped),
            "cameras": len({d.camera_id for d in self.decisions}),
        }

    def write_report(self, path: Path | str) -> Path:
        """Write every decision as CSV (``.csv``) or, for any other suffix, JSON with the summary."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(d) for d in self.decisions]
        if path.suffix.lower() == ".csv":
            with atomic.open_atomic(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(DedupDecision.__dataclass_fields__))
                writer.writeheader()
                writer.writerows(rows)
        else:
            payload = {"summary": self.summary(), "decisions": rows, "skipped": [list(s) for s in self.skipped]}
            atomic.write_text(path, json.dumps(payload, indent=1))
        return path


def dedup_frames(
    frames: Sequence[Path | str | Capture],
    *,
    max_distance: int = 4,
    ignore_regions: Sequence[Region] = (),
    pattern: str | None = CAPTURE_NAME_PATTERN,
    workers: int = 2,
    draft: bool = True,
    progress: Callable[[int], None] | None = None,
) -> DedupResult:
    """Drop frames whose hash is within ``max_distance`` bits of their camera's last kept frame.

    Args:
        frames: image paths (camera and time parsed as in `sitesight.curation.captures`) or `Capture` s.
        max_distance: largest Hamming distance (of 64 bits) that still counts as the same picture.
        ignore_regions: full-frame rectangles to blank before hashing (burned-in timestamp).
        pattern: file-name regex for camera and time, used for paths only.
        workers: hashing threads (the JPEG decoder releases the GIL).
        draft: reduced-size JPEG decode (see `phash_file`).
        progress: called with the number of frames just hashed, for progress bars.

    Returns:
        A `DedupResult`; unreadable frames are logged, listed in ``skipped`` and otherwise ignored.
    """
    captures = [
        f if isinstance(f, Capture) else capture_from_path(f, pattern=pattern, index=i) for i, f in enumerate(frames)
    ]

    def one(capture: Capture) -> int | str:
        try:
            return phash_file(capture.path, ignore_regions=ignore_regions, draft=draft)
        except InputError as exc:
            return str(exc)

    hashes: list[int | str] = []
    chunk = 64
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(captures), chunk):
            part = captures[start : start + chunk]
            hashes.extend(pool.map(one, part))
            if progress is not None:
                progress(len(part))
    skipped: list[tuple[str, str]] = []
    order = sorted(
        range(len(captures)),
        key=lambda i: (captures[i].camera_id, captures[i].timestamp is None, captures[i].timestamp or 0.0, str(captures[i].path)),
    )
    decisions: list[DedupDecision] = []
    last_kept: dict[str, tuple[int, str]] = {}
    for i in order:
        capture, value = captures[i], hashes[i]
        if isinstance(value, str):
            log.warning("skipped %s", value)
            skipped.append((str(capture.path), value))
            continue
        ref = last_kept.get(capture.camera_id)
        distance = -1 if ref is None else hamming(value, ref[0])
        kept = ref is None or distance > max_distance
        if kept:
            last_kept[capture.camera_id] = (value, str(capture.path))
        decisions.append(
            DedupDecision(
                path=str(capture.path),
                camera_id=capture.camera_id,
                timestamp=capture.timestamp,
                kept=kept,
                reference="" if ref is None else ref[1],
                distance=distance,
                phash=f"{value:016x}",
            )
        )
    return DedupResult(decisions=tuple(decisions), skipped=tuple(skipped))


def remove_dropped(result: DedupResult) -> int:
    """Delete the dropped frames from disk (only when the user asked); returns how many were removed."""
    removed = 0
    for path in result.dropped_paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            log.warning("already gone: %s", path)
    return removed

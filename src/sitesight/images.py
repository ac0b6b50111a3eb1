"""Image I/O: sizes from headers, RGB frames, reduced grey thumbnails.

EXIF orientation policy: every function here returns the image *as displayed*, i.e. after the
EXIF ``Orientation`` tag is applied (a phone photo stored 4000x3000 with orientation 6 is reported
as 3000x4000). Ultralytics, CVAT and labelImg label the displayed image, so boxes in every format
sitesight reads are in that frame. Pass ``exif_transpose=False`` to get the stored pixels instead.

Example:
    >>> from sitesight.images import read_image_wh
    >>> read_image_wh("frame.jpg")  # doctest: +SKIP
    (1920, 1080)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sitesight.errors import InputError

__all__ = ["IMAGE_MODES", "IMAGE_SUFFIXES", "place_image", "read_image_wh", "read_image_rgb", "read_image_gray_small", "exif_orientation"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif", ".jfif")

IMAGE_MODES = ("copy", "symlink", "hardlink", "none")

# EXIF orientations 5..8 swap width and height.
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


def _open(path: Path | str) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise InputError("image file not found", path) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"not a readable image ({exc})", path) from None


def exif_orientation(image: Image.Image) -> int:
    """EXIF orientation 1..8 of an opened image (1 when absent or unreadable)."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not stop a size read
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def read_image_wh(path: Path | str, *, exif_transpose: bool = True) -> tuple[int, int]:
    """``(width, height)`` from the file header; no pixels are decoded.

    Args:
        path: image file.
        exif_transpose: report the displayed size (EXIF orientation applied).

    Raises:
        InputError: the file is missing or not an image.
    """
    with _open(path) as image:
        w, h = image.size
        if exif_transpose and exif_orientation(image) in _SWAPS_AXES:
            w, h = h, w
    return int(w), int(h)


def read_image_rgb(path: Path | str, *, exif_transpose: bool = True) -> np.ndarray:
    """The decoded image as ``(H, W, 3)`` uint8 RGB (EXIF orientation applied by default)."""
    with _open(path) as image:
        try:
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot decode image ({exc})", path) from None


def read_image_gray_small(path: Path | str, max_side: int = 64, *, exif_transpose: bool = False) -> np.ndarray:
    """A greyscale thumbnail whose longer side is at most ``max_side`` pixels, decoded cheaply.

    JPEGs are decoded in draft mode: libjpeg scales by 1/2, 1/4 or 1/8 while decoding (DCT
    scaling), so a 1080p frame costs a fraction of a full decode. The result is then resized with
    a box filter to fit ``max_side``. Other formats are decoded fully and then reduced.

    Args:
        path: image file.
        max_side: longest side of the result in pixels.
        exif_transpose: apply EXIF orientation (off by default: CCTV frames carry none and
            dedup compares frames of one camera with each other).

    Returns:
        ``(h, w)`` uint8 array with ``max(h, w) <= max_side``.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    with _open(path) as image:
        try:
            if image.format == "JPEG":
                image.draft("L", (max_side, max_side))
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            image = image.convert("L")
            w, h = image.size
            scale = max_side / max(w, h)
            if scale < 1:
                image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
            return np.asarray(image)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot decode image ({exc})", path) from None


def place_image(src: Path | str, dst: Path | str, mode: str = "copy") -> bool:
    """Put image ``src`` at ``dst`` by ``mode`` (``copy``, ``symlink``, ``hardlink`` or ``none``).

    ``hardlink`` falls back to a copy when the two paths lie on different file systems.

    Returns:
        True when a file was placed; False for ``none`` or a missing ``src`` (writers still
        write the labels; the caller decides whether that is worth a warning).
    """
    if mode not in IMAGE_MODES:
        raise ValueError(f"mode must be one of {IMAGE_MODES}, got {mode!r}")
    src, dst = Path(src), Path(dst)
    if mode == "none" or not src.is_file():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if mode == "symlink":
        dst.symlink_to(src.resolve())
    elif mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError:  # another file system (EXDEV) or no link support: a copy is the same file
            shutil.copy2(src, dst)
    else:
        shutil.copy2(src, dst)
    return True

"""Image I/O: sizes from headers, RGB frames, reduced grey thumbnails.

EXIF orientation policy: every function here returns the image *as displayed*, i.e. after the
EXIF ``Orientation`` tag is applied (a phone photo stored 4000x3000 with orientation 6 is reported
as 3000x4000). Ultralytics, CVAT and labelImg label the displayed image, so boxes in every format
sitesight reads are in that frame. Pass ``exif_transpose=False`` to get the stored pixels instead.

Hostile or odd files end in one `InputError` with the reason, never a raw exception: a header
declaring more than `MAX_PIXELS` pixels (a decompression bomb: a few bytes that decode to
gigabytes) is refused before any pixel is decoded; a truncated or unreadable file, a dangling
symbolic link, a 32-bit float image are refused with their reason. 16-bit images (``I;16``, ``I``)
are scaled to 8 bits (``v / 257``) instead of being clipped to white; CMYK (JPEG from print
workflows) is converted by Pillow's CMYK→RGB.

Example:
    >>> from sitesight.images import read_image_wh
    >>> read_image_wh("frame.jpg")  # doctest: +SKIP
    (1920, 1080)
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from struct import error as struct_error  # Pillow raises it for some corrupt headers

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sitesight.errors import InputError

__all__ = ["IMAGE_MODES", "IMAGE_SUFFIXES", "MAX_PIXELS", "grey8", "place_image", "read_image_wh", "read_image_rgb", "read_image_gray_small",
           "exif_orientation"]  # fmt: skip

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif", ".jfif")

IMAGE_MODES = ("copy", "symlink", "hardlink", "none")

# Frame formats a batch command lists (so that it names them) but skips with this reason instead of decoding.
REFUSED_FRAME_SUFFIXES = {".gif": "GIF is not a supported frame format (256-colour palette, maybe animated); convert it to PNG or JPEG"}

# EXIF orientations 5..8 swap width and height.
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


# 16384 x 16384 (an 8K frame is 33 Mpx): an RGB decode of this many pixels is already 800 MB.
MAX_PIXELS = 1 << 28


def _open(path: Path | str) -> Image.Image:
    """Open the header; refuse a dangling link, a non-image and a decompression bomb (not decoded)."""
    if os.path.islink(path) and not os.path.exists(path):
        raise InputError("dangling symbolic link (its target does not exist)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
            image = Image.open(path)
    except FileNotFoundError:
        raise InputError("image file not found", path) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"decompression-bomb limit: {str(exc)[:120]}", path) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = "empty file" if _is_empty(path) else f"not a readable image ({str(exc)[:120]})"
        raise InputError(reason, path) from None
    w, h = image.size
    if w * h > MAX_PIXELS:
        image.close()
        raise InputError(f"decompression-bomb limit: {w}x{h} pixels is over {MAX_PIXELS} (not decoded)", path)
    if w < 1 or h < 1:
        image.close()
        raise InputError(f"image has no pixels ({w}x{h})", path)
    return image


def _is_empty(path: Path | str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except (OSError, ValueError):  # ValueError: a NUL byte in a path read from data
        return False


def grey8(image: Image.Image) -> Image.Image:
    """8-bit grey (mode ``L``) of an opened image: 16-bit scaled (``v / 257``), never clipped to white.

    Raises:
        InputError: more than `MAX_PIXELS` pixels (checked before decoding).
        ValueError: a mode that has no 8-bit grey (32-bit float).
    """
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise InputError(f"decompression-bomb limit: {w}x{h} pixels is over {MAX_PIXELS} (not decoded)", getattr(image, "filename", None) or None)
    if image.mode == "L":
        return image.copy()
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_to_rgb(image)[:, :, 0])
    return image.convert("L")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of any Pillow mode; 16-bit scaled, not clipped; float refused."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"32-bit integer pixels outside 0..65535 (mode {mode})")
        grey = (values.astype(np.uint32) * 255 + 32767) // 65535  # round(v / 257): full 16-bit range to 0..255
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    if mode == "F":
        raise ValueError("unsupported image mode 'F' (32-bit float pixels)")
    return np.asarray(image.convert("RGB"))


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
            return _to_rgb(image)
        except MemoryError:
            raise InputError("image too large to decode in memory", path) from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct_error, ZeroDivisionError) as exc:
            raise InputError(f"cannot decode image ({str(exc)[:120]})", path) from None


def read_frame_rgb(path: Path | str, *, exif_transpose: bool = True) -> np.ndarray:
    """`read_image_rgb` for a batch command's frame: a refused frame format (GIF) is an `InputError` too."""
    refused = REFUSED_FRAME_SUFFIXES.get(Path(path).suffix.lower())
    if refused:
        raise InputError(refused, path)
    return read_image_rgb(path, exif_transpose=exif_transpose)


def skip_reason(exc: InputError) -> str:
    """The reason of an image's `InputError` without the path it starts with (the path is listed beside it)."""
    return str(exc).removeprefix(f"{exc.path}: ") if exc.path is not None else str(exc)


def frame_problem(path: Path | str, *, decode: bool = False) -> str | None:
    """Why a batch command skips this frame, or None: a refused format (GIF), a missing file or
    dangling link, an empty file, not an image, a decompression bomb; with ``decode`` also a
    truncated or undecodable image or an unsupported mode (the header alone does not show those)."""
    refused = REFUSED_FRAME_SUFFIXES.get(Path(path).suffix.lower())
    if refused:
        return refused
    try:
        read_image_rgb(path) if decode else read_image_wh(path)
    except InputError as exc:
        return skip_reason(exc)
    return None


def list_image_files(folder: Path | str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files below ``folder`` (recursively, sorted), dangling links included: a batch lists a
    link whose target is gone and skips it with its reason, rather than dropping it without a word."""
    allowed = {s.lower() for s in suffixes}
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in allowed and (p.is_file() or (p.is_symlink() and not p.exists())))  # fmt: skip


def split_readable(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Batch commands' triage: ``(readable paths, [(path, reason), ...])``, each image decoded once.

    A batch skips what it cannot read (`frame_problem`: refused format, missing, dangling link,
    empty, truncated, decompression bomb, unsupported mode) and names it at the end, instead of
    stopping at the first bad file.
    """
    good: list[Path] = []
    bad: list[tuple[Path, str]] = []
    for path in paths:
        problem = frame_problem(path, decode=True)
        if problem is None:
            good.append(path)
        else:
            bad.append((path, f"{path}: {problem}"))
    return good, bad


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
            image = Image.fromarray(_to_rgb(image)[:, :, 0]) if image.mode.startswith("I") else image.convert("L")
            w, h = image.size
            scale = max_side / max(w, h)
            if scale < 1:
                image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
            return np.asarray(image)
        except MemoryError:
            raise InputError("image too large to decode in memory", path) from None
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct_error, ZeroDivisionError) as exc:
            raise InputError(f"cannot decode image ({str(exc)[:120]})", path) from None


def place_image(
    src: Path | str, dst: Path | str, mode: str = "copy", *, root: Path | str | None = None, allow_outside: bool = False
) -> bool:
    """Put image ``src`` at ``dst`` by ``mode`` (``copy``, ``symlink``, ``hardlink`` or ``none``).

    ``hardlink`` falls back to a copy when the two paths lie on different file systems. With
    ``root`` (the dataset root), a ``src`` outside it (a label file naming ``../../etc/passwd``)
    is refused unless ``allow_outside``; ``dst`` must come from `sitesight.pathsafe.output_path`.

    Raises:
        InputError: ``src`` lies outside ``root`` and ``allow_outside`` is False.

    Returns:
        True when a file was placed; False for ``none`` or a missing ``src`` (writers still
        write the labels; the caller decides whether that is worth a warning).
    """
    if mode not in IMAGE_MODES:
        raise ValueError(f"mode must be one of {IMAGE_MODES}, got {mode!r}")
    src, dst = Path(src), Path(dst)
    if mode == "none" or not src.is_file():
        return False
    if root is not None:
        from sitesight.pathsafe import input_path

        input_path(root, src, allow_outside=allow_outside, what="image")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if mode == "symlink":
        dst.symlink_to(src.resolve())
    elif mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError:  # another file system (EXDEV) or no link support: a copy is the same file
            _copy(src, dst)
    else:
        _copy(src, dst)
    return True


def _copy(src: Path, dst: Path) -> None:
    from sitesight.atomic import atomic_path

    with atomic_path(dst) as tmp:  # a kill mid-copy never leaves half an image under its name
        shutil.copy2(src, tmp)

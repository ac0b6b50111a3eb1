"""Cut inspection images (and their defect masks) into tiles in the layout `train_anomaly` /
`predict_anomaly` read, keeping each tile's source group in its name.

High-resolution part images are inspected tile by tile. A tile is normal when its piece of the mask
holds no defect pixel (`sitesight.evaluation.anomaly.read_mask`: any colour), else a defect with its
mask tile beside it. Every tile is named ``<group>__<stem>_y<row>_x<col>.png``, so the hold-out can
keep a source part whole (``group_by="name:^(.+?)__"``): tiles of one image are near copies of each
other, and augmented copies of one part (``rotated_30_<part>``, ``hflipped_<part>``) are the same part.

Layout written under ``out``::

    good/<group>__<stem>_y0_x0.png            normal tiles
    defect/<group>__<stem>_y0_x1.png          tiles with defect pixels
    ground_truth/defect/<name>_mask.png       their masks (white = defect)

Example:
    >>> from sitesight.models.anomaly.tiles import source_group
    >>> source_group("rotated_30_thread_side_18", r"^(?:rotated_\\d+_|hflipped_)?(.+)$")
    'thread_side_18'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sitesight.errors import InputError
from sitesight.evaluation.anomaly import read_mask
from sitesight.images import read_image_rgb

__all__ = ["Tile", "source_group", "tile_images", "GROUP_SEPARATOR"]

GROUP_SEPARATOR = "__"


@dataclass(frozen=True)
class Tile:
    """One written tile: its file, the source group, whether it holds defect pixels, and how many."""

    path: Path
    group: str
    defect: bool
    defect_pixels: int


def source_group(stem: str, pattern: str | None = None) -> str:
    """The group of an image from its file stem: ``pattern``'s first group (or whole match), else the stem.

    Raises:
        InputError: a pattern that does not compile or does not match.
    """
    if pattern is None:
        return stem
    try:
        match = re.search(pattern, stem)
    except re.error as exc:
        raise InputError(f"invalid group pattern {pattern!r}: {exc}") from None
    if match is None:
        raise InputError(f"group pattern {pattern!r} does not match {stem!r}")
    return match.group(1) if match.re.groups else match.group(0)


def tile_images(
    images: Sequence[Path | str],
    masks: Sequence[Path | str | None],
    out: Path | str,
    *,
    tile: int = 128,
    group_pattern: str | None = None,
) -> list[Tile]:
    """Cut each image into non-overlapping ``tile x tile`` pieces (a partial last row/column is dropped).

    Args:
        images: image files.
        masks: the defect mask of each image (None: the image is normal throughout).
        out: output folder (layout in the module notes).
        tile: tile side in pixels.
        group_pattern: regex on the file stem whose first group names the source part (`source_group`).

    Returns:
        The tiles written, in image then row-major order.
    """
    if len(images) != len(masks):
        raise InputError(f"{len(images)} images but {len(masks)} masks")
    if tile < 8:
        raise InputError(f"tile must be at least 8 px, got {tile}")
    out = Path(out)
    for sub in ("good", "defect", "ground_truth/defect"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    written = []
    for image_path, mask_path in zip(images, masks, strict=True):
        image_path = Path(image_path)
        pixels = read_image_rgb(image_path)
        h, w = pixels.shape[:2]
        mask = np.zeros((h, w), bool) if mask_path is None else read_mask(mask_path, (h, w))
        group = source_group(image_path.stem, group_pattern)
        if GROUP_SEPARATOR in group:
            raise InputError(f"group {group!r} contains {GROUP_SEPARATOR!r}", image_path)
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                name = f"{group}{GROUP_SEPARATOR}{image_path.stem}_y{y // tile}_x{x // tile}"
                piece = mask[y : y + tile, x : x + tile]
                n_defect = int(piece.sum())
                folder = "defect" if n_defect else "good"
                path = out / folder / f"{name}.png"
                Image.fromarray(pixels[y : y + tile, x : x + tile]).save(path)
                if n_defect:
                    Image.fromarray(piece.astype(np.uint8) * 255).save(out / "ground_truth" / "defect" / f"{name}_mask.png")
                written.append(Tile(path, group, bool(n_defect), n_defect))
    return written

"""Tile a labelled set into slices for training on small objects (the training side of SAHI).

Each frame is cut on `sitesight.slice_grid`'s windows; each box is clipped to every window it
overlaps and kept when the clipped area is at least ``min_area_ratio`` of its full area, which is
the rule of SAHI's ``slice_coco`` (``process_coco_annotations``), so tiles made here carry the same
labels as SAHI's for the same grid.

Example:
    >>> tiles = tile_detections(gt, slice_grid((1920, 1080)), min_area_ratio=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sitesight.boxes import box_area
from sitesight.dataset import Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.images import read_frame_rgb, skip_reason

__all__ = ["tile_detections", "tile_dataset"]

log = logging.getLogger(__name__)


def tile_detections(gt: Detections, tiles_xyxy: np.ndarray, *, min_area_ratio: float = 0.1) -> list[Detections]:
    """Boxes of one frame as seen by each tile, in tile pixels.

    Args:
        gt: boxes in frame pixels.
        tiles_xyxy: ``(K, 4)`` int windows in frame pixels (e.g. from `sitesight.slice_grid`).
        min_area_ratio: keep a box in a tile when ``clipped area / full area >= min_area_ratio``;
            boxes of zero area are never kept.

    Returns:
        ``K`` `Detections`, each shifted to its tile's origin and clipped to ``[0, tile w] x [0, tile h]``.
    """
    tiles = np.asarray(tiles_xyxy, np.float32).reshape(-1, 4)
    full = box_area(gt.xyxy)
    out = []
    for x1, y1, x2, y2 in tiles:
        b = gt.xyxy
        inside = (b[:, 0] < x2) & (b[:, 1] < y2) & (b[:, 2] > x1) & (b[:, 3] > y1) & (full > 0)
        clipped = np.stack(
            [np.clip(b[:, 0], x1, x2), np.clip(b[:, 1], y1, y2), np.clip(b[:, 2], x1, x2), np.clip(b[:, 3], y1, y2)], axis=1
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(full > 0, box_area(clipped) / full, 0.0)
        keep = inside & (ratio >= min_area_ratio)
        out.append(gt[keep].replace(xyxy=clipped[keep]).shift(-x1, -y1))
    return out


def tile_dataset(
    dataset: Dataset,
    out_dir: Path | str,
    *,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    min_area_ratio: float = 0.1,
    keep_empty: bool = True,
    jpeg_quality: int = 95,
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Dataset:
    """Cut every frame into tiles, write them as JPEGs and return the tiled `Dataset`.

    Args:
        dataset: labelled frames.
        out_dir: folder for ``<stem>_<x1>_<y1>_<x2>_<y2>.jpg`` tiles (created).
        slice_wh: tile ``(width, height)`` in pixels.
        overlap_ratio: overlap of neighbouring tiles as a fraction of the tile size.
        min_area_ratio: see `tile_detections`.
        keep_empty: also write tiles without boxes (background for training).
        jpeg_quality: JPEG quality of the written tiles.
        progress: called with 1 after each frame.
        on_skip: called with ``(image path, reason)`` for each frame that cannot be read.

    Returns:
        A `Dataset` with the same classes and schema, ``root=out_dir``, one sample per written tile
        (camera id, timestamp and subset carried over). Frames whose image cannot be read are
        logged, skipped and handed to ``on_skip``.
    """
    from sitesight.sliced.slicing import slice_grid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    skipped: list[str] = []
    stems: set[str] = set()
    for index, sample in enumerate(dataset.samples):
        stem = Path(sample.path).stem
        stem = stem if stem not in stems else f"{stem}_{index}"  # two folders may hold the same file name
        stems.add(stem)
        path = dataset.image_path(sample)
        try:
            frame = Image.fromarray(read_frame_rgb(path, exif_transpose=False))  # GIF, bombs, 16-bit, CMYK handled there
        except InputError as exc:
            log.warning("skipped %s", exc)
            skipped.append(str(exc))
            if on_skip is not None:
                on_skip(path, skip_reason(exc))
            if progress is not None:
                progress(1)
            continue
        tiles = slice_grid(frame.size, slice_wh, overlap_ratio)
        for tile, gt in zip(tiles, tile_detections(sample.gt, tiles, min_area_ratio=min_area_ratio), strict=True):
            if not len(gt) and not keep_empty:
                continue
            x1, y1, x2, y2 = (int(v) for v in tile)
            name = f"{stem}_{x1}_{y1}_{x2}_{y2}.jpg"
            frame.crop((x1, y1, x2, y2)).save(out_dir / name, quality=jpeg_quality)
            samples.append(
                Sample(path=name, image_wh=(x2 - x1, y2 - y1), gt=gt, camera_id=sample.camera_id,
                       timestamp=sample.timestamp, subset=sample.subset)
            )
        if progress is not None:
            progress(1)
    if skipped:
        log.warning("tiling: %d of %d frames could not be read and were skipped: %s", len(skipped), len(dataset), "; ".join(skipped))
    return Dataset(class_names=dataset.class_names, samples=tuple(samples), attribute_schema=dataset.attribute_schema, root=out_dir)

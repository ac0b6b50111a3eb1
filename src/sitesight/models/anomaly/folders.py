"""Image folders for anomaly detection: the MVTec AD layout (`scan_images`: normal, anomalous with
its defect type, unlabelled, masks), reading them with unreadable images skipped (`read_images`),
and the groups a hold-out must keep whole (`image_groups`, `group_holdout`)."""


from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.errors import InputError
from sitesight.images import IMAGE_SUFFIXES, read_frame_rgb

__all__ = ["NORMAL_FOLDERS", "ImageFolder", "scan_images", "read_images", "image_groups", "group_holdout"]

log = logging.getLogger(__name__)
NORMAL_FOLDERS = ("good", "normal", "ok")


@dataclass(frozen=True)
class ImageFolder:
    """Images found under a folder, with what the layout says about them.

    Attributes:
        paths: image files, sorted.
        labels: ``"normal"``, ``"anomalous"`` or ``""`` (unknown) per image.
        defects: defect type (the sub-folder name) for anomalous images, else None.
        masks: the ground-truth mask file per image when one exists, else None.
    """

    paths: tuple[Path, ...]
    labels: tuple[str, ...]
    defects: tuple[str | None, ...]
    masks: tuple[Path | None, ...]


def scan_images(folder: Path | str) -> ImageFolder:
    """Find images under ``folder`` (recursively, ``ground_truth`` excluded) and label them by layout."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder of images", root)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "ground_truth" not in p.relative_to(root).parts)
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found", root)
    labels, defects, masks = [], [], []
    for p in paths:
        if p.parent == root:
            labels.append("")
            defects.append(None)
            masks.append(None)
            continue
        kind = p.parent.name
        normal = kind.lower() in NORMAL_FOLDERS
        labels.append("normal" if normal else "anomalous")
        defects.append(None if normal else kind)
        mask = None
        if not normal:
            for base in (root, root.parent, p.parent.parent.parent):
                candidate = base / "ground_truth" / kind / f"{p.stem}_mask.png"
                if candidate.is_file():
                    mask = candidate
                    break
        masks.append(mask)
    return ImageFolder(tuple(paths), tuple(labels), tuple(defects), tuple(masks))


def read_images(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode images; returns ``(images uint8 (H, W, 3), indices read, messages for those skipped)``."""
    images, ok, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            images.append(read_frame_rgb(p))  # a GIF is skipped with its reason, like every batch's
            ok.append(i)
        except (InputError, OSError) as exc:
            log.warning("skipping %s: %s", p, exc)
            skipped.append(str(exc))
    return images, ok, skipped


def image_groups(paths: Sequence[Path], root: Path | str, by: str = "auto") -> list[str]:
    """The group (part, session, camera…) of each image, for a hold-out that keeps groups whole.

    Args:
        paths: image files under ``root``.
        root: the folder they were found in.
        by: ``"folder"`` (the sub-folder path below ``root``), ``"name:REGEX"`` (the regex's first
            group, or its whole match, searched in the file name), a CSV file with columns ``path``
            (relative to ``root``, or a file name) and ``group``, ``"image"`` (each image alone) or
            ``"auto"`` (``folder`` when the images lie in two or more sub-folders, else ``image``).

    Raises:
        InputError: a regex that does not compile or misses a file name; a CSV without the columns
            or without a row for an image.
    """
    import csv
    import re

    root = Path(root)
    rel = [Path(p).relative_to(root) if Path(p).is_relative_to(root) else Path(Path(p).name) for p in paths]
    if by == "auto":
        by = "folder" if len({r.parent for r in rel}) >= 2 else "image"
    if by == "image":
        return [str(r) for r in rel]
    if by == "folder":
        return [str(r.parent) for r in rel]
    if by.startswith("name:"):
        try:
            regex = re.compile(by[5:])
        except re.error as exc:
            raise InputError(f"invalid group pattern {by[5:]!r}: {exc}", where="--group-by") from None
        out = []
        for r in rel:
            match = regex.search(r.name)
            if match is None:
                raise InputError(f"group pattern {by[5:]!r} does not match the file name", r, where="--group-by")
            out.append(match.group(1) if regex.groups else match.group(0))
        return out
    table = Path(by)
    if table.suffix.lower() != ".csv" or not table.is_file():
        raise InputError(f"--group-by expects folder, image, auto, name:REGEX or a CSV file, got {by!r}", where="--group-by")
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "group"} <= set(reader.fieldnames or []):
            raise InputError(f"expected columns path,group; got {reader.fieldnames}", table, "line 1")
        rows = list(reader)
    by_path = {str(Path(r["path"])): r["group"] for r in rows}
    by_name = {Path(r["path"]).name: r["group"] for r in rows}
    out = []
    for r in rel:
        group = by_path.get(str(r), by_name.get(r.name))
        if group is None:
            raise InputError(f"no group for image {r}", table)
        out.append(group)
    return out


def group_holdout(groups: Sequence[str], fraction: float, *, seed: int = 0, min_fit: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, held-out)`` int64 indices: whole groups, in a seeded random order, are held out until
    at least ``fraction`` of the items are (at least ``min_fit`` items always stay for fitting)."""
    names, inverse = np.unique(np.asarray(groups, object).astype(str), return_inverse=True)
    if fraction <= 0 or names.size < 2:
        return np.arange(len(groups)), np.zeros(0, np.int64)
    sizes = np.bincount(inverse, minlength=names.size)
    held: list[int] = []
    count = 0
    for g in np.random.default_rng(seed).permutation(names.size).tolist():
        if count >= fraction * len(groups) or len(groups) - count - sizes[g] < min_fit:
            continue
        held.append(g)
        count += int(sizes[g])
    hold = np.isin(inverse, held)
    return np.flatnonzero(~hold), np.flatnonzero(hold)

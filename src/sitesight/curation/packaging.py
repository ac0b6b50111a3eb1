"""Package images into CVAT tasks: parts of at most N images, each with a CVAT XML of pre-annotations.

Each part is a folder ``<prefix>_<k>/`` holding ``images/`` (copies of the frames; names made unique
within the part) and ``annotations.xml`` written by `sitesight.formats.cvat.write_cvat` with the
image names as they sit in ``images/``. Create a CVAT task from the images of a part, then upload
``annotations.xml`` as "CVAT 1.1"; with ``as_zip`` the part is also packed as ``<prefix>_<k>.zip``
(the folder is removed), the layout CVAT's own "export task with images" uses.

Example:
    >>> parts = package_cvat_tasks(hard_set, "to_label/", max_images=200)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from sitesight import atomic
from sitesight.dataset import Dataset, Sample
from sitesight.errors import InputError
from sitesight.images import frame_problem, list_image_files, read_image_wh
from sitesight.pathsafe import input_path, safe_component

__all__ = ["package_cvat_tasks", "images_dataset"]

log = logging.getLogger(__name__)


def package_cvat_tasks(
    dataset: Dataset,
    out_dir: Path | str,
    *,
    max_images: int = 500,
    as_zip: bool = False,
    prefix: str = "part",
    task_name: str = "sitesight",
    progress: Callable[[int], None] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    allow_outside: bool = False,
) -> list[Path]:
    """Split ``dataset`` into CVAT task packages of at most ``max_images`` images.

    Args:
        dataset: images and their pre-annotations (boxes may be empty).
        out_dir: folder for the parts (created).
        max_images: largest number of images per part.
        as_zip: write ``<prefix>_<k>.zip`` instead of a folder.
        prefix: part name prefix; parts are numbered from 1 with 3 digits.
        task_name: CVAT task name written in each XML (suffixed with the part number).
        progress: called with 1 after each image copied.
        allow_outside: also pack images lying outside the dataset root (refused by default: a
            label file naming ``../../etc/passwd`` must not put that file into a task zip).
        on_skip: called with ``(image path, reason)`` for each image left out.

    Returns:
        The part folders or zip files, in order. Images that are missing or whose header cannot be
        read (`sitesight.images.frame_problem`: GIF, dangling link, empty, bomb) are logged and left
        out of their part (and of its XML).
    """
    from sitesight.formats.cvat import write_cvat

    if max_images < 1:
        raise InputError(f"max images per part must be >= 1, got {max_images}")
    out_dir = Path(out_dir)
    prefix = safe_component(prefix, what="part prefix")
    if dataset.root is not None:
        for sample in dataset.samples:  # all refused before anything is written
            input_path(dataset.root, dataset.image_path(sample), allow_outside=allow_outside, what="image")
    out_dir.mkdir(parents=True, exist_ok=True)
    parts: list[Path] = []
    missing = 0
    for k, start in enumerate(range(0, len(dataset), max_images), 1):
        part_dir = out_dir / f"{prefix}_{k:03d}"
        (part_dir / "images").mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        samples: list[Sample] = []
        for sample in dataset.samples[start : start + max_images]:
            src = dataset.image_path(sample)
            name = src.name if src.name not in ("", ".", "..") else f"{len(samples):05d}.jpg"
            if name in used:
                name = f"{len(samples):05d}_{name}"
            problem = frame_problem(src)  # header only: GIF, dangling link, empty, not an image, bomb
            if problem is None:
                try:
                    shutil.copy2(src, part_dir / "images" / name)
                except (OSError, ValueError) as exc:  # ValueError: a NUL byte in a path read from data
                    problem = f"cannot copy: {exc}"
            if problem is not None:
                log.warning("%s", InputError(f"image not packaged: {problem}", src))
                missing += 1
                if on_skip is not None:
                    on_skip(src, problem)
            else:
                used.add(name)
                samples.append(sample.replace(path=name, subset=None))
            if progress is not None:
                progress(1)
        write_cvat(dataset.replace(samples=tuple(samples), root=part_dir / "images"), part_dir / "annotations.xml",
                   task_name=f"{task_name}_{k:03d}")
        if as_zip:
            archive = out_dir / f"{prefix}_{k:03d}.zip"
            with atomic.atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for file in sorted(part_dir.rglob("*")):
                    if file.is_file():
                        _zip_entry(zf, file, file.relative_to(part_dir).as_posix())
            shutil.rmtree(part_dir)
            parts.append(archive)
        else:
            parts.append(part_dir)
    if missing:
        log.warning("packaging: %d images were missing or unreadable and were left out", missing)
    return parts


def _zip_entry(zf: zipfile.ZipFile, file: Path, name: str) -> None:
    """Store ``file`` as ``name`` with a fixed date and mode: the same package gives the same zip bytes
    (``ZipFile.write`` stamps each entry with the file's modification time)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    with open(file, "rb") as src, zf.open(info, "w") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def images_dataset(
    source: Path | str, *, class_names: Sequence[str] = (), on_skip: Callable[[Path, str], None] | None = None
) -> Dataset:
    """A `Dataset` without boxes over a folder of images (recursive) or a text file listing one per line.

    Args:
        source: folder, or ``.txt`` list (relative lines resolve against the list's folder).
        class_names: labels to declare (they appear in each CVAT task's meta).
        on_skip: called with ``(path, reason)`` for each file that is not a readable image (skipped, logged).

    Raises:
        InputError: the source is missing.
    """
    source = Path(source)
    if source.is_dir():
        files = list_image_files(source)
    elif source.is_file():
        try:
            lines = [ln.strip() for ln in source.read_text().splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read image list: {exc}", source) from None
        files = [p if p.is_absolute() else source.parent / p for p in (Path(ln) for ln in lines if ln and not ln.startswith("#"))]
    else:
        raise InputError("no such file or folder", source)
    samples = []
    for p in files:
        problem = frame_problem(p)
        if problem is None:
            samples.append(Sample(path=p.resolve(), image_wh=read_image_wh(p)))
        else:
            log.warning("%s", InputError(f"image skipped: {problem}", p))
            if on_skip is not None:
                on_skip(p, problem)
    return Dataset(class_names=tuple(class_names), samples=tuple(samples))

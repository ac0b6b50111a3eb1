"""Every format in, every format out: CVAT for images 1.1, COCO, YOLO (Ultralytics/darknet), Pascal VOC,
and the mAP tools' per-image text layout (``txt``: ``class left top right bottom``).

`read_dataset` detects the format from the path; `load_dataset` also returns the issues found
(what ``sitesight data validate`` reports); `write_dataset` writes one. Boxes are absolute-pixel
``xyxy`` inside; each module converts at its edge.

Example:
    >>> from sitesight.formats import read_dataset, write_dataset
    >>> ds = read_dataset("annotations.xml")                 # doctest: +SKIP
    >>> write_dataset(ds, "out_yolo", "yolo")                # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sitesight.dataset import Dataset
from sitesight.errors import InputError
from sitesight.formats.issues import Issue, Loaded, log_issues

__all__ = ["FORMATS", "convert_dataset", "detect_format", "load_dataset", "read_dataset", "write_dataset", "Issue", "Loaded"]

logger = logging.getLogger(__name__)

FORMATS = ("cvat", "coco", "yolo", "voc", "txt")


def _sniff_json(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(65536).decode("utf-8", "replace")
    except OSError:
        return False
    return head.lstrip().startswith("{") and ('"images"' in head or '"annotations"' in head or '"categories"' in head)


def detect_format(path: Path | str) -> str:
    """``"cvat"``, ``"coco"``, ``"yolo"``, ``"voc"`` or ``"txt"`` for a file or folder.

    Files: ``.xml`` with ``<annotations>`` → cvat, with ``<annotation>`` → voc; ``.json`` → coco;
    ``.yaml``/``.data`` → yolo. Folders: ``data.yaml``/``obj.data``/``labels/`` → yolo,
    ``Annotations/`` → voc, a CVAT XML inside → cvat, a COCO JSON inside → coco, VOC XMLs → voc.

    Raises:
        InputError: nothing recognisable (the path is named).
    """
    from sitesight.formats.cvat import is_cvat_xml
    from sitesight.formats.voc import is_voc_xml

    path = Path(path)
    if not path.exists():
        raise InputError("not found", path)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".xml":
            if is_cvat_xml(path):
                return "cvat"
            if is_voc_xml(path):
                return "voc"
            raise InputError("XML is neither CVAT (<annotations>) nor Pascal VOC (<annotation>)", path)
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml", ".data"):
            return "yolo"
        raise InputError(f"unknown annotation file type {suffix!r}; pass --from/fmt explicitly", path)
    if any((path / n).is_file() for n in ("data.yaml", "dataset.yaml", "obj.data")) or (path / "labels").is_dir():
        return "yolo"
    if (path / "Annotations").is_dir():
        return "voc" if any((path / "Annotations").rglob("*.xml")) else "yolo"
    xmls = sorted(path.glob("*.xml"))
    if any(is_cvat_xml(p) for p in xmls):
        return "cvat"
    if any(_sniff_json(p) for p in sorted(path.glob("*.json"))):
        return "coco"
    if any(is_voc_xml(p) for p in xmls) or any(is_voc_xml(p) for p in sorted(path.rglob("*.xml"))[:5]):
        return "voc"
    from sitesight.formats.textboxes import is_text_boxes_folder

    if is_text_boxes_folder(path):
        return "txt"
    if any(p.suffix == ".txt" for p in path.rglob("*.txt")):
        return "yolo"
    raise InputError("cannot tell the annotation format of this folder", path)


def _folder_files(path: Path, fmt: str) -> list[Path]:
    if fmt == "cvat":
        from sitesight.formats.cvat import is_cvat_xml

        files = [p for p in sorted(path.glob("*.xml")) if is_cvat_xml(p)]
    else:
        files = [p for p in sorted(path.glob("*.json")) if _sniff_json(p)]
    if not files:
        raise InputError(f"no {fmt} annotation file in this folder", path)
    return files


def load_dataset(path: Path | str, fmt: str | None = None, *, points_as_boxes: bool = False) -> Loaded:
    """Read any supported format (detected when ``fmt`` is None) with the issues found.

    A folder of several CVAT XML files is merged; a folder with one COCO JSON reads that file.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "cvat":
        from sitesight.formats.cvat import load_cvat

        return load_cvat(_folder_files(path, "cvat") if path.is_dir() else path, points_as_boxes=points_as_boxes)
    if fmt == "coco":
        from sitesight.formats.coco import load_coco

        if path.is_dir():
            files = _folder_files(path, "coco")
            if len(files) > 1:
                raise InputError(f"several COCO files here ({', '.join(p.name for p in files)}); name one", path)
            path = files[0]
        return load_coco(path)
    if fmt == "yolo":
        from sitesight.formats.yolo import load_yolo

        return load_yolo(path)
    if fmt == "voc":
        from sitesight.formats.voc import load_voc

        return load_voc(path)
    if fmt == "txt":
        from sitesight.formats.textboxes import load_text_boxes

        return load_text_boxes(path)
    raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def read_dataset(path: Path | str, fmt: str | None = None, *, points_as_boxes: bool = False) -> Dataset:
    """Read any supported format into a `Dataset`; issues are logged as warnings."""
    loaded = load_dataset(path, fmt, points_as_boxes=points_as_boxes)
    log_issues(loaded.issues, logger)
    return loaded.dataset  # type: ignore[return-value]


def write_dataset(
    dataset: Dataset,
    path: Path | str,
    fmt: str,
    *,
    images: str = "copy",
    meta: Mapping[str, object] | None = None,
    allow_outside: bool = False,
) -> Path:
    """Write ``dataset`` as ``fmt``.

    Args:
        dataset: what to write.
        path: a file for cvat/coco (a folder gets ``annotations.xml`` / ``annotations.json``),
            a folder for yolo/voc.
        fmt: one of `FORMATS`.
        images: yolo/voc only: ``copy``, ``symlink`` or ``none``.
        meta: ``Loaded.meta`` of the source, e.g. COCO ``category_ids`` to write the same ids.
        allow_outside: yolo/voc: also place images lying outside the dataset root (refused by default).

    Returns:
        The file or folder written.
    """
    path = Path(path)
    meta = meta or {}
    if fmt == "cvat":
        from sitesight.formats.cvat import write_cvat

        return write_cvat(dataset, path / "annotations.xml" if path.is_dir() or not path.suffix else path)
    if fmt == "coco":
        from sitesight.formats.coco import write_coco

        ids = meta.get("category_ids")
        ids = ids if ids is not None and len(ids) == len(dataset.class_names) else None  # type: ignore[arg-type]
        return write_coco(dataset, path / "annotations.json" if path.is_dir() or not path.suffix else path, category_ids=ids)  # type: ignore[arg-type]
    if fmt == "yolo":
        from sitesight.formats.yolo import write_yolo

        return write_yolo(dataset, path, images=images, allow_outside=allow_outside)
    if fmt == "voc":
        from sitesight.formats.voc import write_voc

        return write_voc(dataset, path, images=images, allow_outside=allow_outside)
    if fmt == "txt":
        from sitesight.formats.textboxes import write_text_boxes

        return write_text_boxes(dataset, path)
    raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")



def convert_dataset(
    src: Path | str,
    dst: Path | str,
    to: str,
    *,
    src_fmt: str | None = None,
    images: str = "copy",
    points_as_boxes: bool = False,
    allow_outside: bool = False,
) -> tuple[Loaded, Path]:
    """Read ``src`` (any format) and write it to ``dst`` as ``to``; returns what was read and the path written.

    COCO category ids of the source are kept when writing COCO again (``Loaded.meta``). A source
    that reads as no images and no classes (a folder sitesight does not understand) is refused.
    """
    if to not in FORMATS:
        raise InputError(f"unknown output format {to!r}; choose one of {', '.join(FORMATS)}")
    loaded = load_dataset(src, src_fmt, points_as_boxes=points_as_boxes)
    if len(loaded.dataset) == 0 and not loaded.dataset.class_names:  # type: ignore[arg-type]
        raise InputError(f"nothing to convert: read as {src_fmt or detect_format(src)}, found no images and no labels", src)
    written = write_dataset(loaded.dataset, dst, to, images=images, meta=loaded.meta, allow_outside=allow_outside)  # type: ignore[arg-type]
    return loaded, written

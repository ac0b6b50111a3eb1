"""CVAT for images 1.1 XML: task, job and project exports in, task XML out.

Reading (`read_cvat`, `load_cvat`): several files merge into one `Dataset`. Shapes become boxes:
``box`` (``rotation`` → its axis-aligned extent), ``polygon`` / ``polyline`` / ``cuboid`` /
``ellipse`` by their extent, ``mask`` by the tight box of its decoded RLE, ``points`` and
``skeleton`` by their extent only with ``points_as_boxes=True``; ``tag`` goes to `Sample.tags`;
``<track>`` shapes (video exports) land on their frame when ``outside="0"`` (no interpolation).
Per box, every attribute of the label's schema is an object array of ``str`` (``None`` where the
label lacks it; the declared default where the box omits it), and the shape's own flags are kept
as ``cvat_occluded`` (bool), ``cvat_z_order`` (int64), ``cvat_source`` (str), ``cvat_shape`` (str)
and ``cvat_track_id`` (int64, -1 outside tracks).

Image paths: the first of ``<name>``, ``images/<name>``, ``images/<subset>/<name>``,
``images/<id><suffix>`` that exists next to the XML (relative to it); else ``<name>``.

One file is parsed by `sitesight.formats.cvat_parse`; the writer lives in `sitesight.formats.cvat_write`
(`write_cvat` is re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sitesight.dataset import AttributeSpec, Dataset
from sitesight.errors import InputError
from sitesight.formats.assemble import (
    BoxArrays,
    ImageRows,
    build_from_boxes,
    check_boxes,
    concat_boxes,
    merge_specs,
    with_variants,
)
from sitesight.formats.cvat_parse import CvatFileParser
from sitesight.formats.cvat_write import write_cvat
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.formats.safexml import collector_paused, parse_xml
from sitesight.limits import MAX_COORD

__all__ = ["read_cvat", "load_cvat", "write_cvat", "is_cvat_xml"]

logger = logging.getLogger(__name__)


def is_cvat_xml(path: Path) -> bool:
    """Cheap sniff: an XML file whose root is ``<annotations>`` with a ``<version>`` or ``<meta>``."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return "<annotations" in head and ("<version>" in head or "<meta>" in head or "<image" in head)


def load_cvat(paths: Path | str | Sequence[Path | str], *, points_as_boxes: bool = False) -> Loaded:
    """Read one or several CVAT for images 1.1 XML files into one dataset, with the issues found.

    Args:
        paths: XML file(s); several task/job/project exports are merged (classes and schema united).
        points_as_boxes: turn ``points``/``skeleton`` shapes into boxes by their extent.

    Returns:
        `Loaded` with the `Dataset` (root = the first file's folder; images of other folders get
        absolute paths) and the issues.

    Raises:
        InputError: malformed or hostile XML, missing or mistyped fields (file and element named).
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise InputError("no CVAT XML files given")
    root = paths[0].parent
    labels: dict[str, str] = {}
    schema: dict[str, AttributeSpec] = {}
    images: list[ImageRows] = []
    issues: list[Issue] = []
    parts: list[BoxArrays] = []
    offsets: list[int] = []
    declared: list[AttributeSpec] = []
    for path in paths:
        parser = CvatFileParser(path, points_as_boxes)
        with collector_paused():  # until the tree is freed, so no collection ever walks it
            parser.parse(parse_xml(path))
        assert parser.arrays is not None
        if parser.arrays.xyxy.size:
            check_boxes(parser.arrays.xyxy.astype(np.float64), path, [parser.images[int(i)].path for i in parser.arrays.image]
                        if not np.isfinite(parser.arrays.xyxy).all() or np.abs(parser.arrays.xyxy).max() > MAX_COORD else None)
        parts.append(parser.arrays)
        offsets.append(len(images))
        for name, kind in parser.labels.items():
            labels.setdefault(name, kind)
        for spec in parser.schema.values():
            merge_specs(schema, spec)
        declared += [spec for specs in parser.label_attrs.values() for spec in specs]
        if path.parent != root:
            for rows in parser.images:
                rows.path = str((path.parent / rows.path).resolve())
        if len(paths) > 1:
            for rows in parser.images:
                rows.image_id = len(images)
                images.append(rows)
        else:
            images.extend(parser.images)
        issues.extend(parser.issues)
    schema = {name: with_variants(spec, declared) for name, spec in schema.items()}
    boxes = concat_boxes(parts, offsets)
    used = set(boxes.label)
    class_names = [n for n, kind in labels.items() if kind != "tag" or n in used]
    return Loaded(build_from_boxes(images, boxes, class_names, schema, root), issues)


def read_cvat(paths: Path | str | Sequence[Path | str], *, points_as_boxes: bool = False) -> Dataset:
    """`load_cvat` without the issues (they are logged as warnings)."""
    loaded = load_cvat(paths, points_as_boxes=points_as_boxes)
    log_issues(loaded.issues, logger)
    return loaded.dataset

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

The writer lives in `sitesight.formats.cvat_write`; `write_cvat` is re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from sitesight.dataset import AttributeSpec, Dataset
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset, merge_specs
from sitesight.formats.cvat_shapes import mask_rle_extent, parse_points, points_extent, rotated_box_extent
from sitesight.formats.cvat_write import write_cvat
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.formats.safexml import describe, parse_xml

__all__ = ["read_cvat", "load_cvat", "write_cvat", "is_cvat_xml"]

logger = logging.getLogger(__name__)

_CATEGORICAL = ("radio", "select", "checkbox")
_EXTENT_SHAPES = ("polygon", "polyline")
_POINT_SHAPES = ("points", "skeleton")
_CVAT_COLUMNS = ("cvat_shape", "cvat_occluded", "cvat_z_order", "cvat_source", "cvat_track_id")
_CUBOID_KEYS = ("xtl1", "ytl1", "xbl1", "ybl1", "xtr1", "ytr1", "xbr1", "ybr1",
                "xtl2", "ytl2", "xbl2", "ybl2", "xtr2", "ytr2", "xbr2", "ybr2")  # fmt: skip


def is_cvat_xml(path: Path) -> bool:
    """Cheap sniff: an XML file whose root is ``<annotations>`` with a ``<version>`` or ``<meta>``."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return "<annotations" in head and ("<version>" in head or "<meta>" in head or "<image" in head)


class _FileParser:
    """Parses one CVAT XML file into `ImageRows` plus label/schema declarations and issues."""

    def __init__(self, path: Path, points_as_boxes: bool) -> None:
        self.path = path
        self.points_as_boxes = points_as_boxes
        self.labels: dict[str, str] = {}  # declared label name -> type ("" when undeclared)
        self.label_attrs: dict[str, list[AttributeSpec]] = {}
        self.schema: dict[str, AttributeSpec] = {}
        self.issues: list[Issue] = []
        self.images: list[ImageRows] = []
        self.defaults: dict[str, dict[str, object]] = {}  # label -> attribute defaults (also marks it seen)
        self.skipped_points = 0
        self.default_subset: str | None = None
        self.frame_wh: tuple[int, int] | None = None

    # -- errors ---------------------------------------------------------------------------------

    def fail(self, message: str, where: str) -> InputError:
        return InputError(message, self.path, where)

    def number(self, element: Element, key: str, where: str, default: str | None = None) -> float:
        text = element.get(key, default)
        if text is None:
            raise self.fail(f"missing attribute {key!r}", where)
        try:
            return float(text)
        except ValueError:
            raise self.fail(f"attribute {key}={text!r} is not a number", where) from None

    # -- meta -------------------------------------------------------------------------------------

    def parse_meta(self, meta: Element) -> None:
        for scope in ("task", "job", "project"):
            node = meta.find(scope)
            if node is not None and node.findtext("subset"):
                self.default_subset = node.findtext("subset")
            size = node.find("original_size") if node is not None else None
            if size is not None:
                self.frame_wh = (int(float(size.findtext("width", "0"))), int(float(size.findtext("height", "0"))))
        for i, label in enumerate(meta.iter("label")):
            name = label.findtext("name")
            if name is None:
                raise self.fail("<label> without <name>", f"<meta> label #{i}")
            self.labels.setdefault(name, label.findtext("type") or "")
            for j, attr in enumerate(label.iterfind("attributes/attribute")):
                spec = self.parse_attribute(attr, name, f"<meta> label {name!r} attribute #{j}")
                self.label_attrs.setdefault(name, []).append(spec)
                merge_specs(self.schema, spec)

    def parse_attribute(self, attr: Element, label: str, where: str) -> AttributeSpec:
        name = attr.findtext("name")
        if not name:
            raise self.fail("<attribute> without <name>", where)
        input_type = (attr.findtext("input_type") or "select").strip().lower()
        text = (attr.findtext("values") or "").strip()
        values = [v.strip() for v in text.split("\n")] if text else []
        # Old CVAT / datumaro files separate categorical values by spaces on one line.
        if input_type in _CATEGORICAL and len(values) == 1 and " " in values[0]:
            values = values[0].split()
        try:
            return AttributeSpec(
                name=name, values=tuple(v for v in values if v), input_type=input_type,
                default=attr.findtext("default_value"), labels=(label,),
            )  # fmt: skip
        except ValueError as exc:
            raise self.fail(str(exc), where) from None

    # -- body -------------------------------------------------------------------------------------

    def parse(self, root: Element) -> None:
        if root.tag != "annotations":
            raise self.fail(f"root element is <{root.tag}>, expected <annotations> (CVAT for images 1.1)", "root")
        meta = root.find("meta")
        if meta is not None:
            self.parse_meta(meta)
        by_frame: dict[int, ImageRows] = {}
        for i, image in enumerate(root.iterfind("image")):
            rows = self.parse_image(image, i)
            self.images.append(rows)
            if rows.image_id is not None:
                by_frame.setdefault(rows.image_id, rows)
        tracks = root.findall("track")
        for i, track in enumerate(tracks):
            self.parse_track(track, i, by_frame)
        if tracks:
            self.images.sort(key=lambda r: (r.image_id is None, r.image_id or 0))
        if self.skipped_points:
            self.issues.append(Issue("warning", "points_skipped",
                f"{self.skipped_points} points/skeleton shapes skipped (use points_as_boxes=True to keep their extent)",
                str(self.path)))  # fmt: skip

    def parse_image(self, image: Element, index: int) -> ImageRows:
        where = describe(image, index, ("id", "name"))
        name = image.get("name")
        if name is None:
            raise self.fail("missing attribute 'name'", where)
        w, h = self.number(image, "width", where), self.number(image, "height", where)
        id_text = image.get("id")
        try:
            image_id = int(id_text) if id_text is not None else None
        except ValueError:
            raise self.fail(f"attribute id={id_text!r} is not an integer", where) from None
        subset = image.get("subset") or self.default_subset
        rows = ImageRows(path=self.resolve(name, subset, image_id), image_wh=(int(w), int(h)),
                         image_id=image_id, subset=subset)  # fmt: skip
        for j, shape in enumerate(image):
            if shape.tag == "tag":
                label = shape.get("label")
                if label is None:
                    raise self.fail("missing attribute 'label'", f"{where} {describe(shape, j)}")
                rows.tags.append(label)
            else:
                self.add_shape(rows, shape, lambda j=j, shape=shape: f"{where} {describe(shape, j)}", track_id=-1)
        return rows

    def parse_track(self, track: Element, index: int, by_frame: dict[int, ImageRows]) -> None:
        where = describe(track, index, ("id", "label"))
        label = track.get("label")
        try:
            track_id = int(track.get("id", index))
        except ValueError:
            raise self.fail(f"attribute id={track.get('id')!r} is not an integer", where) from None
        for j, shape in enumerate(track):
            here = f"{where} {describe(shape, j, ('frame',))}"
            if shape.get("outside", "0") == "1":
                continue
            frame = int(self.number(shape, "frame", here))
            rows = by_frame.get(frame)
            if rows is None:
                wh = self.frame_wh or (0, 0)
                rows = ImageRows(path=self.resolve(f"frame_{frame:06d}.png", None, None), image_wh=wh,
                                 image_id=frame, subset=self.default_subset)  # fmt: skip
                by_frame[frame] = rows
                self.images.append(rows)
            shape.set("label", shape.get("label", label or ""))
            self.add_shape(rows, shape, lambda here=here: here, track_id=track_id)

    def resolve(self, name: str, subset: str | None, image_id: int | None) -> str:
        base = self.path.parent
        candidates = [name, f"images/{name}"]
        if subset:
            candidates.append(f"images/{subset}/{name}")
        if image_id is not None:
            candidates += [f"images/{image_id}{Path(name).suffix}", f"images/{image_id}.jpg"]
        for candidate in candidates:
            if (base / candidate).is_file():
                return candidate
        return name

    def box_of(self, shape: Element, where: str) -> tuple[float, float, float, float] | None:
        tag, num = shape.tag, self.number
        try:
            if tag == "box":
                box = (num(shape, "xtl", where), num(shape, "ytl", where), num(shape, "xbr", where), num(shape, "ybr", where))
                rotation = num(shape, "rotation", where, "0")
                return rotated_box_extent(*box, rotation) if rotation else box
            if tag in _EXTENT_SHAPES or (tag == "points" and self.points_as_boxes):
                return points_extent(parse_points(shape.get("points", "")))
            if tag == "skeleton" and self.points_as_boxes:
                nodes = [parse_points(p.get("points", "")) for p in shape.iter("points") if p.get("outside", "0") != "1"]
                return points_extent(np.concatenate(nodes)) if nodes else None
            if tag in _POINT_SHAPES:
                self.skipped_points += 1
                return None
            if tag == "mask":
                left, top = int(num(shape, "left", where)), int(num(shape, "top", where))
                return mask_rle_extent(shape.get("rle", ""), left, top, int(num(shape, "width", where)))
            if tag == "ellipse":
                cx, cy, rx, ry = (num(shape, k, where) for k in ("cx", "cy", "rx", "ry"))
                return rotated_box_extent(cx - rx, cy - ry, cx + rx, cy + ry, num(shape, "rotation", where, "0"))
            if tag == "cuboid":
                xs = [num(shape, k, where) for k in _CUBOID_KEYS]
                return min(xs[0::2]), min(xs[1::2]), max(xs[0::2]), max(xs[1::2])
        except ValueError as exc:
            raise self.fail(f"bad geometry: {exc}", where) from None
        self.issues.append(Issue("warning", "unknown_shape", f"shape <{tag}> ignored", str(self.path), where))
        return None

    def add_shape(self, rows: ImageRows, shape: Element, locate: Callable[[], str], track_id: int) -> None:
        """Append one shape; ``locate()`` builds the element's description, only when needed."""
        get = shape.get
        label = get("label")
        if label is None:
            raise self.fail("missing attribute 'label'", locate())
        box = None
        if shape.tag == "box" and get("rotation") is None:  # the common case, kept lean
            try:
                box = (float(get("xtl")), float(get("ytl")), float(get("xbr")), float(get("ybr")))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                box = None
        if box is None:
            box = self.box_of(shape, locate())
            if box is None:
                if shape.tag == "mask":
                    self.issues.append(Issue("warning", "empty_mask", "mask with no foreground pixels skipped",
                                             str(self.path), locate()))  # fmt: skip
                return
        if not label:
            self.issues.append(Issue("warning", "no_label", f"<{shape.tag}> without a label skipped", str(self.path), locate()))
            return
        defaults = self.defaults.get(label)
        if defaults is None:
            if label not in self.labels:
                self.labels[label] = ""
                self.issues.append(Issue("error", "unknown_label", f"label {label!r} is not declared in <meta>",
                                         str(self.path), locate()))  # fmt: skip
            defaults = self.defaults[label] = {s.name: s.default for s in self.label_attrs.get(label, ())}
        attrs: dict[str, object] = dict(defaults)
        for attr in shape:
            if attr.tag != "attribute":
                continue
            key = attr.get("name")
            if key is None:
                raise self.fail("<attribute> without name", locate())
            text = attr.text
            attrs[key] = text.strip() if text else ""
            if key not in self.schema:
                merge_specs(self.schema, AttributeSpec(name=key, input_type="text", labels=(label,)))
                self.issues.append(Issue("warning", "undeclared_attribute",
                    f"attribute {key!r} is not declared for label {label!r} in <meta>", str(self.path), locate()))  # fmt: skip
        z_order = get("z_order")
        z = 0 if z_order is None else int(z_order if z_order.lstrip("-").isdigit() else self.number(shape, "z_order", locate()))
        if "cvat_source" not in rows.columns:
            rows.columns.update({k: [] for k in _CVAT_COLUMNS})
        cols = rows.columns
        cols["cvat_shape"].append(shape.tag)
        cols["cvat_occluded"].append(get("occluded") == "1")
        cols["cvat_z_order"].append(z)
        cols["cvat_source"].append(get("source"))
        cols["cvat_track_id"].append(track_id)
        rows.add(box, label, attrs)

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
    for path in paths:
        parser = _FileParser(path, points_as_boxes)
        parser.parse(parse_xml(path))
        for name, kind in parser.labels.items():
            labels.setdefault(name, kind)
        for spec in parser.schema.values():
            merge_specs(schema, spec)
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
    used = {label for rows in images for label in rows.labels}
    class_names = [n for n, kind in labels.items() if kind != "tag" or n in used]
    return Loaded(build_dataset(images, class_names, schema, root), issues)


def read_cvat(paths: Path | str | Sequence[Path | str], *, points_as_boxes: bool = False) -> Dataset:
    """`load_cvat` without the issues (they are logged as warnings)."""
    loaded = load_cvat(paths, points_as_boxes=points_as_boxes)
    log_issues(loaded.issues, logger)
    return loaded.dataset

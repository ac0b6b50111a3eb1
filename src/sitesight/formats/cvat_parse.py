"""Parsing one CVAT for images 1.1 XML file: `CvatFileParser` walks the tree once and gathers images,
boxes (every shape kind by its extent), tags, labels and the attribute schema, with the issues found.

The layout rules are stated in `sitesight.formats.cvat`, which merges several files' parsers into one
`Dataset`."""


from __future__ import annotations

import os
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from sitesight.dataset import AttributeSpec
from sitesight.errors import InputError
from sitesight.formats.assemble import (
    BoxArrays,
    BoxColumns,
    ImageRows,
    finish_boxes,
    merge_specs,
)
from sitesight.formats.cvat_shapes import mask_rle_extent, parse_points, points_extent, rotated_box_extent
from sitesight.formats.issues import Issue
from sitesight.formats.safexml import describe
from sitesight.limits import MAX_COORD, MAX_IMAGE_SIDE, image_side, integer, show

__all__ = ["CvatFileParser"]

_CATEGORICAL = ("radio", "select", "checkbox")
_MAX_ID = (1 << 40) - 1  # image ids, track ids, frame numbers, z_order: int64 with room
_EXTENT_SHAPES = ("polygon", "polyline")
_POINT_SHAPES = ("points", "skeleton")
_Place = tuple[str, int, "tuple[str, ...] | None"]  # where a shape sits: prefix, child index, describe keys
_CUBOID_KEYS = ("xtl1", "ytl1", "xbl1", "ybl1", "xtr1", "ytr1", "xbr1", "ybr1",
                "xtl2", "ytl2", "xbl2", "ybl2", "xtr2", "ytr2", "xbr2", "ybr2")  # fmt: skip


class CvatFileParser:
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
        self.folder = str(path.parent)
        self.listings: dict[str, frozenset[str]] = {}  # folder -> its entries, for resolving image paths
        self.boxes = BoxColumns()
        self.arrays: BoxArrays | None = None  # set by parse()
        # The dense per-box columns, bound once: add_shape runs per box.
        self.shape_col, self.occluded_col, self.z_col, self.source_col, self.track_col = (
            self.boxes.extras.setdefault(k, []) for k in
            ("cvat_shape", "cvat_occluded", "cvat_z_order", "cvat_source", "cvat_track_id"))  # fmt: skip

    # -- errors ---------------------------------------------------------------------------------

    def fail(self, message: str, where: str) -> InputError:
        return InputError(message, self.path, where)

    def number(self, element: Element, key: str, where: str, default: str | None = None) -> float:
        text = element.get(key, default)
        if text is None:
            raise self.fail(f"missing attribute {key!r}", where)
        try:
            value = float(text) if len(text) < 64 else float("nan")
        except ValueError:
            raise self.fail(f"attribute {key}={show(text)} is not a number", where) from None
        if not -MAX_COORD <= value <= MAX_COORD:  # (NaN fails too)
            raise self.fail(f"attribute {key}={show(text)} is not a finite number within ±{MAX_COORD:g}", where)
        return value

    # -- meta -------------------------------------------------------------------------------------

    def parse_meta(self, meta: Element) -> None:
        for scope in ("task", "job", "project"):
            node = meta.find(scope)
            if node is not None and node.findtext("subset"):
                self.default_subset = node.findtext("subset")
            size = node.find("original_size") if node is not None else None
            if size is not None:
                self.frame_wh = (image_side(size.findtext("width", "0"), self.path, "<original_size><width>", allow_zero=True),
                                 image_side(size.findtext("height", "0"), self.path, "<original_size><height>", allow_zero=True))  # fmt: skip
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
        by_frame: dict[int, int] = {}  # frame id -> index into self.images
        for i, image in enumerate(root.iterfind("image")):
            rows = self.parse_image(image, i)
            if rows.image_id is not None:
                by_frame.setdefault(rows.image_id, i)
        tracks = root.findall("track")
        for i, track in enumerate(tracks):
            self.parse_track(track, i, by_frame)
        order = None
        if tracks:
            ranks = sorted(range(len(self.images)), key=lambda i: (self.images[i].image_id is None, self.images[i].image_id or 0))
            self.images = [self.images[i] for i in ranks]
            order = np.empty(len(ranks), dtype=np.int64)
            order[ranks] = np.arange(len(ranks))
        if self.skipped_points:
            self.issues.append(Issue("warning", "points_skipped",
                f"{self.skipped_points} points/skeleton shapes skipped (use points_as_boxes=True to keep their extent)",
                str(self.path)))  # fmt: skip
        self.arrays = finish_boxes(self.boxes, self.defaults, order)

    def parse_image(self, image: Element, index: int) -> ImageRows:
        where = describe(image, index, ("id", "name"))
        name = image.get("name")
        if name is None:
            raise self.fail("missing attribute 'name'", where)
        for key in ("width", "height"):
            if image.get(key) is None:
                raise self.fail(f"missing attribute {key!r}", where)
        w = image_side(image.get("width"), self.path, f"{where} width", allow_zero=True)
        h = image_side(image.get("height"), self.path, f"{where} height", allow_zero=True)
        id_text = image.get("id")
        image_id = integer(id_text, self.path, f"{where} id", lo=0, hi=_MAX_ID) if id_text is not None else None
        subset = image.get("subset") or self.default_subset
        rows = ImageRows(path=self.resolve(name, subset, image_id), image_wh=(int(w), int(h)),
                         image_id=image_id, subset=subset)  # fmt: skip
        self.images.append(rows)
        # Plain boxes of a label seen before, with attributes seen before, take this inlined path
        # (about half the per-box cost of add_shape, which handles everything else in full).
        seen, explicit, cols = self.defaults, self.boxes.explicit, self.boxes
        add_image, add_xyxy, add_label = cols.image.append, cols.xyxy.extend, cols.label.append
        add_shape, add_occluded, add_z = self.shape_col.append, self.occluded_col.append, self.z_col.append
        add_source, add_track = self.source_col.append, self.track_col.append
        for j, shape in enumerate(image):
            attrib = shape.attrib
            label = attrib.get("label")
            if shape.tag == "box" and label in seen and "rotation" not in attrib:
                try:
                    box = (float(attrib["xtl"]), float(attrib["ytl"]), float(attrib["xbr"]), float(attrib["ybr"]))
                    z = int(attrib.get("z_order", 0))
                except (KeyError, ValueError):
                    box = None
                else:
                    if not -_MAX_ID <= z <= _MAX_ID:
                        box = None  # add_shape names the bad value
                if box is not None:
                    k = len(cols.label)
                    for child in shape:
                        if child.tag != "attribute":
                            continue
                        column = explicit.get(child.get("name"))  # type: ignore[arg-type]
                        if column is None:
                            column = self.attribute_column(child, label, shape, (where, j, None))
                        text = child.text
                        column[0].append(k)
                        column[1].append(text.strip() if text else "")
                    add_image(index)
                    add_xyxy(box)
                    add_label(label)
                    add_shape("box")
                    add_occluded(attrib.get("occluded") == "1")
                    add_z(z)
                    add_source(attrib.get("source"))
                    add_track(-1)
                    continue
            if shape.tag == "tag":
                label = shape.get("label")
                if label is None:
                    raise self.fail("missing attribute 'label'", f"{where} {describe(shape, j)}")
                rows.tags.append(label)
            else:
                self.add_shape(index, shape, (where, j, None), -1, None)
        return rows

    def parse_track(self, track: Element, index: int, by_frame: dict[int, int]) -> None:
        where = describe(track, index, ("id", "label"))
        label = track.get("label")
        track_id = integer(track.get("id", index), self.path, f"{where} id", lo=0, hi=_MAX_ID)
        for j, shape in enumerate(track):
            if shape.get("outside", "0") == "1":
                continue
            frame = integer(shape.get("frame"), self.path, f"{where} {describe(shape, j, ('frame',))} frame", lo=0, hi=_MAX_ID)
            image_index = by_frame.get(frame)
            if image_index is None:
                wh = self.frame_wh or (0, 0)
                image_index = by_frame[frame] = len(self.images)
                self.images.append(ImageRows(path=self.resolve(f"frame_{frame:06d}.png", None, None), image_wh=wh,
                                             image_id=frame, subset=self.default_subset))  # fmt: skip
            self.add_shape(image_index, shape, (where, j, ("frame",)), track_id, label or "")

    def resolve(self, name: str, subset: str | None, image_id: int | None) -> str:
        candidates = [name, f"images/{name}"]
        if subset:
            candidates.append(f"images/{subset}/{name}")
        if image_id is not None:
            candidates += [f"images/{image_id}{os.path.splitext(name)[1]}", f"images/{image_id}.jpg"]
        for candidate in candidates:
            if self.is_file(candidate):
                return candidate
        return name

    def is_file(self, candidate: str) -> bool:
        """``candidate`` (relative to the XML's folder) is a file; one listing per folder, not a stat per name."""
        folder, base = os.path.split(os.path.join(self.folder, candidate))
        entries = self.listings.get(folder)
        if entries is None:
            try:
                entries = self.listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                entries = self.listings[folder] = frozenset()
        return base in entries and os.path.isfile(os.path.join(folder, base))

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
                width = integer(shape.get("width"), self.path, f"{where} width", lo=1, hi=MAX_IMAGE_SIDE)
                return mask_rle_extent(shape.get("rle", ""), left, top, width)
            if tag == "ellipse":
                cx, cy, rx, ry = (num(shape, k, where) for k in ("cx", "cy", "rx", "ry"))
                return rotated_box_extent(cx - rx, cy - ry, cx + rx, cy + ry, num(shape, "rotation", where, "0"))
            if tag == "cuboid":
                xs = [num(shape, k, where) for k in _CUBOID_KEYS]
                return min(xs[0::2]), min(xs[1::2]), max(xs[0::2]), max(xs[1::2])
        except InputError:
            raise
        except ValueError as exc:
            raise self.fail(f"bad geometry: {exc}", where) from None
        self.issues.append(Issue("warning", "unknown_shape", f"shape <{tag}> ignored", str(self.path), where))
        return None

    def add_shape(self, image_index: int, shape: Element, place: _Place, track_id: int, track_label: str | None) -> None:
        """Append one shape of image ``image_index``; ``place`` (prefix, child index, describe keys)
        becomes the element's description only when needed. This runs once per box: keep it lean."""
        attrib = shape.attrib
        get = attrib.get
        tag = shape.tag
        label = get("label", track_label)
        if label is None:
            raise self.fail("missing attribute 'label'", _locate(shape, place))
        box = None
        if tag == "box" and "rotation" not in attrib:  # the common case
            try:
                box = (float(attrib["xtl"]), float(attrib["ytl"]), float(attrib["xbr"]), float(attrib["ybr"]))
            except (KeyError, ValueError):
                box = None
        if box is None:
            box = self.box_of(shape, _locate(shape, place))
            if box is None:
                if tag == "mask":
                    self.issues.append(Issue("warning", "empty_mask", "mask with no foreground pixels skipped",
                                             str(self.path), _locate(shape, place)))  # fmt: skip
                return
        if not label:
            self.issues.append(Issue("warning", "no_label", f"<{tag}> without a label skipped", str(self.path),
                                     _locate(shape, place)))  # fmt: skip
            return
        if label not in self.defaults:
            if label not in self.labels:
                self.labels[label] = ""
                self.issues.append(Issue("error", "unknown_label", f"label {label!r} is not declared in <meta>",
                                         str(self.path), _locate(shape, place)))  # fmt: skip
            self.defaults[label] = {s.name: s.default for s in self.label_attrs.get(label, ())}
        z_order = get("z_order")
        try:
            z = 0 if z_order is None else int(z_order)
        except ValueError:
            z = int(self.number(shape, "z_order", _locate(shape, place)))
        if not -_MAX_ID <= z <= _MAX_ID:
            raise self.fail(f"z_order {show(z_order)} is out of range", _locate(shape, place))
        boxes = self.boxes
        k = len(boxes.label)
        explicit = boxes.explicit
        for child in shape:
            if child.tag != "attribute":
                continue
            column = explicit.get(child.get("name"))  # type: ignore[arg-type]
            if column is None:
                column = self.attribute_column(child, label, shape, place)
            text = child.text
            column[0].append(k)
            column[1].append(text.strip() if text else "")
        boxes.image.append(image_index)
        boxes.xyxy.extend(box)
        boxes.label.append(label)
        self.shape_col.append(tag)
        self.occluded_col.append(get("occluded") == "1")
        self.z_col.append(z)
        self.source_col.append(get("source"))
        self.track_col.append(track_id)

    def attribute_column(self, child: Element, label: str, shape: Element, place: _Place) -> tuple[list, list]:
        """The (box indices, values) lists of the attribute ``child`` names, made on its first use in
        this file; an attribute the schema lacks joins it as free text, with a warning."""
        key = child.get("name")
        if key is None:
            raise self.fail("<attribute> without name", _locate(shape, place))
        column = self.boxes.explicit[key] = ([], [])
        if key not in self.schema:
            merge_specs(self.schema, AttributeSpec(name=key, input_type="text", labels=(label,)))
            self.issues.append(Issue("warning", "undeclared_attribute",
                f"attribute {key!r} is not declared for label {label!r} in <meta>", str(self.path),
                _locate(shape, place)))  # fmt: skip
        return column


def _locate(shape: Element, place: _Place) -> str:
    prefix, index, keys = place
    return f"{prefix} {describe(shape, index, keys) if keys else describe(shape, index)}"

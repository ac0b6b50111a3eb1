"""Pascal VOC XML: one ``<annotation>`` file per image (VOC devkit layout or labelImg's flavour).

Read: a single XML file, a folder of them, or a VOC root (``Annotations/``, ``JPEGImages/``,
``ImageSets/Main/<split>.txt`` → `Sample.subset`, ``labelmap.txt`` → class order). Coordinates are
kept as written (labelImg and CVAT write pixel coordinates; no 1-based shift). Per object,
``pose``, ``truncated``, ``difficult``, ``occluded`` and CVAT-style ``<attributes>`` become
string attributes. A missing ``<size>`` is read from the image header when the image exists.
Write: ``Annotations/<stem>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``, ``labelmap.txt``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.formats.safexml import describe, parse_xml
from sitesight.images import IMAGE_MODES, place_image, read_image_wh
from sitesight.limits import image_side, number, show
from sitesight.pathsafe import output_path, safe_component

__all__ = ["read_voc", "load_voc", "write_voc", "is_voc_xml"]

logger = logging.getLogger(__name__)

_FLAGS = ("pose", "truncated", "difficult", "occluded")


def is_voc_xml(path: Path) -> bool:
    """Cheap sniff: an XML file whose root is ``<annotation>``."""
    try:
        with open(path, "rb") as f:
            head = f.read(2048).decode("utf-8", "replace")
    except OSError:
        return False
    return "<annotation>" in head or "<annotation " in head


def _xml_files(path: Path) -> tuple[Path, list[Path]]:
    if path.is_file():
        return path.parent, [path]
    if (path / "Annotations").is_dir():
        return path, sorted((path / "Annotations").rglob("*.xml"))
    files = sorted(p for p in path.rglob("*.xml") if is_voc_xml(p))
    return path, files


def _image_for(root: Path, xml: Path, filename: str, folder: str | None) -> Path | None:
    candidates = [root / "JPEGImages" / filename, xml.parent.parent / "JPEGImages" / filename,
                  xml.parent.parent / "images" / filename, xml.parent / filename, root / "images" / filename]  # fmt: skip
    if folder:
        candidates.append(root / folder / filename)
    return next((c for c in candidates if _is_file(c)), None)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _subsets(root: Path) -> dict[str, str]:
    main = root / "ImageSets" / "Main"
    out: dict[str, str] = {}
    if main.is_dir():
        for list_file in sorted(main.glob("*.txt")):
            if "_" in list_file.stem:  # per-class lists such as cat_train.txt
                continue
            for line in list_file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.setdefault(line.split()[0], list_file.stem)
    return out


def _labelmap(root: Path) -> list[str]:
    path = root / "labelmap.txt"
    if not path.is_file():
        return []
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            names.append(line.split(":")[0].strip())
    return names


def _parse_object(obj: Element, xml: Path, where: str) -> tuple[str, tuple[float, float, float, float], dict[str, object]]:
    name = obj.findtext("name")
    if name is None or not name.strip():
        raise InputError("<object> without <name>", xml, where)
    box = obj.find("bndbox")
    if box is None:
        raise InputError("<object> without <bndbox>", xml, where)
    coords = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = box.findtext(key)
        if text is None:
            raise InputError(f"<bndbox><{key}> is missing, expected a number", xml, where)
        try:
            coords.append(float(text) if len(text) < 64 else float("nan"))
        except ValueError:
            raise InputError(f"<bndbox><{key}> is {show(text)}, expected a number", xml, where) from None
        number(coords[-1], xml, f"{where} <bndbox><{key}>")  # finite and in range
    attrs: dict[str, object] = {}
    for key in _FLAGS:
        text = obj.findtext(key)
        if text is not None and text.strip():
            attrs[key] = text.strip()
    for attr in obj.iterfind("attributes/attribute"):
        key = attr.findtext("name")
        if key:
            attrs[key] = (attr.findtext("value") or "").strip()
    return name.strip(), (coords[0], coords[1], coords[2], coords[3]), attrs


def load_voc(path: Path | str) -> Loaded:
    """Read Pascal VOC XML (a file, a folder of files or a VOC root) with the issues found.

    Raises:
        InputError: malformed or hostile XML, missing ``<filename>``/``<bndbox>``, bad numbers.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("not found", path)
    root, files = _xml_files(path)
    if not files:
        raise InputError("no Pascal VOC XML files found", path)
    subsets = _subsets(root)
    names: dict[str, None] = dict.fromkeys(_labelmap(root))
    values: dict[str, dict[str, None]] = {}
    issues: list[Issue] = []
    images: list[ImageRows] = []
    for xml in files:
        doc = parse_xml(xml)
        if doc.tag != "annotation":
            raise InputError(f"root element is <{doc.tag}>, expected <annotation>", xml, "root")
        filename = doc.findtext("filename") or (xml.stem + ".jpg")
        image = _image_for(root, xml, filename, doc.findtext("folder"))
        rel = (image.relative_to(root).as_posix() if image.is_relative_to(root) else str(image)) if image else filename
        size = doc.find("size")
        wh = (image_side(size.findtext("width", ""), xml, "<size><width>", allow_zero=True),
              image_side(size.findtext("height", ""), xml, "<size><height>", allow_zero=True)) if size is not None else None  # fmt: skip
        if wh is None or wh == (0, 0):
            if image is not None:
                wh = read_image_wh(image)
            else:
                wh = (0, 0)
                issues.append(Issue("warning", "size_unknown", "no <size> and no image to read it from", str(xml)))
        rows = ImageRows(path=rel, image_wh=wh, image_id=len(images), subset=subsets.get(Path(filename).stem))
        for i, obj in enumerate(doc.iterfind("object")):
            name, box, attrs = _parse_object(obj, xml, describe(obj, i))
            names.setdefault(name, None)
            for k, v in attrs.items():
                values.setdefault(k, {})[str(v)] = None
            rows.add(box, name, attrs)
        images.append(rows)
    schema = {k: AttributeSpec(name=k, values=tuple(v), input_type="select") for k, v in values.items()}
    return Loaded(build_dataset(images, list(names), schema, root, source=path), issues)


def read_voc(path: Path | str) -> Dataset:
    """`load_voc` without the issues (they are logged as warnings)."""
    loaded = load_voc(path)
    log_issues(loaded.issues, logger)
    return loaded.dataset


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def write_voc(dataset: Dataset, out_dir: Path | str, *, images: str = "copy", allow_outside: bool = False) -> Path:
    """Write a VOC root: ``Annotations/``, ``JPEGImages/`` (per ``images``: copy/symlink/none),
    ``ImageSets/Main/<split>.txt`` and ``labelmap.txt``. String attributes are kept (``pose``,
    ``truncated``, ``difficult``, ``occluded`` as elements, others in ``<attributes>``). Names from
    the data (image names, subsets) go through `sitesight.pathsafe`: nothing lands outside
    ``out_dir``; images outside the dataset root are refused unless ``allow_outside``.

    Returns:
        The output folder.
    """
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    out = Path(out_dir)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {}
    used: set[str] = set()
    missing = 0
    for i, sample in enumerate(dataset.samples):
        filename = safe_component(Path(sample.path).name, what="image name")
        stem = Path(filename).stem if filename not in used else f"{Path(filename).stem}_{i}"
        filename = stem + Path(filename).suffix
        used.add(filename)
        splits.setdefault(safe_component(sample.subset or "default", what="subset"), []).append(stem)
        missing += not place_image(dataset.image_path(sample), output_path(out / "JPEGImages", filename, what="image name"), images,
                                   root=dataset.root, allow_outside=allow_outside)  # fmt: skip
        w, h = sample.image_wh
        lines = ["<annotation>", "  <folder>JPEGImages</folder>", f"  <filename>{escape(filename)}</filename>",
                 "  <source><database>sitesight</database></source>",
                 f"  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>", "  <segmented>0</segmented>"]  # fmt: skip
        gt = sample.gt
        string_keys = [k for k, v in gt.attributes.items() if v.dtype == object and k != "cvat_shape" and k != "cvat_source"]
        for j in range(len(gt)):
            x1, y1, x2, y2 = (float(v) for v in gt.xyxy[j])
            lines += ["  <object>", f"    <name>{escape(dataset.class_names[int(gt.class_id[j])])}</name>"]
            extra = []
            for key in string_keys:
                value = gt.attributes[key][j]
                if value is None:
                    continue
                if key in _FLAGS:
                    lines.append(f"    <{key}>{escape(str(value))}</{key}>")
                else:
                    extra.append(f"      <attribute><name>{escape(key)}</name><value>{escape(str(value))}</value></attribute>")
            if extra:
                lines += ["    <attributes>", *extra, "    </attributes>"]
            lines += [f"    <bndbox><xmin>{_num(x1)}</xmin><ymin>{_num(y1)}</ymin><xmax>{_num(x2)}</xmax><ymax>{_num(y2)}</ymax></bndbox>",
                      "  </object>"]  # fmt: skip
        lines.append("</annotation>")
        atomic.write_text(output_path(out / "Annotations", f"{stem}.xml", what="image name"), "\n".join(lines) + "\n", encoding="utf-8")
    if missing and images != "none":
        logger.warning("%d of %d images not found on disk; their annotations were written without them", missing, len(dataset))
    (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, stems in splits.items():
        atomic.write_text(out / "ImageSets" / "Main" / f"{split}.txt", "".join(s + "\n" for s in stems), encoding="utf-8")
    atomic.write_text(out / "labelmap.txt", "".join(f"{n}:::\n" for n in dataset.class_names), encoding="utf-8")
    return out

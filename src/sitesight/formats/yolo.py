"""YOLO text labels: the Ultralytics layout (``data.yaml``, ``images/<split>``, ``labels/<split>``)
and the darknet layout (``obj.data``, ``obj.names``, list files, labels next to images).

A label line is ``class cx cy w h`` normalised by the image size (a sixth value is a score; more
values are a segmentation polygon ``class x1 y1 x2 y2 ...``, read as its extent). Image sizes come
from the image headers (EXIF orientation applied, as Ultralytics does); no pixels are decoded.
The label of ``.../images/a/b.jpg`` is ``.../labels/a/b.txt`` (also tried: ``Annotations`` instead
of ``images``, and ``b.txt`` beside the image). A folder without a yaml or ``obj.data`` is scanned.
Roboflow's ``data.yaml`` points at ``../train/images``; when that does not exist the path is
tried again without the leading ``../``.

The writer lives in `sitesight.formats.yolo_write` (`write_yolo` is re-exported here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from sitesight.boxes import cxcywh_norm_to_xyxy
from sitesight.dataset import Dataset
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.formats.yolo_write import write_yolo
from sitesight.images import IMAGE_SUFFIXES, read_image_wh
from sitesight.limits import MAX_CELL_CHARS, MAX_CLASSES, MAX_LINE_CHARS, show

__all__ = ["read_yolo", "load_yolo", "write_yolo"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "valid", "test")
_IMAGE_DIRS = {"images": ("labels", "annotations"), "jpegimages": ("labels", "annotations")}
_NAMES_FILES = ("obj.names", "classes.txt", "classes.names", "names.txt")


class _NoAliasLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses anchors and aliases: a data.yaml never needs them, and nested
    aliases expand exponentially ("billion laughs")."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"YAML anchors and aliases are refused (line {mark.line + 1}): possible alias bomb")
        return super().compose_node(parent, index)


def _load_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        if len(text) > MAX_LINE_CHARS:
            raise InputError(f"{len(text)} characters is too large for a dataset YAML", path)
        doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        raise InputError(f"malformed YAML: {getattr(exc, 'problem', exc)}", path, where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path) from None
    except (RecursionError, ValueError, TypeError) as exc:  # deep nesting, odd scalars
        raise InputError(f"malformed YAML ({str(exc)[:80]})", path) from None
    if not isinstance(doc, dict):
        raise InputError(f"expected a YAML mapping, got {type(doc).__name__}", path)
    return doc


def _unique_names(names: list[str], path: Path, where: str = "names") -> list[str]:
    if len(names) > MAX_CLASSES:
        raise InputError(f"{len(names)} class names; at most {MAX_CLASSES} are supported", path, where)
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if len(name) > MAX_CELL_CHARS:
            raise InputError(f"class name #{i} has {len(name)} characters", path, where)
        if name in seen:
            raise InputError(f"class name {show(name)} is given twice (ids {seen[name]} and {i})", path, where)
        seen[name] = i
    return names


def _names_from(value: object, path: Path) -> list[str]:
    if isinstance(value, list):
        if any(isinstance(v, (list, dict)) for v in value):
            raise InputError("'names' entries must be plain names", path, "names")
        return _unique_names([str(v) for v in value], path)
    if isinstance(value, dict):
        if len(value) > MAX_CLASSES:
            raise InputError(f"{len(value)} class names; at most {MAX_CLASSES} are supported", path, "names")
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError, OverflowError):
            raise InputError("'names' keys must be integers", path, "names") from None
        if ids != list(range(len(ids))):
            raise InputError(f"'names' ids must be 0..{len(ids) - 1}, got {show(ids, 80)}", path, "names")
        if any(isinstance(v, (list, dict)) for v in value.values()):
            raise InputError("'names' entries must be plain names", path, "names")
        by_id = {int(k): str(v) for k, v in value.items()}
        return _unique_names([by_id[i] for i in ids], path)
    raise InputError(f"'names' must be a list or a mapping, got {type(value).__name__}", path, "names")


def _read_names_file(path: Path) -> list[str]:
    try:
        return _unique_names([line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()], path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read names file ({exc})", path) from None


def _resolve(base: Path, entry: str, strip: str = "") -> Path | None:
    if "\x00" in entry or len(entry) > 4096:
        return None
    candidates = [base / entry]
    cleaned = entry
    while cleaned.startswith("../"):
        cleaned = cleaned[3:]
        candidates.append(base / cleaned)
    if strip and entry.startswith(strip):
        candidates.append(base / entry[len(strip):])
    return next((c for c in candidates if _exists(c)), None)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, an odd byte
        return False


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _label_dirs(image_dir: Path) -> list[Path]:
    """Folders where the labels of images in ``image_dir`` may lie, most specific first."""
    parts = list(image_dir.parts)
    out = []
    for i in range(len(parts) - 1, -1, -1):
        for replacement in _IMAGE_DIRS.get(parts[i].lower(), ()):
            for name in (replacement, replacement.capitalize()):
                out.append(Path(*parts[:i], name, *parts[i + 1 :]))
    return out


def _split_of(image: Path, root: Path) -> str | None:
    rel = image.relative_to(root).parts[:-1]
    return next((p for p in rel if p.lower() in SPLITS), None)


def _collect(path: Path) -> tuple[list[str], list[tuple[Path, str | None]], Path, list[Issue]]:
    """(names, [(image, split)], root, issues) for a yaml, obj.data, or folder."""
    issues: list[Issue] = []
    if path.is_dir():
        config = next((p for p in sorted(path.glob("*.y*ml")) if p.suffix in (".yaml", ".yml")), None)
        config = config or next(iter(sorted(path.glob("*.data"))), None)
    else:
        config = path
    root = path if path.is_dir() else path.parent
    names: list[str] = []
    images: list[tuple[Path, str | None]] = []
    if config is not None and config.suffix in (".yaml", ".yml"):
        doc = _load_yaml(config)
        if "names" in doc:
            names = _names_from(doc["names"], config)
        base = config.parent / str(doc["path"]) if doc.get("path") and isinstance(doc["path"], (str, int)) else config.parent
        base = base if _exists(base) else config.parent
        seen: set[Path] = set()  # a yaml without a val subset points 'val' at the train folder: read it once
        for split in SPLITS:
            entries = doc.get(split)
            if entries is not None and not isinstance(entries, (str, list)):
                raise InputError(f"{split!r} must be a path or a list of paths, got {type(entries).__name__}", config, split)
            for entry in [entries] if isinstance(entries, str) else (entries or []):
                found = _resolve(base, str(entry))
                if found is not None and found.resolve() in seen:
                    continue
                if found is not None:
                    seen.add(found.resolve())
                if found is None:
                    issues.append(Issue("warning", "split_missing", f"{split}: {entry} not found", str(config), split))
                elif found.is_dir():
                    images += [(p, "val" if split == "valid" else split) for p in _images_in(found)]
                else:
                    images += _list_file(found, config.parent, split)
    elif config is not None and config.suffix == ".data":
        doc = _read_darknet(config)
        if "names" in doc:
            names_path = _resolve(config.parent, doc["names"], "data/")
            names = _read_names_file(names_path) if names_path else []
        for split in ("train", "valid", "test"):
            if split in doc:
                found = _resolve(config.parent, doc[split], "data/")
                if found is not None and found.is_file():
                    images += _list_file(found, config.parent, "val" if split == "valid" else split)
    if not images:
        images = [(p, _split_of(p, root)) for p in _images_in(root)]
    unique: dict[Path, tuple[Path, str | None]] = {}
    for image, split in images:  # splits naming the same images (train == val, overlapping lists): once each
        unique.setdefault(image.resolve(), (image, split))
    if len(unique) < len(images):
        issues.append(Issue("warning", "split_overlap", f"{len(images) - len(unique)} images are listed by more than one "
                            "split; each is read once (its first split)", str(config or root), "splits"))
        images = list(unique.values())
    if not names:
        names_file = next((root / n for n in _NAMES_FILES if (root / n).is_file()), None)
        names = _read_names_file(names_file) if names_file else []
    return names, images, root, issues


def _read_darknet(path: Path) -> dict[str, str]:
    doc = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path) from None
    for n, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            if "=" not in line:
                raise InputError(f"expected 'key = value', got {line.strip()!r}", path, f"line {n}")
            key, value = line.split("=", 1)
            doc[key.strip()] = value.strip()
    return doc


def _list_file(path: Path, base: Path, split: str) -> list[tuple[Path, str | None]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            found = _resolve(base, line.strip(), "data/") or _resolve(path.parent, line.strip(), "data/")
            if found is not None:
                out.append((found, split))
    return out


def _parse_label_file(path: Path, image_wh: tuple[int, int], rows: ImageRows, names: list[str], issues: list[Issue]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read label file ({exc})", path) from None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(line) > MAX_LINE_CHARS:
            raise InputError(f"line of {len(line)} characters", path, f"line {n}")
        try:
            cls = int(parts[0]) if len(parts[0]) < 12 else -1
            values = np.array(parts[1:], dtype=np.float64)
        except ValueError:
            raise InputError(f"expected 'class cx cy w h', got {line.strip()[:80]!r}", path, f"line {n}") from None
        if cls >= MAX_CLASSES:
            raise InputError(f"class id {cls} is over the supported {MAX_CLASSES} classes", path, f"line {n}")
        if values.size and np.isfinite(values).all() and np.abs(values).max() > 1e3:
            raise InputError(f"normalised coordinates far outside 0..1 in {line.strip()[:80]!r}", path, f"line {n}")
        if cls < 0 or values.size < 4 or (values.size > 5 and values.size % 2) or not np.isfinite(values).all():
            raise InputError(f"expected 'class cx cy w h' (or a polygon), got {line.strip()[:80]!r}", path, f"line {n}")
        if values.size in (4, 5):
            xyxy = cxcywh_norm_to_xyxy(values[None, :4], image_wh)[0]
            if values.size == 5:
                rows.scores.append(float(values[4]))
        else:
            pts = values.reshape(-1, 2) * image_wh
            xyxy = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        if cls >= len(names):
            issues.append(Issue("error", "unknown_label", f"class id {cls} is not in names ({len(names)} classes)",
                                str(path), f"line {n}"))  # fmt: skip
            names.extend(str(i) for i in range(len(names), cls + 1))
        rows.add(tuple(float(v) for v in xyxy), names[cls], {})


def load_yolo(path: Path | str) -> Loaded:
    """Read a YOLO dataset (Ultralytics ``data.yaml``, darknet ``obj.data``, or a folder).

    Returns:
        `Loaded`: the dataset (root = the folder; paths relative to it; ``subset`` = split) and
        issues (label files without images, unknown class ids, unreadable images).

    Raises:
        InputError: malformed yaml/obj.data, bad label lines (file and line named).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("not found", path)
    names, images, root, issues = _collect(path)
    if not names:
        issues.append(Issue("warning", "no_class_names", "no data.yaml names or obj.names found; classes are named by id",
                            str(path)))  # fmt: skip
        names = [str(i) for i in range(1000)]
    used_labels: set[Path] = set()
    rows_all: list[ImageRows] = []
    dirs_of: dict[Path, list[Path]] = {}
    for image, split in images:
        if image.parent not in dirs_of:
            dirs_of[image.parent] = [d for d in _label_dirs(image.parent) if d.is_dir()] + [image.parent]
        try:
            wh = read_image_wh(image)
        except InputError as exc:
            issues.append(Issue("error", "bad_image", str(exc), str(image)))
            continue
        rel = image.relative_to(root).as_posix() if image.is_relative_to(root) else str(image)
        rows = ImageRows(path=rel, image_wh=wh, image_id=len(rows_all), subset=split)
        stem = image.stem + ".txt"
        label = next((d / stem for d in dirs_of[image.parent] if (d / stem).is_file()), None)
        if label is not None:
            used_labels.add(label)
            _parse_label_file(label, wh, rows, names, issues)
        rows_all.append(rows)
    if any(r.scores for r in rows_all) and not all(len(r.scores) == len(r.xyxy) for r in rows_all):
        for r in rows_all:
            r.scores = r.scores if len(r.scores) == len(r.xyxy) else [1.0] * len(r.xyxy)
    label_dirs = {d for dirs in dirs_of.values() for d in dirs[:-1]}
    for folder in sorted(label_dirs):
        for txt in sorted(folder.glob("*.txt")):
            if txt not in used_labels:
                issues.append(Issue("error", "label_without_image", "label file has no image", str(txt)))
    if len(names) == 1000 and names[-1] == "999":  # unnamed classes: keep those up to the largest id used
        used = max((names.index(label) for r in rows_all for label in r.labels), default=-1)
        names = names[: used + 1]
    return Loaded(build_dataset(rows_all, names, {}, root, source=path), issues)


def read_yolo(path: Path | str) -> Dataset:
    """`load_yolo` without the issues (they are logged as warnings)."""
    loaded = load_yolo(path)
    log_issues(loaded.issues, logger)
    return loaded.dataset

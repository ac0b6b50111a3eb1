"""The per-image text layout of the widely used mAP tools (one ``<stem>.txt`` per image).

Ground truth: ``class left top right bottom`` per line, optionally followed by ``difficult``.
Detections: ``class confidence left top right bottom`` per line. Coordinates are absolute pixels
(``xyxy``), class names are single words (no spaces), ``#`` starts a comment line. An image
without boxes has an empty file (or none, for detections).

Reading ground truth gives a `Dataset`: one sample per text file, in file-name order; its image is
the file of the same stem in ``images`` (any image suffix; its header gives ``image_wh``), else the
sample path is the stem and ``image_wh`` the boxes' extent rounded up (no image to measure).
Classes are the names used, sorted, unless ``class_names`` fixes the order. ``difficult`` becomes
the ``difficult`` attribute (``"1"``/``"0"``), as the VOC reader keeps it, and VOC AP ignores it.

Example:
    >>> from sitesight.formats.textboxes import read_text_boxes, read_text_detections
    >>> gt = read_text_boxes("ground-truth/", images="images/")          # doctest: +SKIP
    >>> preds = read_text_detections("detection-results/", gt)          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.formats.assemble import ImageRows, build_dataset
from sitesight.formats.issues import Issue, Loaded, log_issues
from sitesight.images import IMAGE_SUFFIXES, read_image_wh

__all__ = ["is_text_boxes_folder", "load_text_boxes", "read_text_boxes", "read_text_detections",
           "write_text_boxes", "write_text_detections"]  # fmt: skip

logger = logging.getLogger(__name__)

def _lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file ({exc})", path) from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]


def _floats(tokens: Sequence[str], path: Path, n: int, layout: str) -> list[float]:
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise InputError(f"expected {layout!r}, got {' '.join(tokens)[:80]!r}", path, f"line {n}") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"expected finite numbers in {layout!r}", path, f"line {n}")
    return values


def is_text_boxes_folder(folder: Path) -> bool:
    """True when the first labelled ``.txt`` in ``folder`` reads as ``name left top right bottom``
    (a class name that is not an integer, or pixel coordinates beyond YOLO's 0..1)."""
    for txt in sorted(folder.glob("*.txt"))[:20]:
        for _, tokens in _lines(txt)[:5]:
            numbers = tokens[1:5] if len(tokens) == 5 or (len(tokens) == 6 and tokens[5] == "difficult") else tokens[1:]
            if len(tokens) not in (5, 6):
                return False
            try:
                values = [float(t) for t in numbers]
            except ValueError:
                return False
            try:
                int(tokens[0])
            except ValueError:
                return True
            return any(abs(v) > 1.0 for v in values)
    return False


def load_text_boxes(
    folder: Path | str, *, images: Path | str | None = None, class_names: Sequence[str] | None = None
) -> Loaded:
    """Read a folder of ground-truth text files (``class left top right bottom [difficult]``).

    Args:
        folder: the folder of ``<stem>.txt`` files.
        images: folder of the images (matched by stem); sizes come from their headers.
        class_names: fix the class order (names not in it are errors); default the sorted names used.

    Raises:
        InputError: a line that is not ``class left top right bottom [difficult]`` (file and line named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("expected a folder of <image>.txt ground-truth files", folder)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError("no .txt files in this folder", folder)
    image_dir = Path(images) if images is not None else None
    listing = {}
    if image_dir is not None:
        if not image_dir.is_dir():
            raise InputError("image folder not found", image_dir)
        listing = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    issues: list[Issue] = []
    rows_all: list[ImageRows] = []
    seen: dict[str, None] = {}
    layout = "class left top right bottom [difficult]"
    for txt in files:
        boxes = []
        for n, tokens in _lines(txt):
            if len(tokens) not in (5, 6) or (len(tokens) == 6 and tokens[5].lower() != "difficult"):
                raise InputError(f"expected {layout!r}, got {' '.join(tokens)[:80]!r}", txt, f"line {n}")
            x1, y1, x2, y2 = _floats(tokens[1:5], txt, n, layout)
            boxes.append((tokens[0], (x1, y1, x2, y2), "1" if len(tokens) == 6 else "0"))
            seen.setdefault(tokens[0], None)
        image = listing.get(txt.stem)
        if image is not None:
            wh = read_image_wh(image)
            path = image.relative_to(folder).as_posix() if image.is_relative_to(folder) else str(image)
        else:
            if image_dir is not None:
                issues.append(Issue("warning", "image_missing", f"no image named {txt.stem}.* in {image_dir}", str(txt)))
            extent = np.array([b[1] for b in boxes], np.float64).reshape(-1, 4)
            wh = (int(math.ceil(max(extent[:, 2].max(initial=0), 1))), int(math.ceil(max(extent[:, 3].max(initial=0), 1))))
            path = txt.stem
        rows = ImageRows(path=path, image_wh=wh, image_id=len(rows_all))
        for label, xyxy, difficult in boxes:
            rows.add(xyxy, label, {"difficult": difficult})
        rows_all.append(rows)
    if class_names is None:
        names = sorted(seen)
    else:
        names = list(class_names)
        unknown = sorted(set(seen) - set(names))
        if unknown:
            raise InputError(f"class names {unknown} are not in the given classes {names}", folder)
    schema = {"difficult": AttributeSpec("difficult", ("0", "1"), "checkbox", "0", tuple(names))}
    return Loaded(build_dataset(rows_all, names, schema, folder), issues)


def read_text_boxes(folder: Path | str, *, images: Path | str | None = None,
                    class_names: Sequence[str] | None = None) -> Dataset:  # fmt: skip
    """`load_text_boxes` without the issues (they are logged as warnings)."""
    loaded = load_text_boxes(folder, images=images, class_names=class_names)
    log_issues(loaded.issues, logger)
    return loaded.dataset


def read_text_detections(folder: Path | str, dataset: Dataset) -> list[Detections]:
    """Detections (``class confidence left top right bottom`` per line) aligned with ``dataset.samples``.

    File ``<stem>.txt`` belongs to the sample whose path has that stem; a sample without a file
    has no detections.

    Raises:
        InputError: a malformed line, a class not in ``dataset.class_names``, or a file whose stem
            matches no sample (file and line named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("expected a folder of <image>.txt detection files", folder)
    row_of: dict[str, int] = {}
    for i, s in enumerate(dataset.samples):
        row_of.setdefault(Path(s.path).stem, i)
    index = {name: k for k, name in enumerate(dataset.class_names)}
    out = [Detections.empty() for _ in dataset.samples]
    layout = "class confidence left top right bottom"
    for txt in sorted(folder.glob("*.txt")):
        row = row_of.get(txt.stem)
        if row is None:
            raise InputError(f"no ground-truth image named {txt.stem!r}", txt)
        xyxy, score, cls = [], [], []
        for n, tokens in _lines(txt):
            if len(tokens) != 6:
                raise InputError(f"expected {layout!r}, got {' '.join(tokens)[:80]!r}", txt, f"line {n}")
            if tokens[0] not in index:
                raise InputError(f"class {tokens[0]!r} is not one of {list(dataset.class_names)}", txt, f"line {n}")
            values = _floats(tokens[1:], txt, n, layout)
            cls.append(index[tokens[0]])
            score.append(values[0])
            xyxy.append(values[1:])
        out[row] = Detections(xyxy=np.array(xyxy, np.float32).reshape(-1, 4), score=score, class_id=cls)
    return out


def _num(v: float) -> str:
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def write_text_boxes(dataset: Dataset, folder: Path | str) -> Path:
    """Write one ``<stem>.txt`` per sample: ``class left top right bottom`` (+ ``difficult``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sample in dataset.samples:
        gt = sample.gt
        difficult = gt.attributes.get("difficult")
        lines = []
        for i in range(len(gt)):
            name = dataset.class_names[int(gt.class_id[i])]
            if any(c.isspace() for c in name):
                raise InputError(f"class name {name!r} has a space; the text layout cannot hold it")
            flag = difficult is not None and str(difficult[i]).strip().lower() in ("1", "true")
            lines.append(" ".join([name, *(_num(v) for v in gt.xyxy[i])]) + (" difficult" if flag else "") + "\n")
        atomic.write_text(folder / f"{Path(sample.path).stem}.txt", "".join(lines), encoding="utf-8")
    return folder


def write_text_detections(dataset: Dataset, preds: Sequence[Detections], folder: Path | str) -> Path:
    """Write one ``<stem>.txt`` per sample: ``class confidence left top right bottom`` per detection."""
    if len(preds) != len(dataset.samples):
        raise ValueError(f"preds: expected {len(dataset.samples)} Detections (one per sample), got {len(preds)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sample, det in zip(dataset.samples, preds, strict=True):
        lines = [" ".join([dataset.class_names[int(det.class_id[i])], _num(det.score[i]), *(_num(v) for v in det.xyxy[i])]) + "\n"
                 for i in range(len(det))]  # fmt: skip
        atomic.write_text(folder / f"{Path(sample.path).stem}.txt", "".join(lines), encoding="utf-8")
    return folder

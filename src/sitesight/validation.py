"""Validate a dataset: what is wrong with the labels, the images and the files around them.

`validate_dataset` checks a `Dataset` in memory; `validate_path` reads any format first and adds
what the reader found (unknown labels, label files without images, undeclared attributes).

Checks (code → severity):

- ``box_outside_image`` (error): a box edge more than ``tolerance`` px outside ``[0, w] x [0, h]``.
- ``zero_area`` (error): width or height ``<= 0``.
- ``attribute_value`` (error): a categorical attribute value outside its schema.
- ``duplicate_box`` (error): two boxes of one class in one image with IoU ``>= duplicate_iou``.
- ``image_missing`` (error): the image file does not exist.
- ``image_size_mismatch`` (error): the labelled size differs from the image header (EXIF applied).
- ``size_unknown`` (warning): the image size is 0 x 0, so boxes cannot be checked against it.
- from the readers: ``unknown_label``, ``label_without_image``, ``bad_image`` (errors), and warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.boxes import pairwise_iou
from sitesight.dataset import Dataset
from sitesight.errors import InputError
from sitesight.formats.issues import Issue
from sitesight.images import read_image_wh

__all__ = ["Issue", "ValidationReport", "validate_dataset", "validate_path"]


@dataclass(frozen=True)
class ValidationReport:
    """Issues found in one dataset.

    Args:
        source: what was validated (a path, or ``"<dataset>"``).
        fmt: the format read (``None`` for an in-memory dataset).
        n_images: samples checked.
        n_boxes: boxes checked.
        issues: every finding, errors and warnings.
    """

    source: str
    fmt: str | None
    n_images: int
    n_boxes: int
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def counts(self) -> dict[str, int]:
        """Issues per code."""
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.code] = out.get(issue.code, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "source": self.source, "format": self.fmt, "images": self.n_images, "boxes": self.n_boxes,
            "errors": len(self.errors), "warnings": len(self.warnings), "counts": self.counts(),
            "issues": [i.to_dict() for i in self.issues],
        }  # fmt: skip


def _box_issues(dataset: Dataset, index: int, tolerance: float, duplicate_iou: float) -> list[Issue]:
    sample = dataset.samples[index]
    gt, path = sample.gt, str(sample.path)
    issues: list[Issue] = []
    if not len(gt):
        return issues
    w, h = sample.image_wh
    xyxy = gt.xyxy
    names = dataset.class_names

    def where(i: int) -> str:
        return f"box #{i} {names[int(gt.class_id[i])]!r} {[round(float(v), 2) for v in xyxy[i]]}"

    finite = np.isfinite(xyxy).all(axis=1)
    for i in np.flatnonzero(~finite):  # (readers refuse these; a dataset built in code may hold them)
        issues.append(Issue("error", "non_finite_box", "box has a NaN or infinite coordinate", path, where(i)))
    for i in np.flatnonzero(finite & ((xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]))):
        issues.append(Issue("error", "zero_area", "box has zero or negative width or height", path, where(i)))
    if (w, h) == (0, 0):
        issues.append(Issue("warning", "size_unknown", "image size unknown; boxes not checked against it", path))
    else:
        outside = (xyxy[:, 0] < -tolerance) | (xyxy[:, 1] < -tolerance) | (xyxy[:, 2] > w + tolerance) | (xyxy[:, 3] > h + tolerance)
        for i in np.flatnonzero(outside):
            issues.append(Issue("error", "box_outside_image", f"box extends outside the {w}x{h} image", path, where(i)))
    for c in np.unique(gt.class_id):
        idx = np.flatnonzero(gt.class_id == c)
        if idx.size < 2:
            continue
        iou = np.triu(pairwise_iou(xyxy[idx], xyxy[idx]), k=1)
        for a, b in zip(*np.nonzero(iou >= duplicate_iou), strict=True):
            issues.append(Issue("error", "duplicate_box", f"duplicates box #{idx[a]} (IoU {iou[a, b]:.3f})", path, where(idx[b])))
    for name, spec in dataset.attribute_schema.items():
        column = gt.attributes.get(name)
        if column is None or not spec.is_categorical:
            continue
        allowed = set(spec.allowed())
        for i, value in enumerate(column):
            if value is not None and str(value) not in allowed:
                issues.append(Issue("error", "attribute_value",
                    f"{name}={value!r} is not one of {sorted(allowed)}", path, where(i)))  # fmt: skip
    return issues


def validate_dataset(
    dataset: Dataset, *, check_images: bool = True, tolerance: float = 0.5, duplicate_iou: float = 0.98
) -> list[Issue]:
    """Check every sample of ``dataset`` (see the module docstring for the checks).

    Args:
        dataset: the dataset; image paths are resolved with `Dataset.image_path`.
        check_images: report images missing on disk.
        tolerance: pixels a box may stick out of the frame before it counts as outside.
        duplicate_iou: IoU at or above which two same-class boxes are duplicates.

    Returns:
        The issues, sample by sample.
    """
    issues: list[Issue] = []
    for index, sample in enumerate(dataset.samples):
        image = dataset.image_path(sample)
        if check_images and not image.is_file():
            issues.append(Issue("error", "image_missing", "image file not found", str(image)))
        elif check_images and sample.image_wh != (0, 0):
            try:
                header = read_image_wh(image)
            except InputError as exc:
                issues.append(Issue("error", "bad_image", str(exc), str(image)))
            else:
                if header != tuple(sample.image_wh):
                    issues.append(Issue("error", "image_size_mismatch",
                        f"labelled as {sample.image_wh[0]}x{sample.image_wh[1]}, image is {header[0]}x{header[1]}", str(image)))  # fmt: skip
        issues += _box_issues(dataset, index, tolerance, duplicate_iou)
    return issues


def validate_path(
    path: Path | str,
    fmt: str | None = None,
    *,
    check_images: bool = True,
    points_as_boxes: bool = False,
) -> ValidationReport:
    """Read ``path`` (any format, detected when ``fmt`` is None) and validate it.

    Raises:
        InputError: the file cannot be read at all (malformed, hostile, missing fields).
    """
    from sitesight.formats import detect_format, load_dataset

    fmt = fmt or detect_format(path)
    loaded = load_dataset(path, fmt, points_as_boxes=points_as_boxes)
    dataset: Dataset = loaded.dataset  # type: ignore[assignment]
    issues = list(loaded.issues) + validate_dataset(dataset, check_images=check_images)
    return ValidationReport(str(path), fmt, len(dataset), dataset.box_count(), tuple(issues))

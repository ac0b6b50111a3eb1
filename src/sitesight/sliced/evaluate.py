"""Predictions joined with ground truth, for every evaluating command: a run (through the one
post-processing path) or a COCO results file, aligned by the one frame rule, classes by name.

`scored` is what ``eval det``, ``eval coco --pred RUN`` and ``report`` call: it returns per-frame
ground truth and predictions over the frames both sides cover (`sitesight.identity.Coverage`
says how many: run, ground truth, both, ground-truth only, run only). With
``include_unscored_gt`` the ground-truth-only frames are scored too (their objects count as
misses). A COCO results file names only frames that have boxes, so with one every ground-truth
image is scored, as pycocotools does.

Example:
    >>> from sitesight.sliced.evaluate import scored
    >>> from sitesight.sliced.spec import PostprocessSpec
    >>> s = scored("gt.json", "runs/cam7", spec=PostprocessSpec(conf=0.3))  # doctest: +SKIP
    >>> print(s.coverage)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.identity import AGNOSTIC_NAME, Coverage, align_frames
from sitesight.sliced.postprocess import postprocess
from sitesight.sliced.spec import PostprocessSpec

__all__ = ["GroundTruth", "Scored", "read_ground_truth", "scored", "evaluate_det", "det_report", "evaluate_coco_pred",
           "coco_report", "is_run"]


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth dataset and, for a COCO file, its category ids (else None: ``1..K``)."""

    dataset: Dataset
    category_ids: tuple[int, ...] | None = None
    path: Path | None = None


def read_ground_truth(gt: Path | str | Dataset | GroundTruth, fmt: str | None = None) -> GroundTruth:
    """Read ground truth in any format, keeping a COCO file's category ids."""
    if isinstance(gt, GroundTruth):
        return gt
    if isinstance(gt, Dataset):
        return GroundTruth(gt)
    from sitesight.formats import load_dataset
    from sitesight.formats.issues import log_issues

    loaded = load_dataset(gt, fmt)
    log_issues(loaded.issues, logging.getLogger("sitesight.formats"))
    ids = loaded.meta.get("category_ids")
    return GroundTruth(loaded.dataset, None if ids is None else tuple(int(i) for i in ids), Path(gt))  # type: ignore[arg-type,union-attr]


def is_run(path: Path | str) -> bool:
    """True for a sitesight run folder (``manifest.json`` inside); False for a results file or a
    folder of per-image detection text files (`sitesight.formats.textboxes`)."""
    path = Path(path)
    if path.is_dir() and not (path / "manifest.json").is_file():
        if any(path.glob("*.txt")):
            return False
        raise InputError("a prediction folder must be a sitesight run (manifest.json missing) or hold <image>.txt detections", path)
    return path.is_dir()


@dataclass(frozen=True)
class Scored:
    """Ground truth and predictions of the evaluated frames, aligned.

    Attributes:
        gts, preds: one `Detections` per evaluated frame, class ids into ``class_names``.
        class_names: the evaluated classes (the ground truth's, or one class when class-agnostic).
        paths: the ground-truth path of each evaluated frame.
        coverage: frame counts (run, ground truth, both, ...).
        spec: the post-processing of a run (None for a results file).
        dropped: results dropped by ``ignore_unknown`` (``dropped_unknown_category`` / ``_image``).
    """

    gts: list[Detections]
    preds: list[Detections]
    class_names: tuple[str, ...]
    paths: list[str]
    coverage: Coverage
    spec: PostprocessSpec | None
    dropped: dict[str, int] = field(default_factory=dict)
    image_wh: list[tuple[int, int]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What an evaluation output records besides its numbers."""
        out: dict[str, Any] = {"coverage": self.coverage.to_dict(), "evaluated_frames": len(self.gts),
                               "class_names": list(self.class_names)}
        if self.spec is not None:
            out["spec"] = self.spec.to_dict()
        if self.dropped:
            out["dropped"] = dict(self.dropped)
        return out


def _collapse(dets: Sequence[Detections]) -> list[Detections]:
    return [d.replace(class_id=np.zeros(len(d), np.int64)) for d in dets]


def scored(
    gt: Path | str | Dataset | GroundTruth,
    pred: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    include_unscored_gt: bool = False,
    ignore_unknown: bool = False,
    fmt: str | None = None,
) -> Scored:
    """Ground truth and predictions (a run folder or a COCO results file) aligned for evaluation.

    Args:
        gt: ground truth (any format, or a `Dataset`).
        pred: a run folder (post-processed with ``spec``) or COCO results JSON.
        spec: post-processing for a run; for a results file only ``class_map`` / ``class_agnostic`` apply.
        include_unscored_gt: also score ground-truth frames the run did not cover (as misses).
        ignore_unknown: drop results of unknown categories or images (counted) instead of failing.
        fmt: the ground truth's format (default: detected).

    Raises:
        InputError: classes that do not match (both sets listed), unknown categories (unless
            ``ignore_unknown``), ambiguous frame paths, no frame in common.
    """
    truth = read_ground_truth(gt, fmt)
    dataset = truth.dataset
    spec = spec or PostprocessSpec()
    agnostic = spec.class_agnostic
    names = (AGNOSTIC_NAME,) if agnostic else tuple(dataset.class_names)
    if is_run(pred):
        from sitesight.sliced.store import load_run

        run = load_run(pred)
        final = postprocess(run, spec, class_names=None if agnostic else dataset.class_names)
        alignment = align_frames(final.keys, dataset, root=final.root)
        dets = final.detections()
        index = alignment.sample
        rows = alignment.matched.tolist()
        samples = [int(index[r]) for r in rows]
        preds = [dets[r] for r in rows]
        if include_unscored_gt:
            extra = alignment.gt_only(len(dataset)).tolist()
            samples += extra
            preds += [Detections.empty() for _ in extra]
        if not samples:
            raise InputError(f"no frame of the run is in the ground truth ({alignment.coverage})", Path(pred))
        gts = [dataset.samples[i].gt for i in samples]
        return Scored(_collapse(gts) if agnostic else gts, preds, names, [str(dataset.samples[i].path) for i in samples],
                      alignment.coverage, spec, {}, [dataset.samples[i].image_wh for i in samples])
    if Path(pred).is_dir():  # the mAP tools' layout: <image>.txt with 'class confidence left top right bottom'
        from sitesight.formats.textboxes import read_text_detections

        preds, counts = read_text_detections(pred, dataset), {}
        if agnostic:
            preds = _collapse(preds)
    else:
        from sitesight.formats.coco import load_coco_results

        preds, counts = load_coco_results(pred, dataset, category_ids=truth.category_ids, class_map=spec.class_map,
                                          class_agnostic=agnostic, ignore_unknown=ignore_unknown)
    covered = sum(1 for p in preds if len(p))
    gts = [s.gt for s in dataset.samples]
    if agnostic:
        gts, preds = _collapse(gts), _collapse(preds)
    dropped = {k: v for k, v in counts.items() if k.startswith("dropped") and v}
    return Scored(gts, preds, names, [str(s.path) for s in dataset.samples], Coverage(covered, len(dataset), covered),
                  None, dropped, [s.image_wh for s in dataset.samples])


def evaluate_det(
    gt: Path | str | Dataset | GroundTruth,
    pred: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    iou: float = 0.5,
    thresholds: Sequence[float] | np.ndarray = (),
    target_recall: float | None = None,
    include_unscored_gt: bool = False,
    ignore_unknown: bool = False,
    fmt: str | None = None,
    ap: str = "coco",
    pixel_inclusive: bool = False,
) -> dict[str, Any]:
    """``sitesight eval det``: `sitesight.evaluation.inputs.detection_report` at ``spec.conf`` over the
    `scored` frames, plus the coverage and the spec, and ``out["ap"]``: AP per class at ``iou`` over
    every prediction by ``ap`` (``coco`` 101-point, ``voc07`` 11-point, ``voc12`` all-point; see
    `sitesight.evaluation.voc.average_precision`; ``pixel_inclusive`` = the VOC devkit's +1 boxes)."""
    spec = spec or PostprocessSpec(conf=0.5)
    s = scored(gt, pred, spec=spec, include_unscored_gt=include_unscored_gt, ignore_unknown=ignore_unknown, fmt=fmt)
    return det_report(s, conf=spec.conf, iou=iou, thresholds=thresholds, target_recall=target_recall, ap=ap,
                      pixel_inclusive=pixel_inclusive)


def det_report(
    s: Scored,
    *,
    conf: float,
    iou: float = 0.5,
    thresholds: Sequence[float] | np.ndarray = (),
    target_recall: float | None = None,
    ap: str = "coco",
    pixel_inclusive: bool = False,
) -> dict[str, Any]:
    """`evaluate_det`'s report of already `scored` frames (also what the Ray engine calls)."""
    from sitesight.evaluation.inputs import detection_report
    from sitesight.evaluation.voc import average_precision

    out = detection_report(s.gts, s.preds, class_names=s.class_names, iou=iou, conf=conf, thresholds=thresholds,
                           target_recall=target_recall)
    out["ap"] = average_precision(s.gts, s.preds, class_names=s.class_names, iou=iou, method=ap,
                                  pixel_inclusive=pixel_inclusive, image_keys=s.paths)  # fmt: skip
    out.update(s.record())
    return out


def evaluate_coco_pred(
    gt: Path | str | Dataset | GroundTruth,
    pred: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    include_unscored_gt: bool = False,
    ignore_unknown: bool = False,
    fmt: str | None = None,
    relative_area: bool = False,
    **coco_options: Any,
) -> tuple[Any, Scored]:
    """COCO AP of a run (or results file) against any ground truth: `sitesight.evaluation.coco.evaluate_coco`
    over the `scored` frames. ``relative_area`` reads area ranges as fractions of each frame;
    ``coco_options`` go to `evaluate_coco` (area ranges, max dets...)."""
    s = scored(gt, pred, spec=spec, include_unscored_gt=include_unscored_gt, ignore_unknown=ignore_unknown, fmt=fmt)
    return coco_report(s, relative_area=relative_area, **coco_options), s


def coco_report(s: Scored, *, relative_area: bool = False, **coco_options: Any) -> Any:
    """`evaluate_coco_pred`'s `sitesight.evaluation.coco.CocoResult` of already `scored` frames (also
    what the Ray engine calls)."""
    from sitesight.evaluation.coco import evaluate_coco

    frame_wh = s.image_wh if relative_area else None
    return evaluate_coco(s.gts, s.preds, class_names=s.class_names, frame_wh=frame_wh, **coco_options)

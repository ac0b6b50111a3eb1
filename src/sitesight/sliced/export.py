"""A stored run's final detections out to other tools: COCO results JSON, CVAT pre-annotation parts,
Parquet in the one box schema (`export_parquet`).

The raw boxes go through `sitesight.sliced.postprocess.postprocess` (the one path) and are written
with the formats package; every export writes its spec and counts next to it (``OUT.spec.json``
beside a COCO file, ``spec.json`` in a CVAT folder).

Ids in a COCO export:

* with ground truth (``gt``): each frame is aligned with a ground-truth image by
  `sitesight.identity.align_frames`; ``image_id`` is that image's COCO id (`sitesight.formats.coco.coco_image_ids`,
  the ids ``data convert --to coco`` writes; a COCO file's own ids) and ``category_id`` the ground
  truth's (a COCO file's own, else ``1..K``), classes matched by name. pycocotools' ``loadRes``
  accepts the file against that ground truth. Frames the ground truth lacks are left out (counted).
* without: ``image_id`` = the frame's position in the run's manifest + 1, ``category_id`` = 1 + the
  index of the class in the run's class names. Every entry also carries ``file_name`` (the frame
  path relative to the run's root), which `sitesight.formats.coco.read_coco_results` aligns by.

Example:
    >>> from sitesight.sliced.export import export_coco
    >>> from sitesight.sliced.postprocess import postprocess
    >>> from sitesight.sliced.spec import PostprocessSpec
    >>> from sitesight.sliced.store import load_run
    >>> final = postprocess(load_run("runs/cam7"), PostprocessSpec(conf=0.3))  # doctest: +SKIP
    >>> export_coco(final, "results.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sitesight import atomic
from sitesight.boxparquet import write_boxes
from sitesight.dataset import Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.identity import align_frames, relative_key
from sitesight.sliced.postprocess import FinalRun, postprocess
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import Run

__all__ = ["run_dataset", "final_dataset", "export_coco", "export_coco_results", "export_cvat_parts", "export_parquet"]

log = logging.getLogger(__name__)


def final_dataset(final: FinalRun) -> Dataset:
    """The final detections as a `Dataset`: one sample per processed frame (boxes in ``gt``),
    ``image_id`` = position in the manifest + 1; the detector's attributes are dropped."""
    samples = [Sample(path=f.key, image_wh=f.image_wh, gt=Detections(xyxy=d.xyxy, score=d.score, class_id=d.class_id),
                      image_id=f.index + 1)
               for f, d in zip(final.frames, final.detections(), strict=True)]
    return Dataset(class_names=final.class_names, samples=tuple(samples))


def run_dataset(
    run: Run, spec: PostprocessSpec | None = None, *, conf: float | None = None, class_names: Sequence[str] | None = None
) -> tuple[Dataset, int]:
    """`final_dataset` of ``postprocess(run, spec)`` and the number of boxes the gate removed.

    ``conf`` (when given) overrides the spec's; ``class_names`` are the target classes (see `postprocess`).
    """
    spec = spec or PostprocessSpec()
    if conf is not None:
        spec = PostprocessSpec(**{**spec.__dict__, "conf": conf})
    final = postprocess(run, spec, class_names=class_names)
    return final_dataset(final), final.gate_removed


def export_parquet(final: FinalRun, path: Path | str) -> Path:
    """The final boxes in the one box schema of raw and final boxes (`sitesight.boxparquet`), atomically.

    One row per final box: ``image_id`` (the frame's index in the run's manifest), ``source`` (the
    slice the kept box came from, -1 the full frame), ``x1 y1 x2 y2 score class_id`` and the kept raw
    box's attributes; the frame list (every processed frame, with its key and size), the final class
    names and ``final.spec`` in the metadata. Read back with `sitesight.boxparquet.read_boxes`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [[f.index, f.key, list(f.image_wh), None] for f in final.frames]
    return write_boxes(path, final.table, frames, class_names=final.class_names, spec=final.spec.to_dict())


def _write_record(path: Path, record: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(record, indent=1), encoding="utf-8")
    return path


def export_coco(
    final: FinalRun,
    path: Path | str,
    *,
    gt: Dataset | None = None,
    gt_category_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Write the final detections as COCO results JSON (ids as in the module notes) and ``OUT.spec.json``.

    Args:
        final: `postprocess` output; with ``gt`` it must have been made with ``class_names=gt.class_names``
            (or class-agnostic).
        path: the results file.
        gt: the ground truth whose image and category ids the export uses.
        gt_category_ids: the ground truth's COCO category ids (``load_dataset(...).meta["category_ids"]``
            for a COCO file); default ``1..K``.

    Returns:
        The record written to ``OUT.spec.json``: spec, counts (frames written, left out), classes.

    Raises:
        InputError: the classes do not match the ground truth's; a class-agnostic export against a
            ground truth with several classes.
    """
    from sitesight.formats.coco import coco_image_ids, write_coco_results

    path = Path(path)
    dets = final.detections()
    record: dict[str, Any] = {**final.summary(), "output": str(path)}
    if gt is None:
        dataset = final_dataset(final)
        names = [relative_key(f.key, final.root) for f in final.frames]
        write_coco_results(dataset, dets, path, file_names=names, decimals=None)
        record["ids"] = "image_id = frame position in the run + 1; category_id = class index + 1"
        _write_record(path.with_name(path.stem + ".spec.json"), record)
        return record
    class_names = tuple(gt.class_names)
    if final.spec.class_agnostic:
        if len(class_names) != 1:
            raise InputError(f"a class-agnostic export needs a one-class ground truth; this one has {list(class_names)} "
                             "(export with classes and evaluate with --class-agnostic instead)")
    elif tuple(final.class_names) != class_names:
        raise InputError(f"the detections' classes {list(final.class_names)} are not the ground truth's {list(class_names)}; "
                         "post-process with class_names=gt.class_names")
    alignment = align_frames(final.keys, gt, root=final.root)
    image_ids = coco_image_ids(gt)
    rows = alignment.matched
    samples, preds, names = [], [], []
    for r in rows.tolist():
        s = gt.samples[int(alignment.sample[r])]
        samples.append(Sample(path=s.path, image_wh=s.image_wh, gt=Detections.empty(), image_id=image_ids[int(alignment.sample[r])]))
        d = dets[r]  # class-agnostic: every box is class 0, the ground truth's one category
        preds.append(Detections(xyxy=d.xyxy, score=d.score, class_id=d.class_id))
        names.append(str(s.path))
    out = Dataset(class_names=class_names, samples=tuple(samples), root=gt.root)
    write_coco_results(out, preds, path, category_ids=gt_category_ids, file_names=names, decimals=None)
    left_out = int(alignment.coverage.run_only)
    if left_out:
        log.warning("%d of %d frames are not in the ground truth and were left out of %s", left_out, len(final.frames), path)
    record.update({"ids": "from the ground truth", "coverage": alignment.coverage.to_dict(), "frames_written": len(rows),
                   "frames_left_out": left_out})
    _write_record(path.with_name(path.stem + ".spec.json"), record)
    return record


def export_coco_results(dataset: Dataset, path: Path | str) -> Path:
    """Write a `final_dataset`'s boxes as COCO results JSON (ids as without ground truth)."""
    from sitesight.formats.coco import write_coco_results

    return write_coco_results(dataset, [s.gt for s in dataset.samples], path)


def export_cvat_parts(dataset: Dataset, out_dir: Path | str, *, part_size: int = 100,
                      record: dict[str, Any] | None = None) -> list[Path]:
    """Write a `final_dataset`'s boxes as CVAT 1.1 XML pre-annotations, ``part_size`` frames per file
    (and ``record``, e.g. `FinalRun.summary`, as ``spec.json`` beside them)."""
    from sitesight.formats.cvat import write_cvat

    if part_size < 1:
        raise ValueError(f"part_size must be >= 1, got {part_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, start in enumerate(range(0, len(dataset), part_size), 1):
        part = dataset.with_samples(dataset.samples[start : start + part_size])
        paths.append(write_cvat(part, out_dir / f"part_{k:03d}.xml", task_name=f"pre-annotations part {k}"))
    if record is not None:
        _write_record(out_dir / "spec.json", record)
    return paths

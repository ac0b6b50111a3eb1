"""A stored run's final detections out to other tools: COCO results JSON, CVAT pre-annotation parts.

The raw boxes are post-processed once (`sitesight.sliced.border.postprocess_run`: confidence, border rule,
merge, optional gate) and written with the formats package, so CVAT receives task-sized XML files
of pre-annotations to correct (pseudo-labelling) and other tools receive COCO results.

Example:
    >>> from sitesight.sliced.store import load_run
    >>> from sitesight.sliced.export import run_dataset
    >>> dataset, removed = run_dataset(load_run("runs/cam7"), conf=0.3)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sitesight.dataset import Dataset, Sample
from sitesight.detections import Detections
from sitesight.sliced.border import MergeSpec, postprocess_run
from sitesight.sliced.gate import GateParams
from sitesight.sliced.store import Run

__all__ = ["run_dataset", "export_coco_results", "export_cvat_parts"]


def run_dataset(
    run: Run,
    *,
    conf: float = 0.25,
    merge_spec: MergeSpec = MergeSpec(),
    border: bool = True,
    gate: GateParams | None = None,
    class_names: Sequence[str] | None = None,
) -> tuple[Dataset, int]:
    """The run's final detections as a `Dataset` (one sample per processed frame, boxes in ``gt``).

    Args:
        run: a stored run.
        conf, merge_spec, border, gate: post-processing (see `sitesight.sliced.border.postprocess_frame`).
        class_names: names of the class ids; default ``class0, class1, ...`` up to the largest id.

    Returns:
        ``(dataset, gate_removed)``; sample ``image_id`` is the frame's position in the manifest + 1.
    """
    preds, removed = postprocess_run(run.raw, [f.image_wh for f in run.frames], run.parameters, conf=conf,
                                     merge_spec=merge_spec, border=border, gate=gate)
    preds = [Detections(xyxy=p.xyxy, score=p.score, class_id=p.class_id) for p in preds]
    if class_names is None:
        top = max((int(p.class_id.max()) for p in preds if len(p)), default=0)
        class_names = [f"class{i}" for i in range(top + 1)]
    samples = [Sample(path=f.key, image_wh=f.image_wh, gt=p, image_id=f.index + 1)
               for f, p in zip(run.frames, preds, strict=True)]
    try:
        return Dataset(class_names=tuple(class_names), samples=tuple(samples)), removed
    except ValueError as exc:
        from sitesight.errors import InputError

        raise InputError(f"class names do not cover the predicted class ids: {exc}", run.run_dir) from None


def export_coco_results(dataset: Dataset, path: Path | str) -> Path:
    """Write `run_dataset`'s boxes as COCO results JSON (image ids = frame position + 1)."""
    from sitesight.formats.coco import write_coco_results

    return write_coco_results(dataset, [s.gt for s in dataset.samples], path)


def export_cvat_parts(dataset: Dataset, out_dir: Path | str, *, part_size: int = 100) -> list[Path]:
    """Write `run_dataset`'s boxes as CVAT 1.1 XML pre-annotations, ``part_size`` frames per file."""
    from sitesight.formats.cvat import write_cvat

    if part_size < 1:
        raise ValueError(f"part_size must be >= 1, got {part_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, start in enumerate(range(0, len(dataset), part_size), 1):
        part = dataset.with_samples(dataset.samples[start : start + part_size])
        paths.append(write_cvat(part, out_dir / f"part_{k:03d}.xml", task_name=f"pre-annotations part {k}"))
    return paths

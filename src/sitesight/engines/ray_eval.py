"""`eval det` / `eval coco --pred RUN` on Ray: post-processing in tasks over the labelled frames' shards.

What dominates evaluating a big run is reading it and post-processing it (border rule, merge,
gate): the local path (`sitesight.sliced.evaluate.scored`) loads every shard of the run, though
only the frames that have labels are scored. Here the driver reads the shards' footers and the
labels, aligns frames with the one aligner (`sitesight.identity.align_frames`, as `scored` does),
and Ray tasks load only the shards holding labelled frames and run `postprocess` on them. Each
task returns the *final* detections of its labelled frames (after merge and gate: a few boxes per
labelled frame; raw boxes and unlabelled frames never leave the workers), and the driver builds
the very `Scored` the local path builds, then runs the same metric code on it. COCO AP ranks every
prediction of a class over all images by score, so the final matching is one call on the driver;
it is small next to the run (labelled frames only).

Example:
    >>> from sitesight.engines.ray_eval import evaluate_det_ray
    >>> out = evaluate_det_ray("labels.xml", "runs/week23", spec=PostprocessSpec(conf=0.5))  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.engines.ray import MAX_BLOCKS, RayOptions, connect, quiet_data_context
from sitesight.engines.ray_runs import frames_only_run, shard_groups
from sitesight.errors import InputError
from sitesight.identity import AGNOSTIC_NAME, align_frames
from sitesight.sliced.evaluate import GroundTruth, Scored, coco_report, det_report, read_ground_truth
from sitesight.sliced.postprocess import postprocess
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import load_run

__all__ = ["scored_ray", "evaluate_det_ray", "evaluate_coco_pred_ray"]


def _final_part(batch: pa.Table, run_dir: str, wanted: set[int], spec: PostprocessSpec,
                class_names: tuple[str, ...] | None) -> pa.Table:
    """Ray Data stage: `postprocess` on each row's shards; the wanted frames' final detections, pickled."""
    out = []
    for shards in batch.column("shards").to_pylist():
        final = postprocess(load_run(run_dir, shards=shards), spec, class_names=class_names)
        dets = final.detections()
        out.append(pickle.dumps([(f.index, d.xyxy, d.score, d.class_id, dict(d.attributes))
                                 for f, d in zip(final.frames, dets, strict=True) if f.index in wanted]))
    return pa.table({"final": pa.array(out, pa.binary())})


def scored_ray(
    gt: Path | str | Dataset | GroundTruth,
    run_dir: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    include_unscored_gt: bool = False,
    fmt: str | None = None,
    frames_per_task: int = 512,
    options: RayOptions = RayOptions(),
    on_progress: Callable[[int], None] | None = None,
) -> Scored:
    """`sitesight.sliced.evaluate.scored` for a run folder, the post-processing on Ray; the same `Scored`.

    Args:
        gt, spec, include_unscored_gt, fmt: as in `scored`.
        run_dir: the run folder (every worker reads its shards).
        frames_per_task: labelled frames per Ray task.
        options: the cluster (only ``address`` is used).
        on_progress: called on the driver with the labelled frames of each finished task.
    """
    truth = read_ground_truth(gt, fmt)
    dataset = truth.dataset
    spec = spec or PostprocessSpec()
    agnostic = spec.class_agnostic
    names = (AGNOSTIC_NAME,) if agnostic else tuple(dataset.class_names)
    frames_only, index = frames_only_run(run_dir)
    alignment = align_frames([f.key for f in frames_only.frames], dataset, root=frames_only.root)
    rows = alignment.matched.tolist()
    wanted = {frames_only.frames[r].index for r in rows}
    by_index: dict[int, Detections] = {}
    if wanted:
        ray = connect(options.address)
        fn_kwargs = {"run_dir": str(Path(run_dir).resolve()), "wanted": wanted, "spec": spec,
                     "class_names": None if agnostic else tuple(dataset.class_names)}
        groups = shard_groups(index, wanted, frames_per_task)
        with quiet_data_context():
            ds = ray.data.from_items([{"shards": g} for g in groups], override_num_blocks=min(len(groups), MAX_BLOCKS))
            for row in ds.map_batches(_final_part, fn_kwargs=fn_kwargs, batch_size=1, batch_format="pyarrow").iter_rows():
                part = pickle.loads(row["final"])
                by_index.update((i, Detections(xyxy=xyxy, score=score, class_id=cls, attributes=attributes))
                                for i, xyxy, score, cls, attributes in part)
                if on_progress is not None:
                    on_progress(len(part))
    samples = [int(alignment.sample[r]) for r in rows]
    preds = [by_index[frames_only.frames[r].index] for r in rows]
    if include_unscored_gt:
        extra = alignment.gt_only(len(dataset)).tolist()
        samples += extra
        preds += [Detections.empty() for _ in extra]
    if not samples:
        raise InputError(f"no frame of the run is in the ground truth ({alignment.coverage})", Path(run_dir))
    gts = [dataset.samples[i].gt for i in samples]
    if agnostic:
        gts = [g.replace(class_id=np.zeros(len(g), np.int64)) for g in gts]
    return Scored(gts, preds, names, [str(dataset.samples[i].path) for i in samples], alignment.coverage, spec, {},
                  [dataset.samples[i].image_wh for i in samples])


def evaluate_det_ray(
    gt: Path | str | Dataset | GroundTruth,
    run_dir: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    iou: float = 0.5,
    thresholds: Sequence[float] | np.ndarray = (),
    target_recall: float | None = None,
    include_unscored_gt: bool = False,
    fmt: str | None = None,
    ap: str = "coco",
    pixel_inclusive: bool = False,
    options: RayOptions = RayOptions(),
) -> dict[str, Any]:
    """`sitesight.sliced.evaluate.evaluate_det` of a run folder with `scored_ray`: the same report."""
    spec = spec or PostprocessSpec(conf=0.5)
    s = scored_ray(gt, run_dir, spec=spec, include_unscored_gt=include_unscored_gt, fmt=fmt, options=options)
    return det_report(s, conf=spec.conf, iou=iou, thresholds=thresholds, target_recall=target_recall, ap=ap,
                      pixel_inclusive=pixel_inclusive)


def evaluate_coco_pred_ray(
    gt: Path | str | Dataset | GroundTruth,
    run_dir: Path | str,
    *,
    spec: PostprocessSpec | None = None,
    include_unscored_gt: bool = False,
    fmt: str | None = None,
    relative_area: bool = False,
    options: RayOptions = RayOptions(),
    **coco_options: Any,
) -> tuple[Any, Scored]:
    """`sitesight.sliced.evaluate.evaluate_coco_pred` of a run folder with `scored_ray`: the same result."""
    s = scored_ray(gt, run_dir, spec=spec, include_unscored_gt=include_unscored_gt, fmt=fmt, options=options)
    return coco_report(s, relative_area=relative_area, **coco_options), s

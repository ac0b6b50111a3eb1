"""Stored runs on Ray Data: `sweep` (and the readers after it) partitioned by frame, reduced as counts.

A run is already partitioned: each Parquet shard holds a few frames. The driver reads only the
shards' footers (`sitesight.sliced.store.shard_index`: frame keys and sizes, no box) and the ground
truth, aligns frames with the one aligner (`sitesight.sliced.sweep.align_gt`), and groups the
shards that hold labelled frames into tasks of about ``frames_per_task`` frames. Each task loads
its shards (`sitesight.sliced.store.load_run` with ``shards=``) and runs the local function on
them — `sitesight.sliced.sweep.sweep_run`: post-processing and matching, frame by frame exactly as
locally — and sends back only counts (TP/FP/FN/gate removals per row). The driver adds them up.
No frame's boxes travel to the driver, and every count is the local engine's: matching is per
frame, so counts over a partition of the frames add up to the counts over all of them.

Example:
    >>> from sitesight.engines.ray import RayOptions
    >>> from sitesight.engines.ray_runs import sweep_run_ray
    >>> result = sweep_run_ray("runs/cam7", dataset, merges=merges, confs=[0.3, 0.4],
    ...                        options=RayOptions(address="auto"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.engines.ray import MAX_BLOCKS, RayOptions, connect, quiet_data_context
from sitesight.errors import InputError
from sitesight.evaluation.detection import Counts
from sitesight.sliced.border import MergeSpec
from sitesight.sliced.gate import GateParams
from sitesight.sliced.store import FrameRecord, Run, load_run, shard_index
from sitesight.sliced.sweep import SweepResult, SweepRow, align_gt, sweep_run

__all__ = ["labelled_partitions", "sweep_run_ray"]


def frames_only_run(run_dir: Path | str) -> tuple[Run, list[tuple[str, list[list[Any]]]]]:
    """The run's manifest and processed frames without a box (``raw`` empty), and its shard index.

    Read from the manifest and the shards' Parquet footers only: what the frame aligner needs.
    """
    index = shard_index(run_dir)
    records = sorted((FrameRecord(int(i), str(k), (int(wh[0]), int(wh[1])))
                      for _, meta in index for i, k, wh, _ in meta if wh is not None), key=lambda r: r.index)
    return dataclasses.replace(load_run(run_dir, shards=[]), frames=tuple(records), raw=()), index


def shard_groups(index: list[tuple[str, list[list[Any]]]], wanted: set[int], frames_per_task: int) -> list[list[str]]:
    """Shard names grouped into tasks of about ``frames_per_task`` wanted frames; shards without one left out."""
    groups: list[list[str]] = []
    size = 0
    for name, meta in index:
        n = sum(int(row[0]) in wanted for row in meta)
        if n == 0:
            continue
        if not groups or size >= frames_per_task:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += n
    return groups


def labelled_partitions(
    run_dir: Path | str, dataset: Dataset, frames_per_task: int
) -> tuple[list[list[str]], dict[int, Detections], int]:
    """Shard groups to hand to tasks, the ground truth by frame index, and the labelled frame count.

    Reads the run's manifest and shard footers only. Frames are aligned with ``dataset`` exactly as
    the local commands align them (`sitesight.sliced.sweep.align_gt` over the processed frames).

    Returns:
        ``(groups, gt_by_index, n_labelled)``: ``groups`` lists shard file names, each group about
        ``frames_per_task`` labelled frames, shards without a labelled frame left out.
    """
    frames_only, index = frames_only_run(run_dir)
    gts = align_gt(frames_only, dataset)
    gt_by_index = {rec.index: g for rec, g in zip(frames_only.frames, gts, strict=True) if g is not None}
    return shard_groups(index, set(gt_by_index), frames_per_task), gt_by_index, len(gt_by_index)


def _part_run(run_dir: str, shards: Sequence[str], gt_by_index: dict[int, Detections]) -> tuple[Run, list[Detections | None]]:
    run = load_run(run_dir, shards=list(shards))
    return run, [gt_by_index.get(f.index) for f in run.frames]


def _sweep_part(batch: pa.Table, run_dir: str, gt_by_index: dict[int, Detections], kwargs: dict[str, Any]) -> pa.Table:
    """Ray Data stage: `sweep_run` on the shards of each row; the rows of the sweep as JSON counts."""
    out = []
    for shards in batch.column("shards").to_pylist():
        run, gts = _part_run(run_dir, shards, gt_by_index)
        result = sweep_run(run, gts, **kwargs)
        out.append(json.dumps({"frames": result.frames, "rows": [dataclasses.asdict(r) for r in result.rows],
                               "gate_effect": {str(i): e.tolist() for i, e in result.gate_effect.items()}}))
    return pa.table({"result": pa.array(out, pa.string())})


def _run_tasks(ray: Any, groups: list[list[str]], fn: Callable, fn_kwargs: dict[str, Any]) -> Any:
    """``fn`` over the shard groups as Ray Data tasks (one group per call); yields its output rows."""
    ds = ray.data.from_items([{"shards": g} for g in groups], override_num_blocks=min(len(groups), MAX_BLOCKS))
    return ds.map_batches(fn, fn_kwargs=fn_kwargs, batch_size=1, batch_format="pyarrow").iter_rows()


def sweep_run_ray(
    run_dir: Path | str,
    dataset: Dataset,
    *,
    merges: Sequence[MergeSpec],
    confs: Sequence[float],
    gates: Sequence[GateParams | None] = (None,),
    class_map: str | Sequence[tuple[str, str]] = (),
    class_agnostic: bool = False,
    border: bool = True,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    iou: float = 0.5,
    frames_per_task: int = 512,
    options: RayOptions = RayOptions(),
    on_progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """`sitesight.sliced.sweep.sweep_run` over ``dataset``'s labelled frames of a run, on Ray.

    Args:
        run_dir: the run folder (every worker reads its shards).
        dataset: ground truth of (some of) the run's frames.
        merges, confs, gates, class_map, class_agnostic, border, class_names, num_classes, iou: as in
            `sweep_run` (``class_names``: usually ``dataset.class_names``).

        frames_per_task: labelled frames per Ray task.
        options: the cluster (`sitesight.engines.ray.RayOptions`; only ``address`` is used).
        on_progress: called on the driver with the frames of each finished task.

    Returns:
        The `SweepResult` `sweep_run` returns on the whole run: the same rows, counts and best row.
    """
    ray = connect(options.address)
    groups, gt_by_index, n_labelled = labelled_partitions(run_dir, dataset, frames_per_task)
    if not groups:
        raise InputError("no processed frame of the run has ground truth", run_dir)
    kwargs = {"merges": list(merges), "confs": list(confs), "gates": list(gates), "class_names": class_names,
              "class_map": class_map, "class_agnostic": class_agnostic, "border": border, "num_classes": num_classes,
              "iou": iou}
    rows: list[dict[str, Any]] = []
    effect: dict[int, np.ndarray] = {}
    frames = 0
    with quiet_data_context():
        fn_kwargs = {"run_dir": str(Path(run_dir).resolve()), "gt_by_index": gt_by_index, "kwargs": kwargs}
        for row in _run_tasks(ray, groups, _sweep_part, fn_kwargs):
            part = json.loads(row["result"])
            rows = part["rows"] if not rows else [_add_counts(a, b) for a, b in zip(rows, part["rows"], strict=True)]
            for i, e in part["gate_effect"].items():
                effect[int(i)] = effect.get(int(i), 0) + np.asarray(e, np.int64)
            frames += part["frames"]
            if on_progress is not None:
                on_progress(part["frames"])
    assert frames == n_labelled, (frames, n_labelled)
    out = []
    for r in rows:
        op = Counts(r["tp"], r["fp"], r["fn"])
        out.append(SweepRow(**{**r, "precision": float(op.precision), "recall": float(op.recall), "f1": float(op.f1)}))
    best = int(np.argmax([r.f1 for r in out])) if out else -1
    return SweepResult(tuple(out), best, frames, iou, effect)


# what names a sweep row (the same in every partition) and what is derived from its counts
_ROW_KEYS = ("method", "metric", "threshold", "conf", "gate", "border", "class_map", "class_agnostic")
_ROW_RATES = ("precision", "recall", "f1")


def _add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two partitions' rows of one combination: every count added (TP, FP, FN, gate removals, ...)."""
    assert all(a[k] == b[k] for k in _ROW_KEYS), (a, b)
    return {k: v if k in _ROW_KEYS or k in _ROW_RATES else v + b[k] for k, v in a.items()}

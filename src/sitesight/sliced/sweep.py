"""Sweeps without the model: merge × gate × confidence recomputed from a stored run and evaluated.

SAHI re-runs the model for every post-processing setting. Here the raw boxes of every slice and of
the full frame are already stored (`sitesight.sliced.store`), so each combination re-runs only the
stages of `sitesight.sliced.postprocess` — the very functions `postprocess` calls (`prepare`,
`sitesight.sliced.border.merge_by_confidence`, `gate_keep`), so every row equals
``postprocess(run, row_spec)`` scored by `sitesight.evaluation.detection.operating_point` (TP/FP/FN at
one IoU, greedy matching the way pycocotools does it). `SweepRow.spec` turns a row back into that spec.

Speed (40 combinations over 600 1080p frames in ~3 s of CPU, see docs/benchmarks.md):

* all frames are merged in single calls (each frame its own partition of `sitesight.sliced.merge.merge`);
* NMS and greedy NMM group the boxes once per merge setting and derive every confidence from
  that grouping (`sitesight.sliced.border.merge_by_confidence`: exact, filter-then-merge semantics kept);
* the gate looks up each box's candidates with binary searches over all frames at once
  (`sitesight.sliced.gate.gate_mask_frames`);
* evaluation finds the (prediction, ground truth) pairs that can match with a sorted sweep and
  hands `sitesight.evaluation.matching.match_boxes` only those, each connected group of pairs as
  its own image: the same TP/FP/FN as `sitesight.evaluation.detection.operating_point`.

Example:
    >>> from sitesight.sliced.border import MergeSpec, merge_by_confidence
    >>> from sitesight.sliced.store import load_run
    >>> from sitesight.sliced.sweep import align_gt, sweep_run
    >>> run = load_run("runs/cam7")  # doctest: +SKIP
    >>> result = sweep_run(run, align_gt(run, dataset), merges=[MergeSpec("nms", "iou", 0.5)],
    ...                    confs=[0.3, 0.4], class_names=dataset.class_names)  # doctest: +SKIP
    >>> result.rows[result.best].spec()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.detection import Counts
from sitesight.evaluation.matching import BoxTable, match_boxes, pair_ious, table_from_detections
from sitesight.identity import align_frames, format_class_map, parse_class_map
from sitesight.ranges import parse_range  # re-exported: callers import it from here
from sitesight.sliced.border import MergeSpec, merge_by_confidence
from sitesight.sliced.gate import GateParams, size_bucket, size_bucket_names
from sitesight.sliced.postprocess import gate_keep, merged_table, prepare, target_classes
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import Run

__all__ = ["SweepRow", "SweepResult", "parse_range", "merge_grid", "align_gt", "sweep_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRow:
    """One combination and its scores over all evaluated frames; `spec` is its post-processing."""

    method: str
    metric: str
    threshold: float
    conf: float
    gate: str
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    gate_removed: int
    border: int = 1
    class_map: str = ""
    class_agnostic: int = 0
    gate_tp_removed: int = 0
    gate_fp_removed: int = 0

    def spec(self) -> PostprocessSpec:
        """The `PostprocessSpec` of this row (``postprocess(run, row.spec())`` gives its detections)."""
        return PostprocessSpec.from_dict(asdict(self))


@dataclass(frozen=True)
class SweepResult:
    """All rows of a sweep; ``best`` indexes the row with the highest F1 (first on ties).

    ``gate_effect[i]`` (gated rows only): ``(B, 2)`` int64, per size bucket of the box's longer side
    (`sitesight.sliced.gate.size_bucket_names`) the boxes the gate removed that were true / false
    positives of the same merge and confidence without the gate: where the gate helps (FP removed)
    and where it costs (TP removed, e.g. small objects only the slices see).
    """

    rows: tuple[SweepRow, ...]
    best: int
    frames: int
    iou: float
    gate_effect: dict[int, np.ndarray] = field(default_factory=dict)

    def to_pandas(self) -> Any:
        """One row per combination (the `SweepRow` fields) and a ``best`` column; needs pandas."""
        from sitesight.interop import records_frame

        frame = records_frame([asdict(r) for r in self.rows])
        frame["best"] = [i == self.best for i in range(len(self.rows))]
        return frame

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {"frames": self.frames, "iou": self.iou, "best": self.best, "rows": [asdict(r) for r in self.rows],
                "size_buckets": size_bucket_names(),
                "gate_effect": {str(i): {"tp_removed": e[:, 0].tolist(), "fp_removed": e[:, 1].tolist()}
                                for i, e in self.gate_effect.items()}}

    def save(self, path: Path | str) -> Path:
        """Write the table as ``.csv`` (a ``best`` column marks the best row) or ``.json``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            atomic.write_text(path, json.dumps(self.to_dict(), indent=1))
            return path
        with atomic.open_atomic(path, "w", newline="") as f:
            writer = csv.writer(f)
            names = list(SweepRow.__dataclass_fields__)
            writer.writerow([*names, "best"])
            for i, row in enumerate(self.rows):
                writer.writerow([*(getattr(row, n) for n in names), int(i == self.best)])
        return path


def merge_grid(
    methods: Sequence[str], metrics: Sequence[str], thresholds: Sequence[float], *, class_agnostic: bool = False
) -> list[MergeSpec]:
    """Every ``method × metric × threshold`` combination as `MergeSpec` values."""
    return [MergeSpec(m, k, float(t), class_agnostic) for m, k, t in itertools.product(methods, metrics, thresholds)]


def align_gt(run: Run, dataset: Dataset) -> list[Detections | None]:
    """Ground truth for each processed frame of ``run`` (None where the dataset lacks the frame).

    Frames are matched by `sitesight.identity.align_frames` (the one rule: longest shared path tail,
    unique on both sides; an ambiguity is an `InputError` listing the candidates).
    """
    alignment = align_frames([f.key for f in run.frames], dataset, root=run.root)
    return [None if i < 0 else dataset.samples[i].gt for i in alignment.sample.tolist()]


def sweep_run(
    run: Run,
    gts: Sequence[Detections | None],
    *,
    merges: Sequence[MergeSpec],
    confs: Sequence[float],
    gates: Sequence[GateParams | None] = (None,),
    class_names: Sequence[str] | None = None,
    class_map: str | Sequence[tuple[str, str]] = (),
    class_agnostic: bool = False,
    border: bool = True,
    num_classes: int | None = None,
    iou: float = 0.5,
    on_progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Score every ``merge × gate × conf`` combination on the run's stored raw boxes.

    Args:
        run: a stored run (`sitesight.sliced.store.load_run`).
        gts: ground truth per processed frame (`align_gt`); frames with None are left out.
        merges: merge settings (`merge_grid`).
        confs: confidence thresholds applied to raw boxes before merging.
        gates: gate settings; None means no gate.
        class_names: the ground truth's classes; the run's classes are mapped onto them by name
            (`sitesight.sliced.postprocess.target_classes`). None: class ids are taken as they are.
        class_map, class_agnostic, border: as in `sitesight.sliced.spec.PostprocessSpec`.
        num_classes: without ``class_names`` and class names in the run: ``class0…`` names for this
            many classes (default: up to the largest class id seen).
        iou: IoU at which a detection matches ground truth.
        on_progress: called with 1 after every combination.

    Returns:
        `SweepResult`, rows ordered merge-major, then gate, then confidence.
    """
    if len(gts) != len(run.frames):
        raise ValueError(f"sweep_run: {len(gts)} ground truths for {len(run.frames)} frames")
    used = [i for i, g in enumerate(gts) if g is not None]
    if not used:
        raise InputError("no processed frame of the run has ground truth", run.run_dir)
    if len(used) < len(gts):
        log.warning("%d of %d frames have no ground truth and are left out", len(gts) - len(used), len(gts))
    class_map = parse_class_map(class_map)
    base = PostprocessSpec(class_map=class_map, class_agnostic=class_agnostic, border=border)
    raw = run.table().take_frames(used)
    n_ids = int(raw.boxes.class_id.max()) + 1 if len(raw) else len(run.class_names or ())
    if class_names is None and run.class_names is None:
        class_names = [f"class{i}" for i in range(max(n_ids, num_classes or 0))]
    names, lookup = target_classes(run.class_names, base, class_names, n_ids)
    gt_list = [gts[i] for i in used]
    if class_agnostic:
        gt_list = [g.replace(class_id=np.zeros(len(g), np.int64)) for g in gt_list]
    gt = table_from_detections(gt_list, gt=True)
    _check_classes(gt, len(names))
    prepared = prepare(raw, [run.frames[i].image_wh for i in used], run.parameters, lookup=lookup, border=border)
    n_gt = int((~gt.crowd).sum())
    cache: dict = {}
    extra = {"border": int(border), "class_map": format_class_map(class_map), "class_agnostic": int(class_agnostic)}
    rows: dict[tuple[int, int, int], SweepRow] = {}
    effects: dict[tuple[int, int, int], np.ndarray] = {}
    n_buckets = len(size_bucket_names())
    for m, spec in enumerate(merges):
        by_conf = merge_by_confidence(prepared.annotated, confs, spec)
        for c, (conf, boxes) in enumerate(zip(confs, by_conf, strict=True)):
            merged = merged_table(prepared, boxes)
            pred = BoxTable.from_frame_table(merged, gt=False)
            pairs = _gt_pairs(pred, gt, iou)
            ungated = None
            for g, gate in enumerate(gates):
                keep = gate_keep(prepared, merged, gate, cache)
                tp, fp, fn = _counts(pred, gt, keep, pairs, iou, n_gt)
                if gate is not None:  # what it removed, judged by the same merge and confidence without a gate
                    if ungated is None:
                        ungated = (*_match_flags(pred, gt, pairs, iou), size_bucket(merged.boxes.xyxy))
                    is_tp, counted, bucket = ungated
                    removed = ~keep & counted
                    effects[(m, g, c)] = np.stack([np.bincount(bucket[removed & is_tp], minlength=n_buckets),
                                                   np.bincount(bucket[removed & ~is_tp], minlength=n_buckets)], axis=1)
                rows[(m, g, c)] = _row(spec, conf, gate, Counts(tp, fp, fn), int((~keep).sum()), extra, effects.get((m, g, c)))
                if on_progress is not None:
                    on_progress(1)
    keys = sorted(rows)
    ordered = [rows[key] for key in keys]
    best = int(np.argmax([r.f1 for r in ordered])) if ordered else -1
    return SweepResult(tuple(ordered), best, len(used), iou, {i: effects[k] for i, k in enumerate(keys) if k in effects})


def _check_classes(gt: BoxTable, num_classes: int) -> None:
    """The ground truth's class ids lie in ``0..num_classes - 1`` (the predictions' are mapped into them)."""
    if len(gt) and (gt.class_id.min() < 0 or gt.class_id.max() >= num_classes):
        raise InputError(f"ground truth: class id outside 0..{num_classes - 1}")


def _gt_pairs(pred: BoxTable, gt: BoxTable, iou: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(pred rows, gt rows)`` of every same-image, same-class pair with IoU ``>= iou``: the only
    pairs `sitesight.evaluation.matching.match_boxes` can match. None when ``iou <= 0`` (then every
    pair of a group can match)."""
    thr = min(float(iou), 1 - 1e-10)
    if thr <= 0:
        return None
    empty = np.zeros(0, np.int64)
    if len(pred) == 0 or len(gt) == 0:
        return empty, empty
    k = int(max(pred.class_id.max(), gt.class_id.max())) + 1
    g_group, p_group = gt.frame * k + gt.class_id, pred.frame * k + pred.class_id
    wmax = float((gt.xyxy[:, 2] - gt.xyxy[:, 0]).max())
    cell = float(max(gt.xyxy[:, 2].max(), pred.xyxy[:, 2].max()) - min(gt.xyxy[:, 0].min(), pred.xyxy[:, 0].min(), 0.0)) + wmax + 1
    key = g_group * cell + gt.xyxy[:, 0]
    order = np.argsort(key, kind="stable")
    key = key[order]
    # a ground truth overlaps a prediction in x only if it starts within [x1 - widest, x2]
    lo = np.searchsorted(key, p_group * cell + pred.xyxy[:, 0] - wmax, side="left")
    hi = np.searchsorted(key, p_group * cell + pred.xyxy[:, 2], side="right")
    rep = np.maximum(hi - lo, 0)
    pi = np.repeat(np.arange(len(pred)), rep)
    gi = order[lo[pi] + np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)]
    same = g_group[gi] == p_group[pi]
    pi, gi = pi[same], gi[same]
    hit = pair_ious(pred.xyxy[pi], pred.area[pi], gt.xyxy[gi], gt.area[gi], gt.crowd[gi]) >= thr
    return pi[hit], gi[hit]


def _counts(
    pred: BoxTable, gt: BoxTable, keep: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None, iou: float, n_gt: int
) -> tuple[int, int, int]:
    """TP, FP, FN of the predictions ``pred[keep]`` against all of ``gt`` at ``iou``.

    The same numbers as `sitesight.evaluation.detection.operating_point` at ``conf=0`` (it calls
    the same `match_boxes`), with `match_boxes` given only the boxes that can match: greedy matching
    never lets one connected group of candidate pairs affect another, so each group becomes its
    own "image"; predictions with no candidate are false positives.
    """
    n_pred = int(keep.sum())
    if pairs is None:  # iou <= 0: every pair of an image and class may match; match it all
        m = match_boxes(gt, pred.take(keep), iou_thresholds=[iou], max_det=None)
        counted = ~m.pred_ignored[0, 0]
        tp = int(((m.pred_gt[0, 0] >= 0) & counted).sum())
        return tp, int(counted.sum()) - tp, n_gt - tp
    sel = keep[pairs[0]]
    p, g = pairs[0][sel], pairs[1][sel]
    if len(p) == 0:
        return 0, n_pred, n_gt
    p_rows, p_node = np.unique(p, return_inverse=True)
    g_rows, g_node = np.unique(g, return_inverse=True)
    component = _components(p_node.ravel(), g_node.ravel() + len(p_rows), len(p_rows) + len(g_rows))
    sub_pred = pred.take(p_rows).with_columns(frame=component[: len(p_rows)])
    sub_gt = gt.take(g_rows).with_columns(frame=component[len(p_rows) :])
    m = match_boxes(sub_gt, sub_pred, iou_thresholds=[iou], max_det=None)
    counted = ~m.pred_ignored[0, 0]
    tp = int(((m.pred_gt[0, 0] >= 0) & counted).sum())
    ignored = len(counted) - int(counted.sum())
    return tp, n_pred - tp - ignored, n_gt - tp


def _match_flags(pred: BoxTable, gt: BoxTable, pairs: tuple[np.ndarray, np.ndarray] | None, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` bool true positives and ``(N,)`` bool counted (not matched to crowd) of all of ``pred`` at
    ``iou``: the matching `_counts` does with every box kept, per box."""
    n = len(pred)
    is_tp, counted = np.zeros(n, bool), np.ones(n, bool)
    if pairs is None:
        m = match_boxes(gt, pred, iou_thresholds=[iou], max_det=None)
        rows = m.pred_index
    else:
        if len(pairs[0]) == 0:
            return is_tp, counted
        p_rows, p_node = np.unique(pairs[0], return_inverse=True)
        g_rows, g_node = np.unique(pairs[1], return_inverse=True)
        component = _components(p_node.ravel(), g_node.ravel() + len(p_rows), len(p_rows) + len(g_rows))
        m = match_boxes(gt.take(g_rows).with_columns(frame=component[len(p_rows) :]),
                        pred.take(p_rows).with_columns(frame=component[: len(p_rows)]), iou_thresholds=[iou], max_det=None)
        rows = p_rows[m.pred_index]
    counted[rows] = ~m.pred_ignored[0, 0]
    is_tp[rows] = (m.pred_gt[0, 0] >= 0) & counted[rows]
    return is_tp, counted


def _components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``(n,)`` int64 connected-component id of every node of the graph with edges ``a[k]``-``b[k]``."""
    label = np.arange(n)
    while True:  # smallest node id, spread along edges and pointer jumps
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return np.unique(label, return_inverse=True)[1].ravel()


def _row(spec: MergeSpec, conf: float, gate: GateParams | None, op: Counts, removed: int, extra: dict,
         effect: np.ndarray | None = None) -> SweepRow:
    return SweepRow(
        method=spec.method,
        metric=spec.metric,
        threshold=spec.threshold,
        conf=float(conf),
        gate="" if gate is None else str(gate),
        tp=int(op.tp),
        fp=int(op.fp),
        fn=int(op.fn),
        precision=float(op.precision),
        recall=float(op.recall),
        f1=float(op.f1),
        gate_removed=removed,
        **extra,
        gate_tp_removed=0 if effect is None else int(effect[:, 0].sum()),
        gate_fp_removed=0 if effect is None else int(effect[:, 1].sum()),
    )

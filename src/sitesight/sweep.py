"""Sweeps without the model: merge × gate × confidence recomputed from a stored run and evaluated.

SAHI re-runs the model for every post-processing setting. Here the raw boxes of every slice and of
the full frame are already stored (`sitesight.store`), so each combination only re-runs the cheap
part (`sitesight.border.postprocess_frame`) and is scored with
`sitesight.evaluation.detection.operating_point` (TP/FP/FN at one IoU, greedy matching the way
pycocotools does it).

Speed: all frames of a run are laid side by side on one float32 canvas (a margin between frames,
so no box of one frame meets another's) and each combination is a single `sitesight.merge` call.
On that canvas coordinates are held to about 1/256 px for a few hundred 4K frames, so a box whose
overlap sits within ~1e-4 of a merge threshold may decide differently than a per-frame merge
(`sitesight.border.postprocess_frame`, which `sitesight detect` exports use) — irrelevant at the
IoU 0.5 an operating point is scored at, and what makes 40 combinations over 600 frames take
seconds instead of minutes.

Example:
    >>> from sitesight.border import MergeSpec
    >>> from sitesight.store import load_run
    >>> from sitesight.sweep import align_gt, sweep_run
    >>> run = load_run("runs/cam7")  # doctest: +SKIP
    >>> result = sweep_run(run, align_gt(run, dataset), merges=[MergeSpec("nms", "iou", 0.5)],
    ...                    confs=[0.3, 0.4], num_classes=3)  # doctest: +SKIP
    >>> result.best  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.border import MergeSpec, annotate_border, drop_cut_twins, slices_of
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.gate import GateParams
from sitesight.store import Run

__all__ = ["SweepRow", "SweepResult", "parse_range", "merge_grid", "align_gt", "sweep_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRow:
    """One combination and its scores over all evaluated frames."""

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


@dataclass(frozen=True)
class SweepResult:
    """All rows of a sweep; ``best`` indexes the row with the highest F1 (first on ties)."""

    rows: tuple[SweepRow, ...]
    best: int
    frames: int
    iou: float

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {"frames": self.frames, "iou": self.iou, "best": self.best, "rows": [asdict(r) for r in self.rows]}

    def save(self, path: Path | str) -> Path:
        """Write the table as ``.csv`` (a ``best`` column marks the best row) or ``.json``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=1))
            return path
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            names = list(SweepRow.__dataclass_fields__)
            writer.writerow([*names, "best"])
            for i, row in enumerate(self.rows):
                writer.writerow([*(getattr(row, n) for n in names), int(i == self.best)])
        return path


def parse_range(text: str) -> list[float]:
    """``"0.15:0.5:0.05"`` (start:stop:step, stop included) or ``"0.3,0.4"`` → list of floats.

    Raises:
        ValueError: malformed text or a non-positive step.
    """
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if step <= 0:
                raise ValueError(f"step must be positive in {text!r}")
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(max(n, 0))]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise ValueError(f"expected start:stop:step or a comma list of numbers, got {text!r} ({exc})") from None


def merge_grid(
    methods: Sequence[str], metrics: Sequence[str], thresholds: Sequence[float], *, class_agnostic: bool = False
) -> list[MergeSpec]:
    """Every ``method × metric × threshold`` combination as `MergeSpec` values."""
    return [MergeSpec(m, k, float(t), class_agnostic) for m, k, t in itertools.product(methods, metrics, thresholds)]


def align_gt(run: Run, dataset: Dataset) -> list[Detections | None]:
    """Ground truth for each processed frame of ``run`` (None where the dataset lacks the frame).

    Frames are matched by resolved path, then by file name when that is unique in the dataset.
    """
    by_path = {str(dataset.image_path(s).resolve()): s for s in dataset.samples}
    names: dict[str, list] = {}
    for s in dataset.samples:
        names.setdefault(Path(s.path).name, []).append(s)
    out: list[Detections | None] = []
    for rec in run.frames:
        sample = by_path.get(str(Path(rec.key).resolve()))
        if sample is None:
            same = names.get(Path(rec.key).name, [])
            sample = same[0] if len(same) == 1 else None
        out.append(None if sample is None else sample.gt)
    return out


def sweep_run(
    run: Run,
    gts: Sequence[Detections | None],
    *,
    merges: Sequence[MergeSpec],
    confs: Sequence[float],
    gates: Sequence[GateParams | None] = (None,),
    num_classes: int | None = None,
    iou: float = 0.5,
    on_progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Score every ``merge × gate × conf`` combination on the run's stored raw boxes.

    Args:
        run: a stored run (`sitesight.store.load_run`).
        gts: ground truth per processed frame (`align_gt`); frames with None are left out.
        merges: merge settings (`merge_grid`).
        confs: confidence thresholds applied to raw boxes before merging.
        gates: gate settings; None means no gate.
        num_classes: number of classes (default: 1 + the largest class id seen).
        iou: IoU at which a detection matches ground truth.
        on_progress: called with 1 after every combination.

    Returns:
        `SweepResult`, rows ordered merge-major, then gate, then confidence.
    """
    from sitesight.evaluation.detection import operating_point

    if len(gts) != len(run.frames):
        raise ValueError(f"sweep_run: {len(gts)} ground truths for {len(run.frames)} frames")
    used = [i for i, g in enumerate(gts) if g is not None]
    if not used:
        raise InputError("no processed frame of the run has ground truth", run.run_dir)
    if len(used) < len(gts):
        log.warning("%d of %d frames have no ground truth and are left out", len(gts) - len(used), len(gts))
    gt_list = [gts[i] for i in used]
    whs = [run.frames[i].image_wh for i in used]
    slices = [slices_of(wh, run.parameters) for wh in whs]
    if num_classes is None:
        seen = [d.class_id for d in (*gt_list, *(run.raw[i] for i in used)) if len(d)]
        num_classes = int(max((c.max() for c in seen), default=0)) + 1
    # The border pairing is independent of the merge and the confidence: do it once per frame.
    # Then all frames are laid side by side on one canvas (no box of one frame can touch another's)
    # so that each combination is one `merge` call instead of one per frame.
    offsets = _canvas_offsets(whs)
    canvases: dict[bool, Detections] = {}
    for agnostic in sorted({m.class_agnostic for m in merges}):
        parts = [annotate_border(run.raw[i], s, wh, class_agnostic=agnostic).with_attributes(
                     frame=np.full(len(run.raw[i]), k, np.int64)).shift(*offsets[k])
                 for k, (i, s, wh) in enumerate(zip(used, slices, whs, strict=True))]
        canvases[agnostic] = Detections.concat(parts)
    full_parts = []
    for k, i in enumerate(used):
        raw = run.raw[i]
        f = raw[np.asarray(raw.attributes.get("source", np.full(len(raw), -1))) < 0].replace(attributes={})
        full_parts.append(f.with_attributes(frame=np.full(len(f), k, np.int64)))
    full = Detections.concat(full_parts)
    rows: dict[tuple[int, int, int], SweepRow] = {}
    for c, conf in enumerate(confs):
        kept = {a: drop_cut_twins(canvas, conf) for a, canvas in canvases.items()}
        for m, spec in enumerate(merges):
            merged = _merge_canvas(kept[spec.class_agnostic], spec, offsets, len(used))
            for g, gate in enumerate(gates):
                preds, removed = merged, 0
                if gate is not None:
                    preds, removed = _gate_frames(merged, full, gate)
                op = operating_point(gt_list, preds, iou=iou, conf=0.0, num_classes=num_classes)
                rows[(m, g, c)] = _row(spec, conf, gate, op, removed)
                if on_progress is not None:
                    on_progress(1)
    rows = [rows[key] for key in sorted(rows)]
    best = int(np.argmax([r.f1 for r in rows])) if rows else -1
    return SweepResult(tuple(rows), best, len(used), iou)


def _canvas_offsets(whs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(F, 2)`` float32 ``(dx, dy)`` placing frames on a grid with a margin between cells."""
    cell = float(max(max(w, h) for w, h in whs)) + 1024.0
    cols = int(np.ceil(np.sqrt(len(whs))))
    k = np.arange(len(whs))
    return np.stack([(k % cols) * cell, (k // cols) * cell], axis=1).astype(np.float32)


def _merge_canvas(canvas: Detections, spec: MergeSpec, offsets: np.ndarray, n_frames: int) -> list[Detections]:
    """Merge a canvas of frames in one call; split the result back into per-frame detections."""
    from sitesight.merge import merge

    canvas = canvas.replace(attributes={k: v for k, v in canvas.attributes.items() if k in ("frame", "source")})
    merged = merge(canvas, method=spec.method, metric=spec.metric, threshold=spec.threshold,
                   class_agnostic=spec.class_agnostic)
    frame = merged.attributes["frame"]
    order = np.argsort(frame, kind="stable")
    merged = merged[order]
    frame = frame[order]
    xyxy = merged.xyxy - np.tile(offsets[frame], 2)
    merged = merged.replace(xyxy=xyxy)
    bounds = np.searchsorted(frame, np.arange(n_frames + 1))
    return [merged[bounds[k] : bounds[k + 1]] for k in range(n_frames)]


def _gate_frames(merged: list[Detections], full: Detections, gate: GateParams) -> tuple[list[Detections], int]:
    """`sitesight.gate.gate_mask` for every frame at once: pairs are formed within a frame only.

    ``full`` holds the full-frame boxes of all frames (frame pixels) with a ``frame`` attribute.
    """
    cand = full[full.score >= gate.conf]
    sizes = np.array([len(d) for d in merged])
    if sizes.sum() == 0 or len(cand) == 0:
        return [d[:0] for d in merged], int(sizes.sum())
    det = Detections.concat([d.replace(attributes={}) for d in merged])
    frame = np.repeat(np.arange(len(merged)), sizes)
    # Frames side by side on one float64 line; a candidate can vouch only if its box, grown by r,
    # overlaps the detection in x: find those with two binary searches instead of all pairs.
    cell = float(max(det.xyxy[:, 2].max(), cand.xyxy[:, 2].max())) + 2 * gate.r + 1.0
    cand_frame = cand.attributes["frame"]
    key = cand_frame * cell + cand.xyxy[:, 0].astype(np.float64)
    order = np.argsort(key, kind="stable")
    key = key[order]
    wmax = float((cand.xyxy[:, 2] - cand.xyxy[:, 0]).max())
    lo = np.searchsorted(key, frame * cell + det.xyxy[:, 0] - gate.r - wmax, side="left")
    hi = np.searchsorted(key, frame * cell + det.xyxy[:, 2] + gate.r, side="right")
    rep = hi - lo
    det_idx = np.repeat(np.arange(len(det)), rep)
    within = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    cand_idx = order[lo[det_idx] + within]
    a, b = det.xyxy[det_idx], cand.xyxy[cand_idx]
    d = (a[:, :2] + a[:, 2:]) / 2 - (b[:, :2] + b[:, 2:]) / 2
    near = (d ** 2).sum(axis=1) <= gate.r * gate.r
    inter = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None).prod(axis=1)
    smaller = np.minimum((a[:, 2:] - a[:, :2]).prod(axis=1), (b[:, 2:] - b[:, :2]).prod(axis=1))
    near |= np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0) >= gate.ios
    near &= frame[det_idx] == cand_frame[cand_idx]
    if not gate.class_agnostic:
        near &= det.class_id[det_idx] == cand.class_id[cand_idx]
    keep = np.bincount(det_idx[near], minlength=len(det)) > 0
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = [d[keep[bounds[k] : bounds[k + 1]]] for k, d in enumerate(merged)]
    return out, int((~keep).sum())


def _row(spec: MergeSpec, conf: float, gate: GateParams | None, op: Any, removed: int) -> SweepRow:
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
    )

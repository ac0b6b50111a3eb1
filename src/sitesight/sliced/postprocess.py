"""The one path from a stored run to final detections: `postprocess(run, spec)`.

Every command that reads a run calls it (``export``, ``eval det|coco --pred RUN``, ``report``,
``mine``); ``sweep`` and ``eval iou-aware`` run the very same stages (`prepare`,
`sitesight.sliced.border.merge_by_confidence`, `gate_keep`) for many settings at once:

1. classes: the model's class ids are mapped by name onto the target classes (the ground truth's,
   or the run's own) through the spec's class map; ``class_agnostic`` collapses them into one;
2. the slice-border rule pairs each cut box with its uncut twin (`sitesight.sliced.border.annotate_border`);
3. raw boxes with ``score < conf`` are dropped, then cut boxes whose twin passes ``conf``;
4. the merge (NMS / NMM / greedy NMM over IoU / IoS), each frame apart;
5. the full-image gate, when the spec has one.

All frames go through each stage in one call (a `FrameTable`), so a whole run costs a few numpy
calls per stage; the result equals doing it frame by frame (`sitesight.sliced.border.postprocess_frame`).

Example:
    >>> from sitesight.sliced.postprocess import postprocess
    >>> from sitesight.sliced.spec import PostprocessSpec
    >>> from sitesight.sliced.store import load_run
    >>> final = postprocess(load_run("runs/cam7"), PostprocessSpec(conf=0.3))  # doctest: +SKIP
    >>> final.detections()[0]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.frametable import FrameTable
from sitesight.identity import AGNOSTIC_NAME, class_lookup
from sitesight.sliced.border import annotate_border, merge_by_confidence, slices_of
from sitesight.sliced.gate import GateParams, gate_candidates, gate_mask_frames
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import FrameRecord, Run

__all__ = ["FinalRun", "Prepared", "postprocess", "prepare", "gate_keep", "merged_table", "target_classes"]

_HELPERS = ("border_cut", "twin_score", "frame", "row")


@dataclass(frozen=True, eq=False)
class FinalRun:
    """A run's final detections under one spec.

    Attributes:
        run_dir: the run folder.
        frames: the processed frames (``FrameRecord.key`` is the frame path as stored).
        root: the folder the frame keys hang from (`sitesight.sliced.store.Run.root`).
        table: final boxes, ``frame`` = position in ``frames``; attributes are the keeper's raw
            attributes (``source``, ``iou_pred``, ...).
        class_names: names of the final class ids.
        spec: the spec that produced them.
        gate_removed: boxes the gate removed over all frames.
    """

    run_dir: Path
    frames: tuple[FrameRecord, ...]
    root: Path | None
    table: FrameTable
    class_names: tuple[str, ...]
    spec: PostprocessSpec
    gate_removed: int

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.frames]

    def detections(self) -> list[Detections]:
        """One `Detections` per frame of ``frames``."""
        return self.table.per_frame()

    def summary(self) -> dict[str, Any]:
        """What every output records: the run, the spec, the classes and the counts."""
        return {"run": str(self.run_dir), "spec": self.spec.to_dict(), "class_names": list(self.class_names),
                "frames": len(self.frames), "boxes": len(self.table), "gate_removed": self.gate_removed}


@dataclass(frozen=True, eq=False)
class Prepared:
    """Raw boxes of every frame after the class mapping and the border pairing, ready to merge.

    Attributes:
        annotated: all raw boxes with int64 ``frame``, ``row`` (index into ``raw``) and, with the
            border rule, ``border_cut`` / ``twin_score`` attributes.
        raw: the class-mapped raw boxes, attributes as stored.
        full: the full-frame boxes (``source == -1``) of ``raw``, with ``frame``: the gate's candidates.
        image_wh: ``(F, 2)`` int64 frame sizes (the gate's relative size bounds need them).
    """

    annotated: Detections
    raw: FrameTable
    full: FrameTable
    image_wh: np.ndarray

    @property
    def n_frames(self) -> int:
        return self.raw.n_frames


def target_classes(
    run_names: Sequence[str] | None, spec: PostprocessSpec, class_names: Sequence[str] | None, n_ids: int
) -> tuple[tuple[str, ...], np.ndarray]:
    """``(target names, lookup)``: the output's class names and the ``(n_ids,)`` int64 map from the
    run's class ids to them (-1 = dropped), by name (`sitesight.identity.class_lookup`).

    ``class_names`` None keeps the run's classes (renamed by the class map; ``class0…`` when the run
    recorded none); class-agnostic work has the one class `sitesight.identity.AGNOSTIC_NAME`.
    """
    if spec.class_agnostic:
        return (AGNOSTIC_NAME,), np.zeros(n_ids, np.int64)
    if run_names is not None and n_ids > len(run_names):
        raise InputError(f"the run's boxes use class ids up to {n_ids - 1} but it names only {len(run_names)} classes "
                         f"{list(run_names)}")
    if class_names is None:
        names = list(run_names) if run_names is not None else [f"class{i}" for i in range(n_ids)]
        mapping = dict(spec.class_map)
        targets: list[str] = []
        for n in names:
            t = mapping.get(n, n)
            if t and t not in targets:
                targets.append(t)
        return tuple(targets), class_lookup(names, targets, class_map=spec.class_map)
    lookup = class_lookup(run_names, class_names, class_map=spec.class_map, num_source=n_ids)
    return tuple(class_names), lookup


def prepare(
    raw: FrameTable,
    image_whs: Sequence[tuple[int, int]],
    parameters: Mapping[str, Any],
    *,
    lookup: np.ndarray,
    border: bool = True,
) -> Prepared:
    """Stages 1–2 of the module notes for all frames: map classes (``lookup``: run class id → target
    id, -1 drops), then pair border cuts with their twins.

    Args:
        raw: the run's raw boxes (``source`` attribute: slice index, -1 = full frame).
        image_whs: ``(width, height)`` per frame.
        parameters: the run's manifest parameters (slice grid).
        lookup: ``(K,)`` int64 from `target_classes`.
        border: apply the slice-border rule.
    """
    boxes = raw.boxes
    if len(boxes):
        ids = np.asarray(lookup, np.int64)[boxes.class_id]
        keep = ids >= 0
        raw = FrameTable(raw.frame[keep], boxes[keep].replace(class_id=ids[keep]), raw.n_frames)
    boxes = raw.boxes
    if "source" not in boxes.attributes:
        boxes = boxes.with_attributes(source=np.full(len(boxes), -1, np.int32))
        raw = raw.replace(boxes)
    rows = np.arange(len(boxes), dtype=np.int64)
    plain = Detections(xyxy=boxes.xyxy, score=boxes.score, class_id=boxes.class_id,
                       attributes={"source": boxes.attributes["source"], "frame": raw.frame, "row": rows})
    sliced = np.asarray(boxes.attributes["source"]) >= 0
    if border and sliced.any():
        slices: dict[tuple[int, int], np.ndarray] = {}
        parts = []
        offsets = raw.offsets
        for f in np.unique(raw.frame[sliced]).tolist():
            wh = tuple(image_whs[f])
            if wh not in slices:
                slices[wh] = slices_of(wh, parameters)
            part = plain[slice(int(offsets[f]), int(offsets[f + 1]))]
            parts.append(annotate_border(part, slices[wh], wh))
        cut = np.zeros(len(boxes), bool)
        twin = np.full(len(boxes), -1.0, np.float32)
        done = Detections.concat(parts)
        cut[done.attributes["row"]] = done.attributes["border_cut"]
        twin[done.attributes["row"]] = done.attributes["twin_score"]
        plain = plain.with_attributes(border_cut=cut, twin_score=twin)
    full = raw.filter(np.asarray(boxes.attributes["source"]) < 0)
    return Prepared(plain.replace(attributes={k: v for k, v in plain.attributes.items() if k != "source"}), raw, full,
                    np.asarray(image_whs, np.int64).reshape(-1, 2))


def gate_keep(prepared: Prepared, merged: FrameTable, gate: GateParams | None, cache: dict | None = None) -> np.ndarray:
    """``(N,)`` bool: which rows of ``merged`` the gate keeps; all without a gate.

    ``cache`` (a dict kept by the caller) reuses the sorted candidates across calls with the same gate.
    """
    if gate is None:
        return np.ones(len(merged), bool)
    candidates = None if cache is None else cache.get(gate)
    if candidates is None:
        candidates = gate_candidates(prepared.full, gate)
        if cache is not None:
            cache[gate] = candidates
    return gate_mask_frames(merged, candidates, image_wh=prepared.image_wh)


def merged_table(prepared: Prepared, merged: Detections) -> FrameTable:
    """Merged boxes (with a ``frame`` attribute, frames in any order) as a `FrameTable` of the
    prepared frames; each frame keeps its merge order (score-descending; the sort is stable)."""
    return FrameTable(merged.attributes["frame"], merged, prepared.n_frames)


def postprocess(
    run: Run,
    spec: PostprocessSpec,
    *,
    class_names: Sequence[str] | None = None,
    raw: FrameTable | None = None,
) -> FinalRun:
    """A stored run's final detections under ``spec`` (the stages in the module notes).

    Args:
        run: a stored run (`sitesight.sliced.store.load_run`).
        spec: confidence, merge, border rule, gate, class map, class-agnostic.
        class_names: the target classes (usually the ground truth's): the run's classes are mapped
            onto them by name; None keeps the run's own classes.
        raw: raw boxes to use instead of the run's (e.g. rescored), frame = position in ``run.frames``.

    Returns:
        `FinalRun`; every final box keeps the attributes of the raw box that kept its group.

    Raises:
        InputError: a model class that is neither a target class nor mapped (both sets listed).
    """
    table = run.table() if raw is None else raw
    if table.n_frames != len(run.frames):
        raise ValueError(f"postprocess: raw boxes of {table.n_frames} frames for a run of {len(run.frames)}")
    n_ids = int(table.boxes.class_id.max()) + 1 if len(table) else len(run.class_names or ())
    names, lookup = target_classes(run.class_names, spec, class_names, n_ids)
    prepared = prepare(table, [f.image_wh for f in run.frames], run.parameters, lookup=lookup, border=spec.border)
    merged = merged_table(prepared, merge_by_confidence(prepared.annotated, [spec.conf], spec.merge_spec)[0])
    keep = gate_keep(prepared, merged, spec.gate)
    kept = merged.filter(keep)
    rows = kept.boxes.attributes["row"]
    attributes = {k: v[rows] for k, v in prepared.raw.boxes.attributes.items() if k not in _HELPERS}
    final = Detections(xyxy=kept.boxes.xyxy, score=kept.boxes.score, class_id=kept.boxes.class_id, attributes=attributes)
    return FinalRun(run.run_dir, run.frames, run.root, kept.replace(final), names, spec, int((~keep).sum()))

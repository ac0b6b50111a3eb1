"""A ``MINED/`` folder at rest, and judging its models once the labels come back.

`sitesight.mining.mad.mine_pool` writes the folder (layout in its module notes); here are its
boxes file ``MINED/boxes.parquet`` — every model's final boxes on the mined and control frames in
the one box schema (`sitesight.boxparquet`: the run shard's columns plus ``model``, the frame list,
the class names and the post-processing spec in the metadata) — the manifest reader, and
`verdict_dir`, which needs nothing but the folder and the labels.

A ``boxes.parquet`` written before the one schema (columns ``model, image`` (frame key),
``x1 y1 x2 y2 score class_id``, no frame list) is still read, so labels that come back for an
older folder can be judged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sitesight import atomic
from sitesight.boxparquet import FRAMES_KEY, StoredBoxes, read_boxes, write_boxes
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.frametable import FrameTable
from sitesight.identity import align_frames, align_paths
from sitesight.mining.pool import Pool
from sitesight.mining.verdict import Verdict, verdict
from sitesight.sliced.spec import PostprocessSpec

__all__ = ["MINED_FORMAT", "write_mined_boxes", "read_mined_boxes", "read_mined_manifest", "align_gt", "verdict_dir"]

log = logging.getLogger(__name__)
MINED_FORMAT = "sitesight-mined"


def write_mined_boxes(pool: Pool, frames: np.ndarray, path: Path, spec: PostprocessSpec | None) -> None:
    """``boxes.parquet``: every model's boxes on ``frames`` in the one box schema (`sitesight.boxparquet`),
    with a ``model`` column, the pool's class names and the ``spec`` that made them final."""
    frames = np.asarray(frames, np.int64)
    parts = [run.take_frames(frames) for run in pool.runs.values()]
    boxes = Detections.concat([Detections(xyxy=p.xyxy, score=p.score, class_id=p.class_id,
                                          attributes={"model": np.full(len(p), name, object)})
                               for name, p in zip(pool.runs, parts, strict=True)])
    table = FrameTable(np.concatenate([p.frame for p in parts]), boxes, len(frames))  # rows by frame, then model
    meta = [[f, str(pool.keys[f]), [int(v) for v in pool.image_wh[f]], None] for f in frames.tolist()]
    write_boxes(path, table, meta, class_names=pool.class_names or None, spec=None if spec is None else spec.to_dict())


def read_mined_boxes(path: Path) -> StoredBoxes:
    """``boxes.parquet`` as written by `write_mined_boxes`, or by sitesight before `sitesight.boxparquet`
    (columns ``model, image`` (frame key), ``x1 y1 x2 y2 score class_id``; no frame list), which is still read."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"unreadable boxes.parquet ({str(exc)[:160]})", path) from None
    if FRAMES_KEY in (schema.metadata or {}) or "image" not in schema.names:
        return read_boxes(path)
    try:
        old = pq.read_table(path)
        image = [str(k) for k in old.column("image").to_pylist()]
        keys = sorted(set(image))
        position = {k: i for i, k in enumerate(keys)}
        boxes = Detections(xyxy=np.stack([old.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1).reshape(-1, 4),
                           score=old.column("score").to_numpy(), class_id=old.column("class_id").to_numpy(),
                           attributes={"model": np.array(old.column("model").to_pylist(), object)})
    except (KeyError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"boxes.parquet in the old layout lacks a column ({str(exc)[:120]})", path) from None
    frame = np.array([position[k] for k in image], np.int64)
    return StoredBoxes([[i, k, None, None] for i, k in enumerate(keys)], FrameTable(frame, boxes, len(keys)), None, None)


def read_mined_manifest(mined_dir: Path) -> dict[str, Any]:
    path = mined_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("not a mined folder (no manifest.json)", mined_dir) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", path, f"line {exc.lineno}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MINED_FORMAT:
        raise InputError(f"not a {MINED_FORMAT} manifest", path, "format")
    for key in ("models", "pairs", "control"):
        if key not in manifest:
            raise InputError(f"missing {key!r}", path, key)
    return manifest


def align_gt(keys: Sequence[str], dataset: Dataset, class_names: Sequence[str]) -> list[Detections | None]:
    """Ground truth per frame key, frames aligned by `sitesight.identity.align_frames` (the one rule).

    When both sides name their classes, ground-truth class ids are renumbered into ``class_names``
    by name (labels the models do not know are dropped, with a warning).
    """
    lookup = None
    if class_names and tuple(dataset.class_names) != tuple(class_names):
        position = {n: i for i, n in enumerate(class_names)}
        lookup = np.array([position.get(n, -1) for n in dataset.class_names], np.int64)
        unknown = [n for n in dataset.class_names if n not in position]
        if unknown:
            log.warning("labels %s are not among the models' classes %s and are left out", unknown, list(class_names))
    sample = align_frames(list(keys), dataset, what="mined").sample
    if (sample < 0).any():
        # labels of packaged copies (`sitesight.curation.packaging` flattens frames into one images/
        # folder and prefixes a repeated name with a 5-digit counter): the same rule on the names
        # without that prefix, for the frames still unmatched
        rest = np.flatnonzero(sample < 0)
        names = [re.sub(r"^\d{5}_", "", Path(str(s.path)).name) for s in dataset.samples]
        again = align_paths([keys[i] for i in rest], names, what="mined").sample
        taken = set(sample[sample >= 0].tolist())
        sample[rest] = [j if j >= 0 and j not in taken else -1 for j in again.tolist()]
    out: list[Detections | None] = []
    for i in sample.tolist():
        if i < 0:
            out.append(None)
            continue
        gt = dataset.samples[i].gt
        if lookup is not None and len(gt):
            ids = lookup[gt.class_id]
            gt = gt[ids >= 0].replace(class_id=ids[ids >= 0])
        out.append(gt)
    return out


def verdict_dir(mined_dir: Path | str, gt: Dataset, *, conf: float = 0.5, iou: float = 0.5, min_frames: int = 30) -> Verdict:
    """Judge the models of a ``MINED/`` folder on labels that came back; writes ``verdict.json``.

    Args:
        mined_dir: the folder `mine_pool` wrote.
        gt: labels of (some of) the mined and control frames, matched to frame keys by path or name.
        conf, iou: the operating point images are judged at.
        min_frames: warn below this many labelled frames in a mined or the random set.
    """
    mined_dir = Path(mined_dir)
    manifest = read_mined_manifest(mined_dir)
    stored = read_mined_boxes(mined_dir / "boxes.parquet")
    keys = sorted({k for p in manifest["pairs"].values() for k in p["frames"]} | set(manifest["control"]))
    index = {k: i for i, k in enumerate(keys)}
    boxes = stored.table.boxes
    model_col = np.asarray(boxes.attributes.get("model", np.zeros(len(boxes), object)), object)
    image_col = np.array([index.get(k, -1) for k in stored.keys], np.int64)[stored.table.frame]
    preds = {}
    for m in manifest["models"]:
        rows = np.flatnonzero(model_col == m)
        order = rows[np.argsort(image_col[rows], kind="stable")]
        bounds = np.searchsorted(image_col[order], np.arange(len(keys) + 1))
        preds[m] = [boxes[order[s:e]].replace(attributes={}) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    gts = align_gt(keys, gt, manifest.get("class_names") or ())
    found = sum(g is not None for g in gts)
    log.info("labels found for %d of %d mined/control frames", found, len(keys))
    pair_sets = {(p["a"], p["b"]): [index[k] for k in p["frames"]] for p in manifest["pairs"].values()}
    result = verdict(gts, preds, pair_sets, [index[k] for k in manifest["control"]], conf=conf, iou=iou, min_frames=min_frames)
    out = result.to_dict()
    out["labelled_frames"] = found
    out["frames"] = len(keys)
    atomic.write_text(mined_dir / "verdict.json", json.dumps(out, indent=1))
    return result

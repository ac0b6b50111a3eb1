"""Runs at rest: raw predictions as Parquet shards plus a ``manifest.json``; resumable.

A run folder holds::

    RUN/manifest.json          (`sitesight.sliced.manifest`) model spec, parameters, library versions, the ordered frame keys,
                               the skipped frames with their reason (`record_skipped`), the
                               post-processing its boxes are meant for when known (`record_spec`)
    RUN/shards/shard-000000.parquet ...

Each shard is a box file of the one schema for raw and final boxes (`sitesight.boxparquet`): one
row per raw box (``image_id`` = frame index in the manifest, ``source`` = slice index or -1 for the
full-frame pass, ``x1 y1 x2 y2`` absolute frame pixels, ``score``, ``class_id``, then one column per
extra attribute such as ``iou_pred``) so pandas, polars, DuckDB and Ray read it as it is; the
class names are the manifest's. The frames a shard covers, including frames with no boxes and
frames that were skipped (unreadable image, with the reason), are listed in the shard's Parquet
key-value metadata under ``sitesight.sliced.frames``. A shard is written to a temporary name and renamed
into place, so after a kill a frame is either in exactly one complete shard or in none: the
done-list is derived from the shards and a resumed run neither loses nor repeats a frame.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.sliced.store import load_run, write_run
    >>> run = write_run("run/", [("a.jpg", (1920, 1080))], [Detections(xyxy=[[0, 0, 9, 9]])],
    ...                 model="stand-in", parameters={})  # doctest: +SKIP
    >>> load_run("run/").raw[0]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sitesight import atomic
from sitesight.boxparquet import check_columns, frames_meta, table_from_arrow, write_boxes
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.frametable import FrameTable
from sitesight.sliced.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    library_versions,
    model_identity,
    new_manifest,
    read_manifest,
    record_spec,
)

__all__ = [
    "FrameRecord",
    "SkippedFrame",
    "Run",
    "open_run",
    "write_shard",
    "done_frames",
    "load_run",
    "read_shards",
    "shard_index",
    "write_run",
    "library_versions",
    "model_identity",
    "record_skipped",
    "record_spec",
    "read_manifest",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
]

logger = logging.getLogger(__name__)

SHARDS = "shards"


@dataclass(frozen=True)
class FrameRecord:
    """A frame that was processed: its index in the manifest, key (path) and ``(width, height)``."""

    index: int
    key: str
    image_wh: tuple[int, int]


@dataclass(frozen=True)
class SkippedFrame:
    """A frame that could not be read, and why."""

    index: int
    key: str
    reason: str


@dataclass(frozen=True)
class Run:
    """A stored run.

    Args:
        run_dir: the run folder.
        manifest: the parsed ``manifest.json`` (``model``, ``parameters``, ``versions``, ``frames``).
        frames: processed frames in manifest order.
        raw: one `Detections` per processed frame, aligned with ``frames``; attributes hold
            ``"source"`` (int32) and any extra stored columns.
        skipped: frames that were unreadable, with the reason.
    """

    run_dir: Path
    manifest: Mapping[str, Any]
    frames: tuple[FrameRecord, ...]
    raw: tuple[Detections, ...]
    skipped: tuple[SkippedFrame, ...] = ()

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The detection parameters recorded in the manifest (slice size, overlap, ...)."""
        return self.manifest.get("parameters", {})

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The model's class names (index = class id) as recorded at detection time; None when not recorded."""
        names = self.manifest.get("class_names")
        return None if names is None else tuple(str(n) for n in names)

    @property
    def root(self) -> Path | None:
        """The folder the frame keys are relative to, or that holds them all (recorded at detection time)."""
        root = self.manifest.get("root")
        return None if root is None else Path(root)

    def to_pandas(self) -> Any:
        """One row per stored raw box: ``frame``, ``key``, ``x1 y1 x2 y2``, ``score``, ``class_id``,
        ``class_name`` (when recorded), ``source`` and the other stored columns (needs pandas)."""
        from sitesight.interop import detections_frame

        return detections_frame(self.raw, keys=[f.key for f in self.frames], class_names=self.class_names, key_name="key")

    @property
    def spec(self) -> dict[str, Any] | None:
        """The post-processing the run's boxes are meant for (a `sitesight.sliced.spec.PostprocessSpec`
        dict, `record_spec`; e.g. what ``rescore`` was told), None when not recorded."""
        spec = self.manifest.get("spec")
        return dict(spec) if isinstance(spec, dict) else None

    def with_class_names(self, class_names: Sequence[str]) -> Run:
        """The same run with the model's class names given (for a run that did not record them)."""
        return Run(self.run_dir, {**self.manifest, "class_names": [str(n) for n in class_names]}, self.frames, self.raw,
                   self.skipped)

    def table(self) -> FrameTable:
        """The raw boxes of every processed frame as one `FrameTable` (frame = position in ``frames``)."""
        return FrameTable.from_frames(self.raw)

    @property
    def pending(self) -> int:
        """Frames listed in the manifest that are neither done nor skipped."""
        return len(self.manifest.get("frames", ())) - len(self.frames) - len(self.skipped)


def _quarantine_bad_shards(run_dir: Path) -> list[Path]:
    """Move shards that cannot be read (a disk error, a copy cut short) to ``RUN/corrupt/``.

    Their frames are then not done, so a resume redoes them. Returns the moved shards' new paths.
    """
    moved = []
    for path in _shard_paths(run_dir):
        try:
            frames_meta(path, pq.read_schema(path).metadata)
            pq.ParquetFile(path).metadata  # noqa: B018 - reads the footer: a truncated file fails here
        except (InputError, pa.ArrowException, OSError) as exc:
            target = run_dir / "corrupt" / path.name
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            logger.warning("%s: unreadable shard (%s); moved to %s, its frames will be redone", path, str(exc)[:120], target)
            moved.append(target)
    return moved


def open_run(
    run_dir: Path | str,
    frame_keys: Sequence[str],
    *,
    model: str,
    parameters: Mapping[str, Any],
    versions: Mapping[str, str] | None = None,
    class_names: Sequence[str] | None = None,
    timestamps: bool = False,
) -> set[int]:
    """Create a run folder, or reopen an existing one for resuming; returns the finished frame indices.

    A new folder gets a manifest. An existing one must hold the same model, parameters and frame
    list (else `InputError`: use a fresh folder); leftover temporary files of a killed writer are
    removed. Finished frames (done or skipped) are those listed in complete shards.
    ``class_names`` (the model's names of its class ids) are recorded so that classes can be
    matched by name later; the manifest also records ``root``, the folder holding every frame.
    ``timestamps`` records the creation time as ``created`` (off: the same inputs give the same bytes).
    """
    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST
    parameters = json.loads(json.dumps(dict(parameters)))  # normalise tuples to lists for comparison
    model_id = model_identity(model)
    if manifest_path.exists():
        old = read_manifest(run_dir)
        same_model = old.get("model_id") == model_id if "model_id" in old else old.get("model") == model
        for key, same in (("model", same_model), ("parameters", old.get("parameters") == parameters),
                          ("frames", old.get("frames") == list(frame_keys))):  # fmt: skip
            if not same:
                raise InputError(f"the existing run has a different {key}; use a new output folder to start over", manifest_path, key)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        manifest = new_manifest(frame_keys, model=model, model_id=model_id, parameters=parameters, versions=versions,
                                class_names=class_names, timestamps=timestamps)
        atomic.write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
    shard_dir = run_dir / SHARDS
    shard_dir.mkdir(exist_ok=True)
    for stale in shard_dir.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    _quarantine_bad_shards(run_dir)
    return done_frames(run_dir)


def _shard_paths(run_dir: Path) -> list[Path]:
    return sorted((run_dir / SHARDS).glob("shard-*.parquet"))


def shard_index(run_dir: Path | str) -> list[tuple[str, list[list[Any]]]]:
    """Each complete shard's file name and frame list (``[index, key, [w, h] or None, reason]`` rows),
    from the Parquet footers alone: no box is read (how a distributed reader partitions a run)."""
    return [(path.name, frames_meta(path, pq.read_schema(path).metadata)) for path in _shard_paths(Path(run_dir))]


def done_frames(run_dir: Path | str) -> set[int]:
    """Indices of frames (done or skipped) listed in the run's complete shards."""
    done: set[int] = set()
    for path in _shard_paths(Path(run_dir)):
        done.update(int(row[0]) for row in frames_meta(path, pq.read_schema(path).metadata))
    return done


def record_skipped(run_dir: Path | str) -> list[SkippedFrame]:
    """List the run's skipped frames in ``manifest.json`` under ``skipped`` (``[{"index", "key", "reason"}]``,
    frame order), rebuilt from the complete shards, so it stays true after a resume or a quarantined shard.

    The manifest is rewritten atomically, and only when the list changed: a resume that finds
    nothing to do leaves the file byte-identical. Returns the skipped frames.
    """
    run_dir = Path(run_dir)
    skipped = sorted((SkippedFrame(int(row[0]), str(row[1]), str(row[3])) for _, rows in shard_index(run_dir)
                      for row in rows if row[2] is None), key=lambda s: s.index)  # fmt: skip
    manifest = read_manifest(run_dir)
    listed = [{"index": s.index, "key": s.key, "reason": s.reason} for s in skipped]
    if manifest.get("skipped") != listed:  # written even when empty: the manifest says none were skipped
        atomic.write_bytes(run_dir / MANIFEST, json.dumps({**manifest, "skipped": listed}, indent=1).encode())
    return skipped


def write_shard(
    run_dir: Path | str,
    frames: Sequence[tuple[FrameRecord, Detections]],
    skipped: Sequence[SkippedFrame] = (),
    *,
    name_token: str | None = None,
) -> Path:
    """Write the raw boxes of some frames as one shard, atomically (temporary file, then rename).

    Args:
        run_dir: a folder prepared by `open_run`.
        frames: ``(record, raw)`` pairs; ``raw.xyxy`` in frame pixels, ``raw.attributes["source"]``
            optional (defaults to -1).
        skipped: frames that could not be read; recorded so a resume does not retry them.
        name_token: names the shard (default: a hash of its frame indices, so the same frames always
            give the same file name, and a retried writer of the same frames — a Ray task run again
            after its worker died — replaces its shard rather than adding a second copy of the frames).
    """
    run_dir = Path(run_dir)
    parts = [det for _, det in frames if len(det)]
    keys = sorted({k for det in parts for k in det.attributes if k != "source"})
    per_frame = [
        det.replace(attributes={**{k: det.attributes[k] for k in keys if k in det.attributes},
                                "source": np.asarray(det.attributes.get("source", np.full(len(det), -1)), np.int32)})
        if len(det) else Detections.empty()
        for _, det in frames
    ]
    table = FrameTable.from_frames(per_frame + [Detections.empty()] * len(skipped))
    meta = [[rec.index, rec.key, list(rec.image_wh), None] for rec, _ in frames]
    meta += [[s.index, s.key, None, s.reason] for s in skipped]
    first = min((m[0] for m in meta), default=0)
    token = name_token or hashlib.sha1(json.dumps([m[0] for m in meta]).encode()).hexdigest()[:12]
    path = run_dir / SHARDS / f"shard-{first:09d}-{token}.parquet"
    return write_boxes(path, table, meta)  # temp name starts with ".tmp-": open_run sweeps leftovers


def read_shards(
    run_dir: Path | str, shards: Sequence[str] | None = None
) -> tuple[dict[str, Any], list[list[Any]], pa.Table | None]:
    """A run as stored: the checked manifest, each shard's frame list and all box rows in one table.

    ``shards`` (file names from `shard_index`) reads only those shards: a part of the run.

    Returns:
        ``(manifest, metas, table)``: ``metas`` holds one list per shard (in file order) of
        ``[index, key, [w, h] or None, reason]`` rows (``None`` size: the frame was skipped);
        ``table`` the shards' box rows concatenated without schema metadata, None when there are none.

    Raises:
        InputError: no manifest, an invalid manifest, an unreadable shard or one without frame metadata.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    metas, tables = [], []
    for path in _shard_paths(run_dir) if shards is None else [run_dir / SHARDS / name for name in shards]:
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"unreadable shard ({str(exc)[:160]}); rerun detect on the same folder to redo its frames", path) from None
        metas.append(frames_meta(path, table.schema.metadata))
        check_columns(path, table.schema)
        if table.num_rows:
            tables.append(table.replace_schema_metadata(None))
    try:
        return manifest, metas, pa.concat_tables(tables, promote_options="default") if tables else None
    except pa.ArrowException as exc:
        raise InputError(f"shards have incompatible columns ({str(exc)[:120]})", run_dir / SHARDS) from None


def load_run(run_dir: Path | str, *, shards: Sequence[str] | None = None) -> Run:
    """Read a stored run: manifest, processed frames and their raw detections.

    ``shards`` (file names from `shard_index`) loads only the frames of those shards (a partition
    of the run, as a Ray task reads it).

    Raises:
        InputError: no manifest, an invalid manifest or a shard without frame metadata.
    """
    run_dir = Path(run_dir)
    manifest, metas, table = read_shards(run_dir, shards)
    records: dict[int, FrameRecord] = {}
    skipped: dict[int, SkippedFrame] = {}
    for meta in metas:
        for index, key, wh, reason in meta:
            if wh is None:
                skipped[int(index)] = SkippedFrame(int(index), str(key), str(reason))
            else:
                records[int(index)] = FrameRecord(int(index), str(key), (int(wh[0]), int(wh[1])))
    frames = tuple(records[i] for i in sorted(records))
    if table is None or table.num_rows == 0:
        return Run(run_dir, manifest, frames, tuple(Detections.empty(["source"]).with_attributes(
            source=np.zeros(0, np.int32)) for _ in frames), tuple(skipped[i] for i in sorted(skipped)))
    raw = tuple(table_from_arrow(table, [rec.index for rec in frames], path=run_dir / SHARDS).per_frame())
    return Run(run_dir, manifest, frames, raw, tuple(skipped[i] for i in sorted(skipped)))


def write_run(
    run_dir: Path | str,
    frames: Sequence[tuple[str, tuple[int, int]]],
    raw: Sequence[Detections],
    *,
    model: str,
    parameters: Mapping[str, Any],
    frames_per_shard: int = 64,
    class_names: Sequence[str] | None = None,
    timestamps: bool = False,
) -> Run:
    """Store in-memory predictions as a run, e.g. from a model that is not a detector callable.

    Args:
        run_dir: a new (or matching, resumable) run folder.
        frames: ``(key, (width, height))`` per frame, in order.
        raw: one `Detections` per frame in frame pixels; ``"source"`` attribute optional.
        model: a name for what produced the boxes (stored in the manifest).
        parameters: how they were produced (``slice_wh``, ``overlap_ratio``, ``full_frame`` when sliced).
        frames_per_shard: frames per Parquet shard.
        class_names: the model's class names (index = class id), recorded in the manifest.
        timestamps: record the creation time in the manifest.
    """
    if len(frames) != len(raw):
        raise ValueError(f"write_run: {len(frames)} frames but {len(raw)} Detections")
    done = open_run(run_dir, [k for k, _ in frames], model=model, parameters=parameters, class_names=class_names,
                    timestamps=timestamps)
    batch: list[tuple[FrameRecord, Detections]] = []
    for i, ((key, wh), det) in enumerate(zip(frames, raw, strict=True)):
        if i in done:
            continue
        batch.append((FrameRecord(i, key, (int(wh[0]), int(wh[1]))), det))
        if len(batch) >= frames_per_shard:
            write_shard(run_dir, batch)
            batch = []
    if batch:
        write_shard(run_dir, batch)
    return load_run(run_dir)

"""A pool of unlabelled frames and every model's final detections on it, as flat arrays.

Mining scores tens of thousands of frames at once, so nothing here holds one Python object per
frame: each model's detections over the pool are a `sitesight.mining.flat.FlatDetections` (all boxes of all frames
concatenated, frame ``f`` owning rows ``offsets[f]:offsets[f + 1]``), and the frames' keys,
sizes, cameras and timestamps are aligned arrays in a `Pool`.

Stored runs (`sitesight.sliced.store`) are read shard by shard straight into these arrays. A run made
only of full-frame boxes (``source == -1`` everywhere, e.g. written by `sitesight.sliced.store.write_run`
from a detector's final output) is taken as final. A sliced run (raw boxes per slice) is first
post-processed by `sitesight.sliced.postprocess.postprocess` (confidence, border rule, merge, gate).

Example:
    >>> from sitesight import Detections
    >>> from sitesight.mining.pool import FlatDetections
    >>> flat = FlatDetections.from_detections([Detections(xyxy=[[0, 0, 9, 9]]), Detections.empty()])
    >>> flat.offsets.tolist(), flat.n_frames
    ([0, 1, 1], 2)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from sitesight.boxparquet import BOX_COLUMNS, table_from_arrow
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.identity import AGNOSTIC_NAME
from sitesight.mining.flat import FlatDetections
from sitesight.sliced.postprocess import postprocess, target_classes
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import load_run, read_manifest, read_shards

__all__ = ["FlatDetections", "Pool", "frame_metadata", "load_flat_run", "load_pool", "pool_classes", "pool_from_detections"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Pool:
    """Frames and the detections of every model on them.

    Args:
        keys: ``(F,)`` frame keys (image paths as the runs stored them).
        image_wh: ``(F, 2)`` int64 ``(width, height)``.
        runs: model name → `FlatDetections` over the same ``F`` frames, in insertion order.
        camera: ``(F,)`` object camera ids (``None`` unknown).
        timestamp: ``(F,)`` float64 seconds since the epoch (NaN unknown).
        class_names: names of the class ids, when known.
    """

    keys: np.ndarray
    image_wh: np.ndarray
    runs: Mapping[str, FlatDetections]
    camera: np.ndarray = None  # type: ignore[assignment]
    timestamp: np.ndarray = None  # type: ignore[assignment]
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        keys = np.asarray(self.keys, object)
        f = keys.shape[0]
        wh = np.asarray(self.image_wh, np.int64).reshape(f, 2)
        camera = np.full(f, None, object) if self.camera is None else np.asarray(self.camera, object)
        ts = np.full(f, np.nan) if self.timestamp is None else np.asarray(self.timestamp, np.float64)
        if camera.shape != (f,) or ts.shape != (f,):
            raise ValueError(f"Pool: camera {camera.shape} / timestamp {ts.shape} do not match {f} frames")
        for name, run in self.runs.items():
            if run.n_frames != f:
                raise ValueError(f"Pool: run {name!r} covers {run.n_frames} frames, the pool has {f}")
        for name, value in (("keys", keys), ("image_wh", wh), ("camera", camera), ("timestamp", ts)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "runs", MappingProxyType(dict(self.runs)))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def n_frames(self) -> int:
        return int(self.keys.shape[0])

    def take(self, frames: np.ndarray) -> Pool:
        """The sub-pool of the given frame indices, in that order."""
        frames = np.asarray(frames, np.int64)
        return Pool(self.keys[frames], self.image_wh[frames], {k: r.take_frames(frames) for k, r in self.runs.items()},
                    self.camera[frames], self.timestamp[frames], self.class_names)


def pool_from_detections(
    keys: Sequence[str],
    image_wh: Sequence[tuple[int, int]] | np.ndarray,
    runs: Mapping[str, Sequence[Detections]],
    *,
    camera: Sequence[str | None] | None = None,
    timestamp: Sequence[float | None] | None = None,
    probs_name: str | None = None,
    class_names: Sequence[str] = (),
) -> Pool:
    """A `Pool` from in-memory predictions: ``runs[name]`` is one `Detections` per frame of ``keys``."""
    ts = None if timestamp is None else np.array([np.nan if t is None else float(t) for t in timestamp], np.float64)
    flat = {}
    for name, dets in runs.items():
        if len(dets) != len(keys):
            raise InputError(f"run {name!r} has {len(dets)} frames, expected {len(keys)}", where=name)
        flat[name] = FlatDetections.from_detections(dets, probs_name=probs_name)
    return Pool(np.asarray(list(keys), object), np.asarray(image_wh, np.int64).reshape(-1, 2), flat,
                None if camera is None else np.asarray(list(camera), object), ts, tuple(class_names))


def load_flat_run(run_dir: Path | str, *, conf: float = 0.05, probs_name: str | None = "safety_rope_probs",
                  spec: PostprocessSpec | None = None,
                  shards: Sequence[str] | None = None,
                  sliced: bool | None = None,
                  class_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, FlatDetections]:
    """Read a stored run's final detections as flat arrays.

    Args:
        run_dir: a run folder (``manifest.json`` + ``shards/``).
        conf: boxes below this score are dropped (for sliced runs: before merging, as SAHI does).
        probs_name: a 2-D stored attribute column to carry as ``probs`` (absent columns are fine).
        spec: the post-processing of sliced runs (`sitesight.sliced.postprocess.postprocess`; default
            greedy NMM over IoS 0.5, the border rule, at ``conf``).
        shards: read only these shards (file names from `sitesight.sliced.store.shard_index`): the
            frames of a partition, as a Ray task reads them.
        sliced: post-process as a sliced run (True) or take the boxes as final (False); None: sliced
            when any stored box came from a slice (a partition passes the whole run's answer).
        class_names: the classes of the pool: the run's classes are mapped onto them by name, through
            ``spec.class_map`` (`sitesight.sliced.postprocess.target_classes`, as `postprocess` does;
            boxes of a dropped class are left out); None keeps the run's class ids (renamed by the
            class map; one class when ``spec.class_agnostic``). Final runs are mapped the same way.

    Returns:
        ``(keys (F,) object, image_wh (F, 2) int64, FlatDetections)`` over the processed frames in
        manifest order; skipped (unreadable) frames are left out and logged.

    Raises:
        InputError: not a run folder, an invalid manifest or an unreadable shard.
    """
    run_dir = Path(run_dir)
    manifest, metas, table = read_shards(run_dir, shards)
    frames: dict[int, tuple[str, tuple[int, int]]] = {}
    skipped = 0
    for meta in metas:
        for index, key, wh, _reason in meta:
            if wh is None:
                skipped += 1
            else:
                frames[int(index)] = (str(key), (int(wh[0]), int(wh[1])))
    if skipped:
        log.warning("%s: %d unreadable frames were skipped by the run and are left out of the pool", run_dir, skipped)
    order = np.array(sorted(frames), np.int64)
    keys = np.array([frames[i][0] for i in order], object)
    wh = np.array([frames[i][1] for i in order], np.int64).reshape(-1, 2)
    if table is None or table.num_rows == 0:
        return keys, wh, FlatDetections(np.zeros(order.size + 1, np.int64), np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    if sliced if sliced is not None else bool((table.column("source").to_numpy() >= 0).any()):
        spec = _own_map(spec or PostprocessSpec(conf=conf), manifest.get("class_names"))
        return keys, wh, _sliced(run_dir, conf, probs_name, spec, shards, class_names)
    wanted = [*BOX_COLUMNS, *([probs_name] if probs_name and probs_name in table.column_names else [])]
    boxes = table_from_arrow(table.select(wanted), order, path=run_dir / "shards")
    keep = boxes.boxes.score >= conf
    spec = _own_map(spec or PostprocessSpec(conf=conf), manifest.get("class_names"))
    if class_names is not None or spec.class_map or spec.class_agnostic:
        class_id = boxes.boxes.class_id
        n_ids = int(class_id.max()) + 1 if len(class_id) else len(manifest.get("class_names") or ())
        _, lookup = target_classes(manifest.get("class_names"), spec, class_names, n_ids)
        mapped = lookup[class_id] if len(class_id) else class_id
        keep &= mapped >= 0
        boxes = boxes.replace(boxes.boxes.replace(class_id=np.maximum(mapped, 0)))
    boxes = boxes.filter(keep)
    probs = boxes.boxes.attributes.get(probs_name) if probs_name else None
    flat = FlatDetections(boxes.offsets, boxes.boxes.xyxy, boxes.boxes.score, boxes.boxes.class_id,
                          probs if probs is not None and probs.ndim == 2 else None)
    return keys, wh, flat


def _sliced(run_dir: Path, conf: float, probs_name: str | None, spec: PostprocessSpec | None,
            shards: Sequence[str] | None, class_names: Sequence[str] | None) -> FlatDetections:
    final = postprocess(load_run(run_dir, shards=shards), spec or PostprocessSpec(conf=conf), class_names=class_names)
    boxes = final.table.boxes
    probs = boxes.attributes.get(probs_name) if probs_name else None
    return FlatDetections(final.table.offsets, boxes.xyxy, boxes.score, boxes.class_id,
                          probs if probs is not None and np.ndim(probs) == 2 else None)


def load_pool(
    runs: Mapping[str, Path | str],
    *,
    conf: float = 0.05,
    probs_name: str | None = "safety_rope_probs",
    class_names: Sequence[str] = (),
    capture_pattern: str | None = None,
    spec: PostprocessSpec | None = None,
) -> Pool:
    """Load several stored runs over the same frames into one `Pool`.

    Frames are matched by key; only frames every run processed are kept (the rest are logged).
    Camera and timestamp come from each key's file name (`sitesight.curation.captures`; camera
    falls back to the folder name, the timestamp to unknown).

    Args:
        runs: model name → run folder (at least one).
        conf, probs_name, spec: see `load_flat_run`.
        class_names: the pool's classes; every run's classes are mapped onto them by name
            (`pool_classes`: default the first run's recorded names, through the spec's class map).
        capture_pattern: regex for camera/time in file names (default `CAPTURE_NAME_PATTERN`).
    """
    if not runs:
        raise InputError("mining needs at least one run")
    targets = pool_classes(runs, class_names, spec)
    loaded = {name: load_flat_run(path, conf=conf, probs_name=probs_name, spec=spec, class_names=targets)
              for name, path in runs.items()}
    first = next(iter(loaded))
    keys, wh, _ = loaded[first]
    common = np.ones(keys.shape[0], bool)
    for _name, (k, _, _) in loaded.items():
        present = set(k.tolist())
        common &= np.fromiter((key in present for key in keys.tolist()), bool, keys.shape[0])
    if not common.all():
        log.warning("%d frames of run %r are missing from another run and are left out", int((~common).sum()), first)
    keys, wh = keys[common], wh[common]
    flats = {}
    for name, (k, _, flat) in loaded.items():
        position = {key: i for i, key in enumerate(k.tolist())}
        flats[name] = flat.take_frames(np.array([position[key] for key in keys.tolist()], np.int64))
    camera, timestamp = frame_metadata(keys.tolist(), capture_pattern)
    return Pool(keys, wh, flats, camera, timestamp, targets or ())


def pool_classes(runs: Mapping[str, Path | str], class_names: Sequence[str] = (), spec: PostprocessSpec | None = None,
                 ) -> tuple[str, ...] | None:
    """The classes every model's boxes are mapped onto by name before mining, so class ids agree
    across models whatever order each model lists its classes in.

    ``class_names`` when given; else the first run's recorded names that records any, renamed by
    ``spec.class_map``; one class (`sitesight.identity.AGNOSTIC_NAME`) when ``spec.class_agnostic``;
    None when no run records names (class ids are then compared as they are).
    """
    spec = spec or PostprocessSpec()
    recorded = [read_manifest(path).get("class_names") for path in runs.values()]
    known = {str(n) for names in recorded if names is not None for n in names}
    stray = [a for a, _ in spec.class_map if a not in known]
    if stray and known:
        raise InputError(f"--class-map names {stray}, which no model has (their classes: {sorted(known)})", where="--class-map")
    if spec.class_agnostic:
        return (AGNOSTIC_NAME,)
    if class_names:
        return tuple(str(n) for n in class_names)
    for names in recorded:
        if names is not None:
            return target_classes([str(n) for n in names], _own_map(spec, names), None, len(names))[0]
    return None


def _own_map(spec: PostprocessSpec, names: Sequence[str] | None) -> PostprocessSpec:
    """``spec`` with the class-map entries for this model's classes only (one map serves several models)."""
    if names is None or not spec.class_map:
        return spec
    own = {str(n) for n in names}
    return dataclasses.replace(spec, class_map=tuple((a, b) for a, b in spec.class_map if a in own))


_DATETIME = re.compile(r"^(\d{4})(\d{2})(\d{2})[T_-]?(\d{2})(\d{2})(\d{2})(?:[._](\d{1,6}))?$")


def frame_metadata(keys: Sequence[str], pattern: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(camera (F,) object, timestamp (F,) float64)`` from frame file names, fast enough for 10^5 keys.

    The rules of `sitesight.curation.captures.parse_capture_name` (same default pattern, named
    groups ``camera`` and ``ts``; ``ts`` as ``YYYYmmdd[T_-]HHMMSS[.fff]`` UTC or 10/13-digit epoch),
    with the camera falling back to the folder name and the timestamp to NaN.
    """
    from sitesight.curation.captures import CAPTURE_NAME_PATTERN

    try:
        regex = re.compile(pattern or CAPTURE_NAME_PATTERN)
    except re.error as exc:
        raise InputError(f"invalid capture name pattern {pattern!r}: {exc}") from None
    n = len(keys)
    camera = np.empty(n, object)
    timestamp = np.full(n, np.nan)
    iso, iso_rows, frac = [], [], []
    for i, key in enumerate(keys):
        name = os.path.basename(key)
        match = regex.search(name)
        groups = match.groupdict() if match else {}
        camera[i] = groups.get("camera") or os.path.basename(os.path.dirname(key)) or None
        ts = groups.get("ts")
        if not ts:
            continue
        dt = _DATETIME.match(ts)
        if dt:
            y, mo, d, h, mi, s, f = dt.groups()
            iso.append(f"{y}-{mo}-{d}T{h}:{mi}:{s}")
            iso_rows.append(i)
            frac.append(int(f) / 10 ** len(f) if f else 0.0)
        elif ts.isdigit() and len(ts) in (10, 13):
            timestamp[i] = int(ts) / (1000.0 if len(ts) == 13 else 1.0)
    if iso:
        try:
            seconds = np.array(iso, "datetime64[s]").astype(np.int64).astype(np.float64)
        except ValueError:  # an impossible date somewhere: parse one by one
            seconds = np.array([_seconds(t) for t in iso])
        timestamp[np.array(iso_rows)] = seconds + np.array(frac)
    return camera, timestamp


def _seconds(iso: str) -> float:
    try:
        return float(np.datetime64(iso, "s").astype(np.int64))
    except ValueError:
        return np.nan

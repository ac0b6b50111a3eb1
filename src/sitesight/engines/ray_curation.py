"""Frozen-frame dedup on Ray: one task per camera, each running the local `dedup_frames`.

Dedup decisions chain along one camera's frames in time order (each frame is compared with the
camera's last kept frame), so cameras are independent and a camera is not: the unit of work is a
camera. The driver parses camera and time from the paths (no image is read), sends each camera's
frames to a Ray task that hashes them and decides with `sitesight.curation.dedup.dedup_frames`,
and concatenates the decisions in camera order — the order the local function produces, so the
result is the local one.

Example:
    >>> from sitesight.curation.captures import list_captures
    >>> from sitesight.engines.ray_curation import dedup_frames_ray
    >>> result = dedup_frames_ray(list_captures(["captures/"]), max_distance=4)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from sitesight.curation.captures import Capture
from sitesight.curation.dedup import DedupDecision, DedupResult, Region, dedup_frames
from sitesight.engines.ray import MAX_BLOCKS, RayOptions, connect, quiet_data_context

__all__ = ["dedup_frames_ray"]


def _dedup_camera(batch: pa.Table, options: dict) -> pa.Table:
    """Ray Data stage: `dedup_frames` on each row's camera; decisions and skipped frames as JSON."""
    out = []
    for row in batch.to_pylist():
        captures = [Capture(Path(p), row["camera"], t, int(i))
                    for p, t, i in zip(row["path"], row["timestamp"], row["index"], strict=True)]
        result = dedup_frames(captures, **options)
        out.append(json.dumps({"camera": row["camera"], "decisions": [asdict(d) for d in result.decisions],
                               "skipped": result.skipped}))
    return pa.table({"result": pa.array(out, pa.string())})


def dedup_frames_ray(
    captures: Sequence[Capture],
    *,
    max_distance: int = 4,
    ignore_regions: Sequence[Region] = (),
    workers: int = 1,
    draft: bool = True,
    options: RayOptions = RayOptions(),
    progress: Callable[[int], None] | None = None,
) -> DedupResult:
    """`sitesight.curation.dedup.dedup_frames` with one Ray task per camera; the same `DedupResult`.

    Args:
        captures: frames with camera and time (`sitesight.curation.captures.list_captures`); every
            node must reach their paths.
        max_distance, ignore_regions, draft: as in `dedup_frames`.
        workers: hashing threads inside each task.
        options: the cluster (only ``address`` is used).
        progress: called on the driver with the frames of each finished camera.
    """
    ray = connect(options.address)
    by_camera: dict[str, list[Capture]] = {}
    for c in captures:
        by_camera.setdefault(c.camera_id, []).append(c)
    cameras = sorted(by_camera)
    items = [{"camera": cam, "path": [str(c.path) for c in by_camera[cam]],
              "timestamp": [c.timestamp for c in by_camera[cam]], "index": [c.index for c in by_camera[cam]]}
             for cam in cameras]
    results: dict[str, dict] = {}
    if items:
        fn_kwargs = {"options": {"max_distance": max_distance, "ignore_regions": list(ignore_regions),
                                 "workers": workers, "draft": draft}}
        with quiet_data_context():
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
            for row in ds.map_batches(_dedup_camera, fn_kwargs=fn_kwargs, batch_size=1, batch_format="pyarrow").iter_rows():
                part = json.loads(row["result"])
                results[part["camera"]] = part
                if progress is not None:
                    progress(len(by_camera[part["camera"]]))
    decisions = [DedupDecision(**d) for cam in cameras for d in results[cam]["decisions"]]
    skipped = [(str(p), str(r)) for cam in cameras for p, r in results[cam]["skipped"]]
    return DedupResult(decisions=tuple(decisions), skipped=tuple(skipped))

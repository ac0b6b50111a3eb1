"""Sliced detection on Ray Data: the same run folder as `sitesight.sliced.predict.detect_to_run`, on many workers.

The pipeline, one row per *chunk* (``frames_per_shard`` frames, the unit a shard holds)::

    chunks of frame keys ──map_batches (CPU tasks)──► decoded frames (one binary column per chunk)
                         ──map_batches (actor pool, one detector per actor, num_gpus when GPUs exist)──►
                           `predict_sliced` over the frames of several chunks at once (slices of
                           different frames share the detector's batches), one shard written per chunk
                         ──► a few integers per chunk back to the driver (progress, summary)

A chunk is a row, not a batch, so a shard's frames never depend on how Ray groups rows: when a
worker dies (an actor or a process killed), Ray restarts it and runs the same chunks again, and
the retry writes its shard under the same name (`sitesight.sliced.store.write_shard`'s
``name_token``: a hash of the chunk's frame indices), replacing rather than duplicating it. The
final run is the one the local engine writes. Resume works as locally: the driver opens the run
with `sitesight.sliced.store.open_run` and sends only the frames no complete shard holds.

Slicing happens inside the detector actor, not in the decode stage: slices overlap (20 % by
default), so shipping crops would move ~1.6x the pixels of the frame through the object store,
while cutting a slice is a numpy view.

Example:
    >>> from functools import partial
    >>> from sitesight.engines.ray import RayOptions, detect_to_run_ray
    >>> from sitesight.predictors import build_detector
    >>> from sitesight.sliced.frames import list_frames
    >>> summary = detect_to_run_ray(list_frames(["captures/"]), partial(build_detector, "onnx:m.onnx"), "runs/a",
    ...                             model="onnx:m.onnx", options=RayOptions(address="auto"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sitesight.errors import InputError, MissingExtraError
from sitesight.sliced.frames import FrameRef, iter_frames
from sitesight.sliced.predict import Detector, DetectSummary, predict_sliced, run_parameters
from sitesight.sliced.store import (
    MANIFEST,
    FrameRecord,
    SkippedFrame,
    library_versions,
    open_run,
    record_skipped,
    write_shard,
)

__all__ = ["RayOptions", "require_ray", "connect", "detect_to_run_ray"]

log = logging.getLogger(__name__)

MAX_BLOCKS = 1024  # input blocks of a Ray dataset: enough to keep any cluster's decode slots busy


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    Args:
        address: Ray cluster to join (``auto``, ``ray://head:10001``, ``10.0.0.1:6379``); None
            starts a local Ray (or joins the one ``RAY_ADDRESS`` names).
        workers: detector actors; default one per GPU, else one per CPU left after one decode task.
        gpus_per_worker: GPUs per detector actor; default 1 when the cluster has GPUs, else 0.
        cpus_per_worker: CPUs reserved per detector actor.
        decode_cpus: CPUs reserved per decode task.
        chunks_per_call: chunks (of ``frames_per_shard`` frames) handed to one detector actor call;
            their slices share the detector's batches.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    decode_cpus: float = 1.0
    chunks_per_call: int = 1


def require_ray() -> Any:
    """The ``ray`` module, or `MissingExtraError` with the pip line for the ``[ray]`` extra."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: fail here, not inside a stage)
    except ImportError:
        raise MissingExtraError("ray", "ray") from None
    return ray


def connect(address: str | None = None) -> Any:
    """Join the Ray cluster at ``address`` (or start a local one); reuses a connection already made."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    return ray


@contextlib.contextmanager
def quiet_data_context() -> Iterator[None]:
    """Ray Data without its own progress bars and start-up prints (the CLI shows one progress bar)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start, logger.level)
    ctx.enable_progress_bars, ctx.print_on_execution_start = False, False
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start, level = saved
        logger.setLevel(level)


def _chunk_token(indices: Sequence[int]) -> str:
    """The shard name token of a chunk: the same frames always give the same shard file."""
    return hashlib.sha1(json.dumps([int(i) for i in indices]).encode()).hexdigest()[:12]


def decode_chunks(batch: pa.Table) -> pa.Table:
    """Ray Data stage: decode the frames of each chunk row into one binary column of RGB pixels.

    Input columns: ``index`` list<int64> (frame indices in the manifest), ``key`` list<string>.
    Output adds ``width``/``height`` list<int32> (0 for an unreadable frame), ``error``
    list<string> (null when decoded) and ``pixels`` large_binary: the chunk's frames' RGB uint8
    ``(H, W, 3)`` bytes one after another.
    """
    out: dict[str, list] = {"index": [], "key": [], "width": [], "height": [], "error": [], "pixels": []}
    for indices, keys in zip(batch.column("index").to_pylist(), batch.column("key").to_pylist(), strict=True):
        widths, heights, errors, parts = [], [], [], []
        for rgb, error in _decoded(keys):
            if error is not None:
                widths.append(0), heights.append(0), errors.append(str(error))
                continue
            widths.append(rgb.shape[1]), heights.append(rgb.shape[0]), errors.append(None)
            parts.append(np.ascontiguousarray(rgb).tobytes())
        for name, value in (("index", indices), ("key", keys), ("width", widths), ("height", heights),
                            ("error", errors), ("pixels", b"".join(parts))):
            out[name].append(value)
    return pa.table({
        "index": pa.array(out["index"], pa.list_(pa.int64())),
        "key": pa.array(out["key"], pa.list_(pa.string())),
        "width": pa.array(out["width"], pa.list_(pa.int32())),
        "height": pa.array(out["height"], pa.list_(pa.int32())),
        "error": pa.array(out["error"], pa.list_(pa.string())),
        "pixels": pa.array(out["pixels"], pa.large_binary()),
    })


def _decoded(keys: Sequence[str]) -> Iterator[tuple[np.ndarray | None, InputError | None]]:
    """``(rgb, None)`` or ``(None, error)`` per key: files through `iter_frames` (a video's frames in one
    pass), URLs through `sitesight.engines.storage.read_uri_frame`."""
    from sitesight.engines.storage import is_uri, read_uri_frame

    if not any(is_uri(k) for k in keys):
        yield from ((rgb, error) for _, rgb, error in iter_frames([FrameRef.from_key(k) for k in keys]))
        return
    for key in keys:
        if not is_uri(key):
            yield from ((rgb, error) for _, rgb, error in iter_frames([FrameRef.from_key(key)]))
            continue
        try:
            yield read_uri_frame(key), None
        except InputError as exc:
            yield None, exc


def _unpack(row: dict[str, Any], pixels: memoryview) -> tuple[list[tuple[FrameRecord, np.ndarray]], list[SkippedFrame]]:
    frames, skipped, offset = [], [], 0
    for index, key, w, h, error in zip(row["index"], row["key"], row["width"], row["height"], row["error"], strict=True):
        if error is not None:
            skipped.append(SkippedFrame(int(index), key, error))
            continue
        size = w * h * 3
        rgb = np.frombuffer(pixels, np.uint8, count=size, offset=offset).reshape(h, w, 3)
        frames.append((FrameRecord(int(index), key, (int(w), int(h))), rgb))
        offset += size
    return frames, skipped


class SlicedDetectorWorker:
    """Ray Data actor: one detector (built once per actor), sliced prediction, one shard per chunk.

    Args:
        factory: builds the detector inside the actor (e.g. ``partial(build_detector, spec)``),
            so that the model is loaded where it runs, on that actor's GPU.
        run_dir: the run folder (shared storage: every worker writes its shards there).
        sliced: keyword arguments of `sitesight.sliced.predict.predict_sliced` (slice_wh, overlap_ratio,
            batch_size, full_frame, imgsz, full_imgsz).
    """

    def __init__(self, factory: Callable[[], Detector], run_dir: str, sliced: dict[str, Any]) -> None:
        self.detector = factory()
        self.run_dir = Path(run_dir)
        self.kwargs = dict(sliced)

    def __call__(self, batch: pa.Table) -> pa.Table:
        chunks = []
        pixels = batch.column("pixels")
        for r, row in enumerate(batch.drop_columns(["pixels"]).to_pylist()):
            chunks.append((row["index"], *_unpack(row, memoryview(pixels[r].as_buffer()))))
        timer = [0.0]
        images = [rgb for _, frames, _ in chunks for _, rgb in frames]
        raw = iter(predict_sliced(images, self.detector, timer=timer, **self.kwargs))
        out: dict[str, list] = {"frames": [], "processed": [], "boxes": [], "skipped_key": [], "skipped_reason": []}
        for indices, frames, skipped in chunks:
            records = [(rec, next(raw)) for rec, _ in frames]
            write_shard(self.run_dir, records, skipped, name_token=_chunk_token(indices))
            out["frames"].append(len(indices))
            out["processed"].append(len(records))
            out["boxes"].append(sum(len(d) for _, d in records))
            out["skipped_key"].append([s.key for s in skipped])
            out["skipped_reason"].append([s.reason for s in skipped])
        table = pa.table({**{k: pa.array(out[k], pa.int64()) for k in ("frames", "processed", "boxes")},
                          "skipped_key": pa.array(out["skipped_key"], pa.list_(pa.string())),
                          "skipped_reason": pa.array(out["skipped_reason"], pa.list_(pa.string()))})
        # the model time of the call, on its first row, so the driver can sum it
        return table.append_column("model_seconds", pa.array([timer[0]] + [0.0] * (len(chunks) - 1), pa.float64()))


def _detector_class_names(factory: Callable[[], Detector]) -> list[str] | None:
    """The ``class_names`` a detector announces (None when it has none)."""
    names = getattr(factory(), "class_names", None)
    return None if not names else [str(n) for n in names]


def _pool(ray: Any, options: RayOptions) -> tuple[int, float]:
    """``(workers, gpus per worker)`` for this cluster and these options."""
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0.0))
    per_gpu = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if options.workers is not None:
        return max(1, int(options.workers)), per_gpu
    if per_gpu > 0:
        return max(1, int(gpus // per_gpu)), per_gpu
    cpus = float(resources.get("CPU", 1.0))
    return max(1, int((cpus - options.decode_cpus) // max(options.cpus_per_worker, 1e-6))), 0.0


def detect_to_run_ray(
    refs: Sequence[FrameRef | str],
    factory: Callable[[], Detector],
    run_dir: Path | str,
    *,
    model: str,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    batch_size: int = 8,
    full_frame: bool = True,
    imgsz: int | None = None,
    full_imgsz: int | None = None,
    class_names: Sequence[str] | None = None,
    frames_per_shard: int = 8,
    options: RayOptions = RayOptions(),
    on_progress: Callable[[int], None] | None = None,
) -> DetectSummary:
    """`sitesight.sliced.predict.detect_to_run` on Ray Data: the same run folder, resumable the same way.

    Args:
        refs: frames to process (`sitesight.sliced.frames.list_frames`; every worker must reach their
            paths), or frame URLs on object storage (`sitesight.engines.storage.list_uri_frames`).
        factory: builds the detector callable; called once inside each detector actor.
        run_dir: output folder on storage every worker reaches (created, or resumed).
        model, slice_wh, overlap_ratio, batch_size, full_frame, imgsz, full_imgsz, frames_per_shard: as in
            `detect_to_run`.
        class_names: the model's class names, recorded in the manifest; default the detector's own
            ``class_names`` (asked of one detector built in a Ray task, as `detect_to_run` asks its detector).
        options: cluster address and pool size (`RayOptions`).
        on_progress: called on the driver with the number of frames finished after every chunk.

    Returns:
        `DetectSummary`; ``model_seconds`` sums the time inside the detector over all actors.
    """
    start = time.perf_counter()
    ray = connect(options.address)
    run_dir = Path(run_dir).resolve()
    keys = [r if isinstance(r, str) else r.key for r in refs]
    workers, gpus = _pool(ray, options)
    if class_names is None and not (run_dir / MANIFEST).exists():  # a resumed run keeps the names it recorded
        class_names = ray.get(ray.remote(_detector_class_names).options(num_gpus=gpus or None).remote(factory))
    done = open_run(run_dir, keys, model=model,
                    parameters=run_parameters(slice_wh, overlap_ratio, full_frame, imgsz, full_imgsz),
                    versions=library_versions(), class_names=class_names)
    todo = [(i, k) for i, k in enumerate(keys) if i not in done]
    chunks = [todo[k : k + frames_per_shard] for k in range(0, len(todo), frames_per_shard)]
    skipped: list[SkippedFrame] = []
    processed = boxes = 0
    model_seconds = 0.0
    if chunks:
        items = [{"index": [i for i, _ in c], "key": [k for _, k in c]} for c in chunks]
        with quiet_data_context():
            # a block per chunk up to MAX_BLOCKS (10 M frames are 1.25 M chunks: Ray would drown in blocks)
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
            ds = ds.map_batches(decode_chunks, batch_size=1, batch_format="pyarrow", num_cpus=options.decode_cpus)
            ds = ds.map_batches(
                SlicedDetectorWorker,
                fn_constructor_kwargs={"factory": factory, "run_dir": str(run_dir), "sliced": {
                    "slice_wh": tuple(slice_wh), "overlap_ratio": tuple(overlap_ratio), "batch_size": batch_size,
                    "full_frame": full_frame, "imgsz": imgsz, "full_imgsz": full_imgsz}},
                batch_size=max(1, options.chunks_per_call), batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=options.cpus_per_worker,
                num_gpus=gpus or None,
            )
            for row in ds.iter_rows():
                processed += int(row["processed"])
                boxes += int(row["boxes"])
                model_seconds += float(row["model_seconds"])
                for key, reason in zip(row["skipped_key"], row["skipped_reason"], strict=True):
                    log.warning("skipping %s", reason)
                    skipped.append(SkippedFrame(-1, key, reason))
                if on_progress is not None:
                    on_progress(int(row["frames"]))
    index_of = {k: i for i, k in enumerate(keys)}
    skipped = sorted((SkippedFrame(index_of[s.key], s.key, s.reason) for s in skipped), key=lambda s: s.index)
    record_skipped(run_dir)  # the manifest lists every skipped frame with its reason, as the local engine does
    return DetectSummary(run_dir, len(refs), len(done), processed, tuple(skipped), boxes,
                         time.perf_counter() - start, model_seconds)

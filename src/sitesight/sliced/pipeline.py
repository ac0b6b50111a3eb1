"""Frames on disk into a resumable run folder: the streaming detect pipeline (`detect_to_run`).

The model never waits on JPEG decoding: decoder threads read frames ahead (`decoded_frames`), a
slicer thread cuts and resizes them into batches (`sitesight.sliced.crops`), the calling thread
runs only the detector, and a writer thread puts boxes back into frame pixels, writes the Parquet
shards of the run (`sitesight.sliced.store`) and reports progress per finished frame. Unreadable
frames are skipped with a logged reason and listed in the manifest. A detector with a ``lookup``
method (`sitesight.predictors.replay`) is looked up by frame path instead of run on pixels.

Example:
    >>> from sitesight.sliced.frames import list_frames
    >>> from sitesight.sliced.pipeline import detect_to_run
    >>> summary = detect_to_run(list_frames("frames/"), detector, "runs/cam7", model="yolo.onnx")  # doctest: +SKIP
    >>> summary.processed, summary.frames_per_second  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.sliced.crops import (
    Assembler,
    Batcher,
    Detector,
    frame_jobs,
    run_parameters,
    sorted_by_source,
    timed_call,
)
from sitesight.sliced.frames import FrameRef, iter_frames, read_frame
from sitesight.sliced.store import FrameRecord, SkippedFrame, library_versions, open_run, record_skipped, write_shard

__all__ = ["DetectSummary", "detect_to_run", "decoded_frames", "default_decode_workers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectSummary:
    """What `detect_to_run` did.

    Args:
        run_dir: the run folder.
        total: frames in the run's manifest.
        already_done: frames found finished in the folder when it started (resume).
        processed: frames run through the model now.
        skipped: frames skipped now as unreadable, with the reason.
        boxes: raw boxes written now.
        seconds: wall time.
        model_seconds: time spent inside the detector.
    """

    run_dir: Path
    total: int
    already_done: int
    processed: int
    skipped: tuple[SkippedFrame, ...]
    boxes: int
    seconds: float
    model_seconds: float

    @property
    def frames_per_second(self) -> float:
        """Frames processed per wall-clock second."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def overhead_fraction(self) -> float:
        """Share of wall time spent outside the detector (decode, slicing, storing)."""
        return 1.0 - self.model_seconds / self.seconds if self.seconds > 0 else 0.0


def _read_one(ref: FrameRef) -> tuple[FrameRef, np.ndarray | None, InputError | None]:
    try:
        return ref, read_frame(ref), None
    except InputError as exc:
        return ref, None, exc


def decoded_frames(refs: Sequence[FrameRef], workers: int) -> Iterator[tuple[FrameRef, np.ndarray | None, InputError | None]]:
    """`iter_frames` in order, with ``workers`` threads decoding images ahead (videos: one pass each)."""
    if workers <= 1 or any(r.video_frame is not None for r in refs):
        yield from iter_frames(refs)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="sitesight-decode") as pool:
        pending: deque = deque()
        it = iter(refs)
        for ref in it:
            pending.append(pool.submit(_read_one, ref))
            if len(pending) >= 2 * workers:
                break
        while pending:
            yield pending.popleft().result()
            ref = next(it, None)
            if ref is not None:
                pending.append(pool.submit(_read_one, ref))


class _Stop(Exception):
    """Raised inside a pipeline thread when another stage failed."""


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def default_decode_workers() -> int:
    """Decoder threads for `detect_to_run`: a quarter of the CPUs, 1 to 4 (JPEG decoding releases the GIL)."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def detect_to_run(
    refs: Sequence[FrameRef],
    detector: Detector,
    run_dir: Path | str,
    *,
    model: str,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    batch_size: int = 8,
    full_frame: bool = True,
    frames_per_shard: int = 8,
    on_progress: Callable[[int], None] | None = None,
    imgsz: int | None = None,
    full_imgsz: int | None = None,
    class_names: Sequence[str] | None = None,
) -> DetectSummary:
    """Run sliced prediction over frames on disk into a resumable run folder.

    ``class_names`` (the model's names of its class ids; default the detector's ``class_names``
    attribute when it has one) are recorded in the manifest so classes can be matched by name.

    Frames already stored in ``run_dir`` (a killed earlier call with the same arguments) are not
    redone. Unreadable or truncated images are logged, recorded with their reason and skipped.
    The work runs as a pipeline (see the module docstring): the calling thread only runs
    ``detector``, on batches that span frames.

    Args:
        refs: frames to process (`sitesight.sliced.frames.list_frames`).
        detector: the model callable.
        run_dir: output folder (created, or resumed when it holds the same run).
        model: the model spec, stored in the manifest.
        slice_wh, overlap_ratio, batch_size, full_frame, imgsz, full_imgsz: as in `predict_sliced`.
        frames_per_shard: frames per Parquet shard (the unit lost and redone after a kill).
        on_progress: called from the writer thread with the number of frames finished (1 each, or
            the size of a group of skipped frames).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keys = [r.key for r in refs]
    if hasattr(detector, "lookup"):  # recorded predictions (predictors.replay): looked up by path
        return _replay_to_run(refs, detector, run_dir, model=model, frames_per_shard=frames_per_shard,
                              on_progress=on_progress, class_names=class_names)
    if class_names is None:
        class_names = getattr(detector, "class_names", None) or None
    done = open_run(run_dir, keys, model=model, parameters=run_parameters(slice_wh, overlap_ratio, full_frame, imgsz, full_imgsz),
                    versions=library_versions(), class_names=class_names)
    todo = [(i, r) for i, r in enumerate(refs) if i not in done]
    timer = [0.0]
    stop = threading.Event()
    errors: list[BaseException] = []
    batches: queue.Queue = queue.Queue(maxsize=4)  # slicer -> model: a few batches ahead
    results: queue.Queue = queue.Queue(maxsize=8)  # model -> writer
    end = object()
    assembler = Assembler()
    counts = {"boxes": 0, "processed": 0}
    skipped: list[SkippedFrame] = []

    def slicer() -> None:
        try:
            batcher = Batcher(batch_size)
            decoded = decoded_frames([r for _, r in todo], default_decode_workers())
            for position, (ref, rgb, error) in enumerate(decoded):
                index = todo[position][0]
                if error is not None:
                    _put(results, ("skip", SkippedFrame(index, ref.key, str(error))), stop)
                    continue
                jobs = frame_jobs(position, rgb, slice_wh=slice_wh, overlap_ratio=overlap_ratio, full_frame=full_frame,
                                  imgsz=imgsz, full_imgsz=full_imgsz)
                _put(results, ("frame", position, FrameRecord(index, ref.key, (rgb.shape[1], rgb.shape[0])), len(jobs)), stop)
                for batch in batcher.add(jobs):
                    _put(batches, batch, stop)
            for batch in batcher.flush():
                _put(batches, batch, stop)
            _put(batches, end, stop)
        except _Stop:
            return
        except BaseException as exc:  # surfaced in the calling thread
            errors.append(exc)
            stop.set()

    def writer() -> None:
        pending: list[tuple[FrameRecord, Detections]] = []
        pending_skipped: list[SkippedFrame] = []
        records: dict[int, FrameRecord] = {}

        def flush() -> None:
            write_shard(run_dir, pending, pending_skipped)
            pending.clear()
            pending_skipped.clear()

        try:
            while True:
                item = _get(results, stop)
                if item is end:
                    break
                kind = item[0]  # type: ignore[index]
                if kind == "skip":
                    record = item[1]  # type: ignore[index]
                    log.warning("skipping %s", record.reason)
                    skipped.append(record)
                    pending_skipped.append(record)
                    finished = []
                    if on_progress is not None:
                        on_progress(1)
                elif kind == "frame":
                    _, position, record, n_jobs = item  # type: ignore[misc]
                    records[position] = record
                    assembler.expect(position, n_jobs, record.image_wh)
                    finished = [] if n_jobs else [(position, Detections.empty().with_attributes(source=np.zeros(0, np.int32)))]
                else:
                    _, jobs, outputs = item  # type: ignore[misc]
                    finished = assembler.add(jobs, outputs)
                for position, det in finished:
                    pending.append((records.pop(position), sorted_by_source(det)))
                    counts["boxes"] += len(det)
                    counts["processed"] += 1
                    if on_progress is not None:
                        on_progress(1)
                    if len(pending) + len(pending_skipped) >= frames_per_shard:
                        flush()
                if len(pending) + len(pending_skipped) >= frames_per_shard:
                    flush()
            if pending or pending_skipped:
                flush()
        except _Stop:
            return
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=slicer, name="sitesight-slicer", daemon=True),
               threading.Thread(target=writer, name="sitesight-writer", daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            batch = _get(batches, stop)
            if batch is end:
                break
            outputs = timed_call(detector, [c for _, c in batch], timer)  # type: ignore[union-attr]
            _put(results, ("out", [j for j, _ in batch], outputs), stop)  # type: ignore[union-attr]
        _put(results, end, stop)
    except _Stop:
        pass
    except BaseException:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        raise
    threads[1].join()
    stop.set()
    threads[0].join(timeout=5)
    if errors:
        raise errors[0]
    record_skipped(run_dir)  # the manifest lists every skipped frame with its reason (rebuilt from the shards)
    return DetectSummary(run_dir, len(refs), len(done), counts["processed"], tuple(skipped), counts["boxes"],
                         time.perf_counter() - start, timer[0])


def _replay_to_run(
    refs: Sequence[FrameRef],
    replay: object,
    run_dir: Path,
    *,
    model: str,
    frames_per_shard: int,
    on_progress: Callable[[int], None] | None,
    class_names: Sequence[str] | None = None,
) -> DetectSummary:
    """Store recorded predictions as a run: sizes from image headers, boxes as full-frame boxes."""
    from sitesight.images import read_image_wh

    start = time.perf_counter()
    if class_names is None:
        class_names = getattr(replay, "class_names", None) or None
    done = open_run(run_dir, [r.key for r in refs], model=model, parameters={"full_frame": True, "replay": True},
                    class_names=class_names)
    todo = [(i, r) for i, r in enumerate(refs) if i not in done]
    skipped: list[SkippedFrame] = []
    boxes = processed = 0
    for first in range(0, len(todo), frames_per_shard):
        chunk = todo[first : first + frames_per_shard]
        found = replay.lookup([r.key for _, r in chunk])  # type: ignore[attr-defined]
        records, chunk_skipped = [], []
        for (i, ref), det in zip(chunk, found, strict=True):
            try:
                if ref.video_frame is not None:
                    raise InputError("replay matches image files only", ref.path)
                wh = read_image_wh(ref.path)
                if det is None:
                    raise InputError("no recorded predictions for this image", ref.path)
            except InputError as exc:
                log.warning("skipping %s", exc)
                chunk_skipped.append(SkippedFrame(i, ref.key, str(exc)))
                continue
            records.append((FrameRecord(i, ref.key, wh), det.with_attributes(source=np.full(len(det), -1, np.int32))))
        write_shard(run_dir, records, chunk_skipped)
        skipped += chunk_skipped
        boxes += sum(len(d) for _, d in records)
        processed += len(records)
        if on_progress is not None:
            on_progress(len(chunk))
    record_skipped(run_dir)
    return DetectSummary(run_dir, len(refs), len(done), processed, tuple(skipped), boxes, time.perf_counter() - start, 0.0)

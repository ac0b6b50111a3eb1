"""Sliced prediction: any detector callable over slices of many frames, batched, with provenance.

A detector is ``Callable[[list[np.ndarray]], list[Detections]]``: RGB uint8 ``(H, W, 3)`` images in,
one `Detections` per image out, boxes in that image's pixels. `predict_sliced` cuts each frame into
the `sitesight.sliced.slicing.slice_grid` slices, sends the slices of several frames to the detector in
batches of ``batch_size``, optionally adds one full-frame pass, and returns every raw box in frame
pixels with ``attributes["source"]`` = slice index (int32) or -1 for the full-frame pass.
Nothing is merged here: merging, the border rule and the gate run later (`sitesight.sliced.border`,
`sitesight.sliced.gate`), as often as wanted, on the stored raw boxes.

Each slice is given to the detector at ``imgsz`` (its long side; ``None`` = as cut) and the full
frame at ``full_imgsz``: sitesight resizes, the detector runs on what it gets, and boxes are
scaled back to frame pixels. Batches are formed across frames: the slices of one frame and the
next share a batch, and crops of the same input size go together (a full frame larger than the
slices gets batches of its own).

`detect_to_run` streams frames from disk as a pipeline in which the model never waits on JPEG
decoding: decoder threads read frames ahead, a slicer thread cuts and resizes them into batches,
the calling thread runs only the detector, and a writer thread puts boxes back into frame pixels,
writes the Parquet shards of the resumable run (`sitesight.sliced.store`) and reports progress
per finished frame. Unreadable frames are skipped with a logged reason.

Example:
    >>> import numpy as np
    >>> from sitesight import Detections
    >>> from sitesight.sliced.predict import predict_sliced
    >>> def detector(images):  # one box in the middle of every image
    ...     return [Detections(xyxy=[[10, 10, 20, 20]], score=[0.9]) for _ in images]
    >>> raw = predict_sliced([np.zeros((1080, 1920, 3), np.uint8)], detector)
    >>> len(raw[0]), sorted(set(raw[0].attributes["source"].tolist()))[:3]
    (9, [-1, 0, 1])
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
from sitesight.sliced.frames import FrameRef, iter_frames, read_frame
from sitesight.sliced.store import FrameRecord, SkippedFrame, library_versions, open_run, record_skipped, write_shard

__all__ = ["Detector", "predict_sliced", "DetectSummary", "detect_to_run", "run_parameters"]

log = logging.getLogger(__name__)

Detector = Callable[[list[np.ndarray]], list[Detections]]


def _check_outputs(outputs: Sequence[Detections], n: int) -> None:
    if len(outputs) != n:
        raise ValueError(f"detector returned {len(outputs)} Detections for {n} images")


def _slices_for(image_wh: tuple[int, int], slice_wh: tuple[int, int], overlap_ratio: tuple[float, float]) -> np.ndarray:
    from sitesight.sliced.slicing import slice_grid

    return np.asarray(slice_grid(image_wh, slice_wh=slice_wh, overlap_ratio=overlap_ratio), np.int64).reshape(-1, 4)


@dataclass(frozen=True)
class SliceJob:
    """One crop of one frame on its way through the detector.

    Args:
        frame: position of the frame in the stream.
        source: slice index, or -1 for the full frame.
        offset: ``(x, y)`` of the crop's top-left corner in frame pixels.
        scale: model-input pixels per frame pixel (1.0 when the crop is not resized).
    """

    frame: int
    source: int
    offset: tuple[int, int]
    scale: float


def _resized(crop: np.ndarray, side: int | None) -> tuple[np.ndarray, float]:
    """``crop`` with its long side ``side`` (area interpolation when shrinking), and the scale applied."""
    h, w = crop.shape[:2]
    if side is None or max(h, w) == side:
        return crop, 1.0
    import cv2

    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out, scale


def frame_jobs(
    position: int,
    image: np.ndarray,
    *,
    slice_wh: tuple[int, int],
    overlap_ratio: tuple[float, float],
    full_frame: bool,
    imgsz: int | None = None,
    full_imgsz: int | None = None,
) -> list[tuple[SliceJob, np.ndarray]]:
    """The crops of one frame, in source order (slices in grid order, then the full frame), resized as asked."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image {position}: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    out = []
    for s, (x1, y1, x2, y2) in enumerate(_slices_for((w, h), slice_wh, overlap_ratio).tolist()):
        crop, scale = _resized(image[y1:y2, x1:x2], imgsz)
        out.append((SliceJob(position, s, (x1, y1), scale), crop))
    if full_frame:
        crop, scale = _resized(image, full_imgsz)
        out.append((SliceJob(position, -1, (0, 0), scale), crop))
    return out


class _Batcher:
    """Groups crops into detector batches across frames: crops of one input size (long side rounded
    up to 32) share a batch; a batch leaves when it holds ``batch_size`` crops, or on `flush`."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._open: dict[int, list[tuple[SliceJob, np.ndarray]]] = {}

    def add(self, items: Sequence[tuple[SliceJob, np.ndarray]]) -> Iterator[list[tuple[SliceJob, np.ndarray]]]:
        for job, crop in items:
            key = -(-max(crop.shape[:2]) // 32)
            batch = self._open.setdefault(key, [])
            batch.append((job, crop))
            if len(batch) >= self.batch_size:
                yield self._open.pop(key)

    def flush(self) -> Iterator[list[tuple[SliceJob, np.ndarray]]]:
        while self._open:
            yield self._open.pop(next(iter(self._open)))


class _Assembler:
    """Collects detector outputs per frame; a frame is finished when all its crops came back."""

    def __init__(self) -> None:
        self._expected: dict[int, int] = {}
        self._parts: dict[int, list[Detections]] = {}
        self._seen: dict[int, int] = {}
        self._wh: dict[int, tuple[int, int]] = {}

    def expect(self, position: int, n_jobs: int, image_wh: tuple[int, int]) -> None:
        self._expected[position] = n_jobs
        self._parts[position] = []
        self._seen[position] = 0
        self._wh[position] = image_wh

    def add(self, jobs: Sequence[SliceJob], outputs: Sequence[Detections]) -> list[tuple[int, Detections]]:
        """Record one batch's outputs; returns the frames it finished, as ``(position, raw boxes)``."""
        done = []
        for job, det in zip(jobs, outputs, strict=True):
            if len(det):
                if job.scale != 1.0:
                    det = det.replace(xyxy=det.xyxy / np.float32(job.scale))
                dx, dy = job.offset
                det = det.shift(dx, dy) if dx or dy else det
                self._parts[job.frame].append(det.with_attributes(source=np.full(len(det), job.source, np.int32)))
            self._seen[job.frame] += 1
            if self._seen[job.frame] == self._expected[job.frame]:
                done.append((job.frame, self._finish(job.frame)))
        return done

    def _finish(self, position: int) -> Detections:
        parts, wh = self._parts.pop(position), self._wh.pop(position)
        del self._expected[position], self._seen[position]
        if not parts:
            return Detections.empty().with_attributes(source=np.zeros(0, np.int32))
        return Detections.concat(parts).clip(wh)


def _timed_call(detector: Detector, crops: list[np.ndarray], timer: list[float] | None) -> list[Detections]:
    t0 = time.perf_counter()
    outputs = detector(crops)
    if timer is not None:
        timer[0] += time.perf_counter() - t0
    _check_outputs(outputs, len(crops))
    return outputs


def predict_sliced(
    images: Sequence[np.ndarray],
    detector: Detector,
    *,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    batch_size: int = 8,
    full_frame: bool = True,
    timer: list[float] | None = None,
    imgsz: int | None = None,
    full_imgsz: int | None = None,
) -> list[Detections]:
    """Raw boxes of every slice (and optionally the whole frame) of each image.

    Args:
        images: RGB uint8 ``(H, W, 3)`` frames (sizes may differ).
        detector: the model as a callable (see module docstring).
        slice_wh: slice ``(width, height)`` in pixels.
        overlap_ratio: overlap between neighbouring slices as a fraction of the slice size.
        batch_size: images per detector call; slices of consecutive frames share batches.
        full_frame: also run the detector once on each whole frame (``source == -1``).
        timer: when given, seconds spent inside ``detector`` are added to ``timer[0]``.
        imgsz: long side each slice is resized to before the detector (``None`` = as cut).
        full_imgsz: long side the whole frame is resized to for the full-frame pass (``None`` = as is).

    Returns:
        One `Detections` per image in frame pixels, clipped to the frame, ordered by source
        (slices in grid order, then the full frame); ``attributes["source"]`` int32 plus whatever
        attributes the detector returns.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batcher, assembler = _Batcher(batch_size), _Assembler()
    out: list[Detections | None] = [None] * len(images)

    def run(batch: list[tuple[SliceJob, np.ndarray]]) -> None:
        outputs = _timed_call(detector, [c for _, c in batch], timer)
        for position, det in assembler.add([j for j, _ in batch], outputs):
            out[position] = det

    for i, image in enumerate(images):
        jobs = frame_jobs(i, image, slice_wh=slice_wh, overlap_ratio=overlap_ratio, full_frame=full_frame, imgsz=imgsz, full_imgsz=full_imgsz)
        assembler.expect(i, len(jobs), (image.shape[1], image.shape[0]))
        if not jobs:
            out[i] = Detections.empty().with_attributes(source=np.zeros(0, np.int32))
        for batch in batcher.add(jobs):
            run(batch)
    for batch in batcher.flush():
        run(batch)
    return [_sorted_by_source(d) for d in out]  # type: ignore[arg-type]


def _sorted_by_source(det: Detections) -> Detections:
    """Slices in grid order, then the full frame (-1): the order of the stored run."""
    source = det.attributes["source"]
    if len(det) < 2:
        return det
    key = np.where(source < 0, np.iinfo(np.int32).max, source)
    order = np.argsort(key, kind="stable")
    return det if (order == np.arange(len(det))).all() else det[order]


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


def run_parameters(
    slice_wh: tuple[int, int],
    overlap_ratio: tuple[float, float],
    full_frame: bool,
    imgsz: int | None = None,
    full_imgsz: int | None = None,
) -> dict[str, object]:
    """The manifest ``parameters`` of a sliced run (what `sitesight.sliced.border` needs to rebuild slices,
    and the model input sizes when they were set)."""
    out: dict[str, object] = {"slice_wh": [int(v) for v in slice_wh], "overlap_ratio": [float(v) for v in overlap_ratio],
                              "full_frame": bool(full_frame)}
    if imgsz is not None:
        out["imgsz"] = int(imgsz)
    if full_imgsz is not None:
        out["full_imgsz"] = int(full_imgsz)
    return out


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
    assembler = _Assembler()
    counts = {"boxes": 0, "processed": 0}
    skipped: list[SkippedFrame] = []

    def slicer() -> None:
        try:
            batcher = _Batcher(batch_size)
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
                    pending.append((records.pop(position), _sorted_by_source(det)))
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
            outputs = _timed_call(detector, [c for _, c in batch], timer)  # type: ignore[union-attr]
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

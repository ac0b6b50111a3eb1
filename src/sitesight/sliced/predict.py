"""Sliced prediction: any detector callable over slices of many frames, batched, with provenance.

A detector is ``Callable[[list[np.ndarray]], list[Detections]]``: RGB uint8 ``(H, W, 3)`` images in,
one `Detections` per image out, boxes in that image's pixels. `predict_sliced` cuts each frame into
the `sitesight.sliced.slicing.slice_grid` slices, sends the slices of several frames to the detector in
batches of ``batch_size``, optionally adds one full-frame pass, and returns every raw box in frame
pixels with ``attributes["source"]`` = slice index (int32) or -1 for the full-frame pass.
Nothing is merged here: merging, the border rule and the gate run later (`sitesight.sliced.border`,
`sitesight.sliced.gate`), as often as wanted, on the stored raw boxes.

`detect_to_run` streams frames from disk (decoding in a background thread while the model runs),
skips unreadable frames with a logged reason, and writes a resumable run (`sitesight.sliced.store`).

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
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.sliced.frames import FrameRef, iter_frames
from sitesight.sliced.store import FrameRecord, SkippedFrame, library_versions, open_run, write_shard

__all__ = ["Detector", "predict_sliced", "DetectSummary", "detect_to_run", "run_parameters"]

log = logging.getLogger(__name__)

Detector = Callable[[list[np.ndarray]], list[Detections]]


def _check_outputs(outputs: Sequence[Detections], n: int) -> None:
    if len(outputs) != n:
        raise ValueError(f"detector returned {len(outputs)} Detections for {n} images")


def _slices_for(image_wh: tuple[int, int], slice_wh: tuple[int, int], overlap_ratio: tuple[float, float]) -> np.ndarray:
    from sitesight.sliced.slicing import slice_grid

    return np.asarray(slice_grid(image_wh, slice_wh=slice_wh, overlap_ratio=overlap_ratio), np.int64).reshape(-1, 4)


def predict_sliced(
    images: Sequence[np.ndarray],
    detector: Detector,
    *,
    slice_wh: tuple[int, int] = (640, 640),
    overlap_ratio: tuple[float, float] = (0.2, 0.2),
    batch_size: int = 8,
    full_frame: bool = True,
    timer: list[float] | None = None,
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

    Returns:
        One `Detections` per image in frame pixels, clipped to the frame, ordered by source
        (slices in grid order, then the full frame); ``attributes["source"]`` int32 plus whatever
        attributes the detector returns.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    jobs: list[tuple[int, int, int, int]] = []  # (image index, source, x offset, y offset)
    crops: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {i}: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        sizes.append((w, h))
        for s, (x1, y1, x2, y2) in enumerate(_slices_for((w, h), slice_wh, overlap_ratio).tolist()):
            jobs.append((i, s, x1, y1))
            crops.append(image[y1:y2, x1:x2])
    if full_frame:
        for i, image in enumerate(images):
            jobs.append((i, -1, 0, 0))
            crops.append(image)
    per_image: list[list[Detections]] = [[] for _ in images]
    for start in range(0, len(crops), batch_size):
        batch = crops[start : start + batch_size]
        t0 = time.perf_counter()
        outputs = detector(batch)
        if timer is not None:
            timer[0] += time.perf_counter() - t0
        _check_outputs(outputs, len(batch))
        for (i, source, dx, dy), det in zip(jobs[start : start + batch_size], outputs, strict=True):
            if len(det) == 0:
                continue
            det = det.shift(dx, dy) if dx or dy else det
            per_image[i].append(det.with_attributes(source=np.full(len(det), source, np.int32)))
    out = []
    for parts, wh in zip(per_image, sizes, strict=True):
        out.append(Detections.concat(parts).clip(wh) if parts else Detections.empty().with_attributes(source=np.zeros(0, np.int32)))
    return out


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
    slice_wh: tuple[int, int], overlap_ratio: tuple[float, float], full_frame: bool
) -> dict[str, object]:
    """The manifest ``parameters`` of a sliced run (what `sitesight.sliced.border` needs to rebuild slices)."""
    return {"slice_wh": [int(v) for v in slice_wh], "overlap_ratio": [float(v) for v in overlap_ratio], "full_frame": bool(full_frame)}


def _prefetch(refs: Sequence[FrameRef], depth: int) -> Iterator[tuple[FrameRef, np.ndarray | None, InputError | None]]:
    """`iter_frames` run in a daemon thread so decoding overlaps the model's forward pass."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    end = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in iter_frames(refs):
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # surfaced in the consumer thread
            q.put(exc)
        q.put(end)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


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
) -> DetectSummary:
    """Run sliced prediction over frames on disk into a resumable run folder.

    Frames already stored in ``run_dir`` (a killed earlier call with the same arguments) are not
    redone. Unreadable or truncated images are logged, recorded with their reason and skipped.

    Args:
        refs: frames to process (`sitesight.sliced.frames.list_frames`).
        detector: the model callable.
        run_dir: output folder (created, or resumed when it holds the same run).
        model: the model spec, stored in the manifest.
        slice_wh, overlap_ratio, batch_size, full_frame: as in `predict_sliced`.
        frames_per_shard: frames per Parquet shard (the unit lost and redone after a kill).
        on_progress: called with the number of frames finished after every shard.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    keys = [r.key for r in refs]
    if hasattr(detector, "lookup"):  # recorded predictions (predictors.replay): looked up by path
        return _replay_to_run(refs, detector, run_dir, model=model, frames_per_shard=frames_per_shard,
                              on_progress=on_progress)
    done = open_run(run_dir, keys, model=model, parameters=run_parameters(slice_wh, overlap_ratio, full_frame),
                    versions=library_versions())
    todo = [(i, r) for i, r in enumerate(refs) if i not in done]
    timer = [0.0]
    skipped: list[SkippedFrame] = []
    boxes = processed = 0
    index_of = {r.key: i for i, r in todo}
    pending: list[tuple[FrameRecord, np.ndarray]] = []
    pending_skipped: list[SkippedFrame] = []

    def flush() -> None:
        nonlocal boxes, processed
        raw = predict_sliced([img for _, img in pending], detector, slice_wh=slice_wh, overlap_ratio=overlap_ratio,
                             batch_size=batch_size, full_frame=full_frame, timer=timer)
        write_shard(run_dir, [(rec, det) for (rec, _), det in zip(pending, raw, strict=True)], pending_skipped)
        boxes += sum(len(d) for d in raw)
        processed += len(pending)
        if on_progress is not None:
            on_progress(len(pending) + len(pending_skipped))
        pending.clear()
        pending_skipped.clear()

    for ref, rgb, error in _prefetch([r for _, r in todo], depth=2 * frames_per_shard):
        index = index_of[ref.key]
        if error is not None:
            log.warning("skipping %s", error)
            record = SkippedFrame(index, ref.key, str(error))
            skipped.append(record)
            pending_skipped.append(record)
        else:
            pending.append((FrameRecord(index, ref.key, (rgb.shape[1], rgb.shape[0])), rgb))
        if len(pending) + len(pending_skipped) >= frames_per_shard:
            flush()
    if pending or pending_skipped:
        flush()
    return DetectSummary(run_dir, len(refs), len(done), processed, tuple(skipped), boxes,
                         time.perf_counter() - start, timer[0])


def _replay_to_run(
    refs: Sequence[FrameRef],
    replay: object,
    run_dir: Path,
    *,
    model: str,
    frames_per_shard: int,
    on_progress: Callable[[int], None] | None,
) -> DetectSummary:
    """Store recorded predictions as a run: sizes from image headers, boxes as full-frame boxes."""
    from sitesight.images import read_image_wh

    start = time.perf_counter()
    done = open_run(run_dir, [r.key for r in refs], model=model, parameters={"full_frame": True, "replay": True})
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
    return DetectSummary(run_dir, len(refs), len(done), processed, tuple(skipped), boxes, time.perf_counter() - start, 0.0)

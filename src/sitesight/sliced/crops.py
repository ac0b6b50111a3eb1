"""From frames to detector batches and back: crops, batches across frames, boxes in frame pixels.

`frame_jobs` cuts one frame into the `sitesight.sliced.slicing.slice_grid` slices (and the full
frame), each resized to the model's input size; `Batcher` groups the crops of many frames into
detector batches by input size; `Assembler` puts each batch's outputs back into frame pixels and
hands over a frame once all its crops came back. `sitesight.sliced.predict.predict_sliced` (in
memory) and `sitesight.sliced.pipeline.detect_to_run` (frames on disk into a run) both use them.

Example:
    >>> import numpy as np
    >>> from sitesight.sliced.crops import frame_jobs
    >>> jobs = frame_jobs(0, np.zeros((720, 1280, 3), np.uint8), slice_wh=(640, 640), overlap_ratio=(0.2, 0.2), full_frame=True)
    >>> [j.source for j, _ in jobs][-1], jobs[-1][1].shape
    (-1, (720, 1280, 3))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections

__all__ = ["Detector", "SliceJob", "frame_jobs", "Batcher", "Assembler", "timed_call", "sorted_by_source", "run_parameters"]

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


class Batcher:
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


class Assembler:
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


def timed_call(detector: Detector, crops: list[np.ndarray], timer: list[float] | None) -> list[Detections]:
    t0 = time.perf_counter()
    outputs = detector(crops)
    if timer is not None:
        timer[0] += time.perf_counter() - t0
    _check_outputs(outputs, len(crops))
    return outputs


def sorted_by_source(det: Detections) -> Detections:
    """Slices in grid order, then the full frame (-1): the order of the stored run."""
    source = det.attributes["source"]
    if len(det) < 2:
        return det
    key = np.where(source < 0, np.iinfo(np.int32).max, source)
    order = np.argsort(key, kind="stable")
    return det if (order == np.arange(len(det))).all() else det[order]


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

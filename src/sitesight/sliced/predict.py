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

The crops, batches and assembly live in `sitesight.sliced.crops`; `detect_to_run` (frames on disk
into a resumable run folder, as a pipeline that never lets the model wait on decoding) in
`sitesight.sliced.pipeline`. Both are importable from here too.

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

from collections.abc import Sequence

import numpy as np

from sitesight.detections import Detections
from sitesight.sliced.crops import (
    Assembler,
    Batcher,
    Detector,
    SliceJob,
    frame_jobs,
    run_parameters,
    sorted_by_source,
    timed_call,
)
from sitesight.sliced.pipeline import DetectSummary, decoded_frames, default_decode_workers, detect_to_run

__all__ = ["Detector", "predict_sliced", "DetectSummary", "detect_to_run", "run_parameters", "SliceJob", "frame_jobs",
           "decoded_frames", "default_decode_workers"]


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
    batcher, assembler = Batcher(batch_size), Assembler()
    out: list[Detections | None] = [None] * len(images)

    def run(batch: list[tuple[SliceJob, np.ndarray]]) -> None:
        outputs = timed_call(detector, [c for _, c in batch], timer)
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
    return [sorted_by_source(d) for d in out]  # type: ignore[arg-type]

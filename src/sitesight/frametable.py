"""`FrameTable`: the boxes of many frames as one value, frame index + the `Detections` columns.

Per-frame `Detections` are right for one frame; work over a whole run (sweeps, gates, mining,
evaluation over thousands of frames) wants every box of every frame in flat arrays. A
`FrameTable` is exactly that: ``frame (N,)`` int64 ascending, and one `Detections` holding all
boxes (so the same ``xyxy``, ``score``, ``class_id`` and ``attributes`` columns), frame ``f``
owning rows ``offsets[f]:offsets[f + 1]``. Its Parquet form is a run's shard table
(`sitesight.sliced.store`).

Example:
    >>> from sitesight import Detections
    >>> from sitesight.frametable import FrameTable
    >>> t = FrameTable.from_frames([Detections(xyxy=[[0, 0, 9, 9]]), Detections.empty()])
    >>> t.offsets.tolist(), t.n_frames, len(t.frame_detections(1))
    ([0, 1, 1], 2, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitesight.detections import Detections

__all__ = ["FrameTable"]


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Boxes of ``n_frames`` frames.

    Args:
        frame: ``(N,)`` int64 frame index of every box, ascending (rows are sorted stably by it
            when they are not).
        boxes: ``N`` boxes, each in its own frame's pixels.
        n_frames: number of frames (frames may hold no box).
    """

    frame: np.ndarray
    boxes: Detections
    n_frames: int

    def __post_init__(self) -> None:
        frame = np.asarray(self.frame, np.int64).reshape(-1)
        boxes = self.boxes
        if frame.shape != (len(boxes),):
            raise ValueError(f"FrameTable.frame: expected shape ({len(boxes)},), got {frame.shape}")
        n = int(self.n_frames)
        if len(frame) and (frame.min() < 0 or frame.max() >= n):
            raise ValueError(f"FrameTable.frame: index outside 0..{n - 1}")
        if len(frame) > 1 and (np.diff(frame) < 0).any():
            order = np.argsort(frame, kind="stable")
            frame, boxes = frame[order], boxes[order]
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "n_frames", n)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_frames(cls, per_frame: Sequence[Detections]) -> FrameTable:
        """One `Detections` per frame → a table (attribute keys must agree where boxes exist)."""
        counts = np.fromiter((len(d) for d in per_frame), np.int64, count=len(per_frame))
        return cls(np.repeat(np.arange(len(per_frame), dtype=np.int64), counts), Detections.concat(list(per_frame)),
                   len(per_frame))

    @property
    def offsets(self) -> np.ndarray:
        """``(F + 1,)`` int64 row offsets: frame ``f`` owns rows ``offsets[f]:offsets[f + 1]``."""
        return np.searchsorted(self.frame, np.arange(self.n_frames + 1), side="left").astype(np.int64)

    def counts(self) -> np.ndarray:
        """``(F,)`` int64 boxes per frame."""
        return np.bincount(self.frame, minlength=self.n_frames).astype(np.int64)

    def frame_detections(self, f: int) -> Detections:
        """The boxes of frame ``f``."""
        lo, hi = np.searchsorted(self.frame, [f, f + 1], side="left")
        return self.boxes[slice(int(lo), int(hi))]

    def per_frame(self) -> list[Detections]:
        """One `Detections` per frame."""
        o = self.offsets
        return [self.boxes[slice(int(o[f]), int(o[f + 1]))] for f in range(self.n_frames)]

    def filter(self, keep: np.ndarray) -> FrameTable:
        """Rows where ``keep`` (``(N,)`` bool) is True; every frame is kept, possibly empty."""
        return FrameTable(self.frame[keep], self.boxes[keep], self.n_frames)

    def take_frames(self, frames: Sequence[int] | np.ndarray) -> FrameTable:
        """The given frames, renumbered ``0..len(frames) - 1`` in that order."""
        frames = np.asarray(frames, np.int64).reshape(-1)
        if len(frames) == 0:
            return FrameTable(np.zeros(0, np.int64), self.boxes[np.zeros(0, np.int64)], 0)
        o = self.offsets
        counts = o[frames + 1] - o[frames]
        rows = np.repeat(o[frames] - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(int(counts.sum()))
        return FrameTable(np.repeat(np.arange(len(frames), dtype=np.int64), counts), self.boxes[rows], len(frames))

    def replace(self, boxes: Detections) -> FrameTable:
        """The same frames with new box columns (same length)."""
        return FrameTable(self.frame, boxes, self.n_frames)

"""`FlatDetections`: one model's detections over a pool of frames as flat arrays.

Mining scores tens of thousands of frames at once, so a model's boxes over the pool are one
`sitesight.frametable.FrameTable` built from row offsets (frame ``f`` owns rows
``offsets[f]:offsets[f + 1]``), with the attribute head's probabilities as ``attributes["probs"]``.

Example:
    >>> from sitesight import Detections
    >>> from sitesight.mining.flat import FlatDetections
    >>> flat = FlatDetections.from_detections([Detections(xyxy=[[0, 0, 9, 9]]), Detections.empty()])
    >>> flat.offsets.tolist(), flat.n_frames
    ([0, 1, 1], 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sitesight.detections import Detections
from sitesight.frametable import FrameTable

__all__ = ["FlatDetections"]


class FlatDetections(FrameTable):
    """One model's detections over ``F`` frames: a `sitesight.frametable.FrameTable` (the one multi-frame
    box table) built from offsets, with the attribute probabilities as ``attributes["probs"]``.

    Args:
        offsets: ``(F + 1,)`` int64, frame ``f`` owns rows ``offsets[f]:offsets[f + 1]``.
        xyxy: ``(N, 4)`` float32 absolute pixels in each frame.
        score: ``(N,)`` float32.
        class_id: ``(N,)`` int64.
        probs: ``(N, K)`` float32 attribute probabilities (e.g. ``safety_rope_probs`` of the RoI
            head), NaN rows for boxes without the attribute; None when the model has no such head.
    """

    def __init__(self, offsets: np.ndarray, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray,
                 probs: np.ndarray | None = None) -> None:
        offsets = np.asarray(offsets, np.int64)
        n = int(offsets[-1]) if offsets.size else 0
        xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        score = np.asarray(score, np.float32)
        class_id = np.asarray(class_id, np.int64)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise ValueError("FlatDetections.offsets: expected a non-decreasing (F + 1,) array starting at 0")
        if xyxy.shape[0] != n or score.shape != (n,) or class_id.shape != (n,):
            raise ValueError(f"FlatDetections: offsets end at {n} but got xyxy {xyxy.shape}, score {score.shape}, class_id {class_id.shape}")
        probs = None if probs is None else np.asarray(probs, np.float32)
        if probs is not None and (probs.ndim != 2 or probs.shape[0] != n):
            raise ValueError(f"FlatDetections.probs: expected ({n}, K), got {probs.shape}")
        frame = np.repeat(np.arange(offsets.size - 1, dtype=np.int64), np.diff(offsets))
        boxes = Detections(xyxy=xyxy, score=score, class_id=class_id, attributes={} if probs is None else {"probs": probs})
        super().__init__(frame, boxes, offsets.size - 1)
        object.__setattr__(self, "_offsets", offsets)

    @property
    def offsets(self) -> np.ndarray:
        """``(F + 1,)`` int64 row offsets."""
        return self._offsets  # type: ignore[attr-defined]

    @property
    def xyxy(self) -> np.ndarray:
        return self.boxes.xyxy

    @property
    def score(self) -> np.ndarray:
        return self.boxes.score

    @property
    def class_id(self) -> np.ndarray:
        return self.boxes.class_id

    @property
    def probs(self) -> np.ndarray | None:
        return self.boxes.attributes.get("probs")

    def counts(self) -> np.ndarray:
        """``(F,)`` int64 boxes per frame."""
        return np.diff(self.offsets)

    def frame_detections(self, f: int, *, probs_name: str = "probs") -> Detections:
        """Frame ``f`` as `Detections` (``probs`` as attribute ``probs_name`` when present)."""
        s, e = int(self.offsets[f]), int(self.offsets[f + 1])
        attributes = {} if self.probs is None else {probs_name: self.probs[s:e]}
        return Detections(xyxy=self.xyxy[s:e], score=self.score[s:e], class_id=self.class_id[s:e], attributes=attributes)

    def take_frames(self, frames: np.ndarray) -> FlatDetections:
        """The detections of the given frames, in that order."""
        frames = np.asarray(frames, np.int64)
        counts = self.counts()[frames]
        starts = self.offsets[frames]
        rows = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(int(counts.sum()))
        return FlatDetections(offsets=np.r_[0, np.cumsum(counts)], xyxy=self.xyxy[rows], score=self.score[rows],
                              class_id=self.class_id[rows], probs=None if self.probs is None else self.probs[rows])

    def filter(self, keep: np.ndarray) -> FlatDetections:
        """Rows where ``keep`` (``(N,)`` bool) is True, frames kept (possibly empty)."""
        counts = np.bincount(self.frame[keep], minlength=self.n_frames)
        return FlatDetections(offsets=np.r_[0, np.cumsum(counts)], xyxy=self.xyxy[keep], score=self.score[keep],
                              class_id=self.class_id[keep], probs=None if self.probs is None else self.probs[keep])

    @classmethod
    def from_detections(cls, per_frame: Sequence[Detections], *, probs_name: str | None = None) -> FlatDetections:
        """Concatenate one `Detections` per frame; ``attributes[probs_name]`` (``(n, K)``) becomes ``probs``."""
        counts = np.array([len(d) for d in per_frame], np.int64)
        parts = [d for d in per_frame if len(d)]
        if not parts:
            return cls(offsets=np.zeros(len(per_frame) + 1, np.int64), xyxy=np.zeros((0, 4)), score=np.zeros(0), class_id=np.zeros(0))
        probs = None
        if probs_name is not None and any(probs_name in d.attributes for d in parts):
            k = next(np.asarray(d.attributes[probs_name]).shape[1] for d in parts if probs_name in d.attributes)
            probs = np.concatenate([np.asarray(d.attributes[probs_name], np.float32) if probs_name in d.attributes
                                    else np.full((len(d), k), np.nan, np.float32) for d in parts])
        return cls(offsets=np.r_[0, np.cumsum(counts)], xyxy=np.concatenate([d.xyxy for d in parts]),
                   score=np.concatenate([d.score for d in parts]), class_id=np.concatenate([d.class_id for d in parts]), probs=probs)

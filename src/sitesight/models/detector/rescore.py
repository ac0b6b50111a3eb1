"""Post-hoc rescoring of a stored run of any detector (YOLO included) with a trained IoU head.

`train_iou_head_on_run` pairs a stored run (`sitesight.sliced.store`) with ground truth, reads its frames,
splits them into training and validation frames and trains `sitesight.models.detector.iou_head`.
`rescore_run` writes a new run beside the old one where every raw box keeps its box and class and
gains ``cls_score`` (the detector's score), ``iou_pred`` (the head's) and ``score = cls_score^alpha *
iou_pred^(1 - alpha)`` with the head's per-class alpha, ready for merging, sweeps and
`sitesight eval iou-aware`. Frames are read back by their run keys (image files and ``video#frame=N``
keys alike, `sitesight.sliced.frames`); unreadable frames are logged and recorded as skipped. The new
run's manifest records the post-processing spec its boxes are meant for (`sitesight.sliced.store.record_spec`).

Example:
    >>> from sitesight.models.detector.rescore import rescore_run
    >>> rescore_run("runs/yolo_cam7", "runs/iou_head/iou_head.safetensors", "runs/yolo_cam7_rescored")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.iou_aware import rescore
from sitesight.models.detector.iou_head import Frame, IoUHeadConfig, load_iou_head, predict_box_ious, train_iou_head
from sitesight.sliced.alpha import DEFAULT_SPEC
from sitesight.sliced.frames import FrameRef, read_frame
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import FrameRecord, Run, SkippedFrame, load_run, open_run, record_spec, write_shard

__all__ = ["run_frames", "train_iou_head_on_run", "rescore_run"]

log = logging.getLogger(__name__)


def _read(key: str) -> np.ndarray:
    """RGB uint8 of a run's frame key (image path or ``video#frame=N``); `InputError` when unreadable."""
    frame = read_frame(FrameRef.from_key(key))
    if isinstance(frame, InputError):  # a video frame past the end comes back as the error
        raise frame
    return frame


def run_frames(run: Run, dataset: Dataset | None = None, *, min_score: float = 0.0) -> list[Frame]:
    """``(rgb, stored boxes with score >= min_score, gt or None)`` for every readable frame of a run.

    Ground truth is matched by path (`sitesight.sliced.sweep.align_gt`); unreadable frames are logged and left out.
    """
    from sitesight.sliced.sweep import align_gt

    gts = align_gt(run, dataset) if dataset is not None else [None] * len(run.frames)
    out: list[Frame] = []
    for rec, raw, gt in zip(run.frames, run.raw, gts, strict=True):
        try:
            rgb = _read(rec.key)
        except InputError as exc:
            log.warning("skipping %s", exc)
            continue
        out.append((rgb, raw[raw.score >= min_score], gt))
    return out


def train_iou_head_on_run(
    run_dir: Path | str,
    dataset: Dataset,
    *,
    config: IoUHeadConfig,
    out_dir: Path | str,
    val_fraction: float = 0.25,
    epochs: int = 10,
    min_score: float = 0.05,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Train an IoU head on a stored run's raw boxes against ``dataset``'s ground truth (frames with GT only).

    The last ``val_fraction`` of the labelled frames (at least one) validate: calibration and per-class alpha.
    ``device`` as in `sitesight.models.detector.iou_head.train_iou_head`.
    """
    run = load_run(run_dir)
    frames = [f for f in run_frames(run, dataset, min_score=min_score) if f[2] is not None]
    if len(frames) < 2:
        raise InputError(f"need at least 2 readable frames with ground truth, found {len(frames)}", run.run_dir)
    if tuple(config.class_names) != tuple(dataset.class_names):
        config = IoUHeadConfig.from_dict({**config.to_dict(), "class_names": list(dataset.class_names), "alphas": None})
    n_val = min(len(frames) - 1, max(1, round(len(frames) * val_fraction)))
    return train_iou_head(frames[:-n_val], frames[-n_val:], config=config, out_dir=out_dir, epochs=epochs, seed=seed, device=device)


def rescore_run(
    run_dir: Path | str,
    head_path: Path | str,
    out_dir: Path | str,
    *,
    alphas: Sequence[float] | float | None = None,
    batch_size: int = 4,
    device: str = "cpu",
    on_progress: Callable[[int], None] | None = None,
    spec: PostprocessSpec = DEFAULT_SPEC,
) -> Run:
    """Write ``out_dir``: the run at ``run_dir`` with ``cls_score``, ``iou_pred`` and rescored ``score`` per raw box.

    Args:
        run_dir: a stored run of any detector.
        head_path: an IoU head checkpoint (`train_iou_head`).
        out_dir: the new run folder (resumable like any run).
        alphas: one alpha for every class or one per class; None = the head's tuned alphas (0.5 if untuned).
        batch_size: frames per forward pass.
        device: torch device of the head (``"auto"``: CUDA, then MPS, then CPU).
        on_progress: called with the number of frames done after each batch.
        spec: the post-processing the rescored boxes are meant for, recorded in the new run's
            manifest (`sitesight.sliced.store.record_spec`; ``eval iou-aware`` starts from it);
            default: the one the head's alphas are tuned under (`sitesight.sliced.alpha.DEFAULT_SPEC`).
    """
    run = load_run(run_dir)
    from sitesight.models.train import resolve_device

    head = load_iou_head(head_path, device=str(resolve_device(device)))
    k = len(head.config.class_names)
    if alphas is None:
        per_class = np.asarray(head.config.alphas if head.config.alphas is not None else [0.5] * k, np.float64)
    else:
        per_class = np.broadcast_to(np.asarray(alphas, np.float64), (k,)).copy()
    model = f"{run.manifest.get('model', '?')} + iou_head {Path(head_path).name} (alphas {per_class.round(2).tolist()})"
    done = open_run(out_dir, list(run.manifest["frames"]), model=model, parameters=run.parameters, class_names=run.class_names)
    record_spec(out_dir, spec.to_dict())
    todo = [(rec, raw) for rec, raw in zip(run.frames, run.raw, strict=True) if rec.index not in done]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images, kept, skipped = [], [], []
        for rec, raw in chunk:
            try:
                images.append(_read(rec.key))
                kept.append((rec, raw))
            except InputError as exc:
                log.warning("skipping %s", exc)
                skipped.append(SkippedFrame(rec.index, rec.key, str(exc)))
        if kept and (bad := [int(r.class_id.max()) for _, r in kept if len(r) and r.class_id.max() >= k]):
            raise InputError(f"boxes of class {max(bad)} but the head knows {k} classes", head_path)
        ious = predict_box_ious(head, images, [raw for _, raw in kept], batch_size=batch_size)
        rows: list[tuple[FrameRecord, Detections]] = []
        for (rec, raw), iou in zip(kept, ious, strict=True):
            cls = np.asarray(raw.attributes.get("cls_score", raw.score), np.float32)
            score = rescore(cls, iou, per_class[raw.class_id]) if len(raw) else raw.score
            rows.append((rec, raw.replace(score=score, attributes={**raw.attributes, "cls_score": cls, "iou_pred": iou})))
        write_shard(out_dir, rows, skipped)
        if on_progress is not None:
            on_progress(len(chunk))
    skipped_before = [s for s in run.skipped if s.index not in done]
    if skipped_before:
        write_shard(out_dir, [], skipped_before)
    return load_run(out_dir)

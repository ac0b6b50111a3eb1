"""Attributes onto boxes with a trained RoI head: `predict_roi` (frames + boxes in memory),
`predict_roi_dataset` (a checkpoint over a dataset's boxes, unreadable frames skipped with their reason)
and `write_attribute_csv`, the per-box CSV ``sitesight eval cls`` reads
(``image, box_index, x1, y1, x2, y2, score, label, pred`` and one probability column per class);
`attribute_labels` gives the true classes of the boxes a head classifies (`classified_rows`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.models.data import FrameSource, RoiFrameDataset, roi_collate
from sitesight.models.roi_head import RoIAttributeHead, RoIHeadConfig
from sitesight.models.train import evaluate, resolve_device

__all__ = ["attribute_labels", "classified_rows", "predict_roi", "predict_roi_dataset", "write_attribute_csv"]


def classified_rows(detections: Detections, box_class_id: int, min_height: float) -> np.ndarray:
    """``(N,)`` bool: boxes of ``box_class_id`` at least ``min_height`` pixels tall."""
    return (detections.class_id == box_class_id) & (detections.xyxy[:, 3] - detections.xyxy[:, 1] >= min_height)


def attribute_labels(dataset: Dataset, config: RoIHeadConfig, box_class_id: int | None = None) -> list[np.ndarray]:
    """Per sample, ``(N,)`` int64 true class index of every box (-1 for boxes of other classes and
    for boxes shorter than ``config.min_height``)."""
    cls = box_class_id if box_class_id is not None else (
        dataset.class_index(config.box_class) if config.box_class in dataset.class_names else -1
    )
    lookup = {name: i for i, name in enumerate(config.class_names)}
    out = []
    for s in dataset.samples:
        values = s.gt.attributes.get(config.attribute)
        lab = np.full(len(s.gt), -1, np.int64)
        for j in np.flatnonzero(classified_rows(s.gt, cls, config.min_height)):
            v = None if values is None else values[j]
            lab[j] = lookup.get(str(v), 0) if v is not None else 0
        out.append(lab)
    return out


def predict_roi(
    model: RoIAttributeHead,
    frames: Sequence[FrameSource],
    detections: Sequence[Detections],
    *,
    box_class_id: int = 0,
    batch_size: int = 8,
    device: str = "auto",
) -> list[Detections]:
    """Attribute probabilities for every ``box_class_id`` box, the backbone once per frame.

    Args:
        model: a trained head (e.g. from `sitesight.models.checkpoint.load_checkpoint`).
        frames: image paths or ``(h, w, 3)`` uint8 arrays.
        detections: per frame, boxes in that frame's pixels (ground truth or predictions).
        box_class_id: which class's boxes get attributes (the head's ``box_class``); boxes
            shorter than the head's ``min_height`` get none.

    Returns:
        New `Detections` per frame with ``<attribute>_probs`` ``(N, K)`` float32 and
        ``<attribute>_pred`` object array of class names (NaN / ``None`` for other boxes).
    """
    if len(frames) != len(detections):
        raise ValueError(f"predict_roi: {len(frames)} frames but {len(detections)} Detections")
    cfg = model.config
    dev = resolve_device(device)
    model = model.to(dev).eval()
    keep = [np.flatnonzero(classified_rows(d, box_class_id, cfg.min_height)) for d in detections]
    with_boxes = [i for i, k in enumerate(keep) if len(k)]
    dataset = RoiFrameDataset(
        [frames[i] for i in with_boxes], [detections[i].xyxy[keep[i]] for i in with_boxes], None,
        frame_wh=cfg.frame_wh, expansion=cfg.expansion,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=roi_collate)
    _, _, probs = evaluate(model, loader, device=dev)
    k = len(cfg.class_names)
    names = np.array(cfg.class_names, dtype=object)
    out, start = [], 0
    for i, d in enumerate(detections):
        p = np.full((len(d), k), np.nan, np.float32)
        pred = np.full(len(d), None, object)
        if len(keep[i]):
            p[keep[i]] = probs[start : start + len(keep[i])]
            pred[keep[i]] = names[p[keep[i]].argmax(axis=1)]
            start += len(keep[i])
        out.append(d.with_attributes(**{f"{cfg.attribute}_probs": p, f"{cfg.attribute}_pred": pred}))
    return out


def write_attribute_csv(
    path: Path | str,
    images: Sequence[str | Path],
    predictions: Sequence[Detections],
    *,
    attribute: str,
    class_names: Sequence[str],
    labels: Sequence[np.ndarray] | None = None,
) -> int:
    """One row per box that has ``<attribute>_probs``; returns the number of rows written.

    ``labels`` (per frame ``(N,)`` true class indices, -1 = none) fills the ``label`` column with
    the true class name; it is empty when unknown.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic.open_atomic(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "box_index", "x1", "y1", "x2", "y2", "score", "label", "pred", *class_names])
        for i, (image, d) in enumerate(zip(images, predictions, strict=True)):
            probs = d.attributes.get(f"{attribute}_probs")
            if probs is None:
                continue
            for j in range(len(d)):
                if np.isnan(probs[j]).any():
                    continue
                true = "" if labels is None or labels[i][j] < 0 else class_names[int(labels[i][j])]
                x1, y1, x2, y2 = (round(float(v), 2) for v in d.xyxy[j])
                writer.writerow(
                    [str(image), j, x1, y1, x2, y2, round(float(d.score[j]), 5), true, class_names[int(probs[j].argmax())],
                     *(f"{float(v):.6f}" for v in probs[j])]
                )
                rows += 1
    return rows


def predict_roi_dataset(
    checkpoint: Path | str,
    boxes: Dataset,
    out_csv: Path | str,
    *,
    images_root: Path | str | None = None,
    box_class_id: int | None = None,
    batch_size: int = 8,
    device: str = "auto",
) -> tuple[int, list[tuple[Path, str]]]:
    """Predict the checkpoint's attribute for the boxes of ``boxes`` (ground truth or a run's output).

    Frames are ``boxes``' sample paths, resolved against ``images_root`` when given. The box class
    is the checkpoint's ``box_class`` looked up in ``boxes.class_names`` unless ``box_class_id`` is
    given. True labels are filled in when the boxes carry the attribute. A frame that cannot be read
    is skipped with its reason. Returns ``(CSV row count, [(skipped frame, reason), ...])``.
    """
    from sitesight.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint, kind="roi_head", device="cpu")
    cfg = model.config
    if box_class_id is None:
        if cfg.box_class not in boxes.class_names:
            raise InputError(f"box class {cfg.box_class!r} not in {list(boxes.class_names)}; pass box_class_id", where="boxes")
        box_class_id = boxes.class_index(cfg.box_class)
    from sitesight.images import split_readable

    root = None if images_root is None else Path(images_root)
    frames = [Path(boxes.image_path(s)) if root is None else root / s.path for s in boxes.samples]
    readable, skipped = split_readable(frames)
    if skipped:
        ok = set(readable)
        boxes = boxes.with_samples([s for s, f in zip(boxes.samples, frames, strict=True) if f in ok])
        frames = readable
    preds = predict_roi(model, frames, [s.gt for s in boxes.samples], box_class_id=box_class_id, batch_size=batch_size, device=device)
    has_truth = any(cfg.attribute in s.gt.attributes for s in boxes.samples)
    labels = attribute_labels(boxes, cfg, box_class_id) if has_truth else None
    rows = write_attribute_csv(out_csv, frames, preds, attribute=cfg.attribute, class_names=cfg.class_names, labels=labels)
    return rows, skipped

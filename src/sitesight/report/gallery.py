"""The error gallery of a detection section: false positives (by TIDE type), misses, duplicates and
localisation errors as small crops, each tagged with its class, camera, COCO size bucket and score,
so the page's filters and keyboard navigation (``gallery.js``) can browse them offline.

Crops are JPEG data URIs drawn at `GALLERY_SIDE` px and marked ``loading="lazy"`` in the page; the
number of cards is capped per error type (highest scores first for predictions, largest first for
misses), which keeps a 2,000-person report within its size budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.detections import Detections
from sitesight.report.crops import FrameCache, draw_crop
from sitesight.report.error_examples import classify_errors

__all__ = ["gallery_cards", "GALLERY_SIDE", "TYPE_LABELS", "size_bucket"]

GALLERY_SIDE = 128
TYPE_LABELS = {
    "localisation": "localisation (right class, IoU too low)",
    "class": "wrong class",
    "duplicate_border": "duplicate across a slice border",
    "duplicate_same": "duplicate",
    "background": "false positive (background)",
    "both": "false positive (wrong class and place)",
    "missed": "missed (false negative)",
}
GT_COLOUR = (46, 204, 113)
PRED_COLOUR = (231, 76, 60)


def size_bucket(xyxy: np.ndarray) -> str:
    """COCO's bucket of a box: small (< 32² px²), medium (< 96²) or large."""
    area = float((xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]))
    return "small" if area < 32**2 else "medium" if area < 96**2 else "large"


def gallery_cards(
    gts: Sequence[Detections],
    preds: Sequence[Detections],
    *,
    paths: Sequence[Path | str],
    cameras: Sequence[str | None],
    class_names: Sequence[str],
    conf: float,
    iou: float = 0.5,
    per_type: int = 60,
    cache: FrameCache | None = None,
) -> list[dict[str, Any]]:
    """One card per shown error at the operating point ``score >= conf``.

    Returns:
        dicts with ``src`` (data URI), ``type``, ``type_label``, ``class``, ``camera`` ("unknown" when
        not known), ``size``, ``score`` (None for a miss), ``where`` (file name), ``frame`` (index).
    """
    cache = cache or FrameCache()
    errors = classify_errors(gts, preds, iou=iou, conf=conf)
    chosen = []
    for kind in TYPE_LABELS:
        group = [e for e in errors if e.type == kind]
        if kind == "missed":
            area = [float(np.prod(gts[e.image].xyxy[e.gt, 2:] - gts[e.image].xyxy[e.gt, :2])) for e in group]
            group = [group[i] for i in np.argsort(area, kind="stable")[::-1]]
        else:
            group.sort(key=lambda e: -e.score)
        chosen += group[:per_type]
    cards: list[dict[str, Any] | None] = [None] * len(chosen)
    for i in sorted(range(len(chosen)), key=lambda i: chosen[i].image):  # decode each frame once
        e = chosen[i]
        frame = cache.get(paths[e.image])
        if frame is None:
            continue
        gt = gts[e.image]
        gt_box = None if e.gt is None else gt.xyxy[e.gt]
        if e.pred is not None:
            p = preds[e.image]
            box, cls, score = p.xyxy[e.pred], int(p.class_id[e.pred]), float(p.score[e.pred])
            src = draw_crop(frame, box, label=f"{class_names[cls]} {score:.2f}", colour=PRED_COLOUR,
                            others=[] if gt_box is None else [(gt_box, GT_COLOUR)], side=GALLERY_SIDE)
        else:
            assert gt_box is not None
            box, cls, score = gt_box, int(gt.class_id[e.gt]), None
            src = draw_crop(frame, box, label=class_names[cls], colour=GT_COLOUR, side=GALLERY_SIDE)
        cards[i] = {"src": src, "type": e.type, "type_label": TYPE_LABELS[e.type], "class": class_names[cls],
                    "camera": cameras[e.image] or "unknown", "size": size_bucket(box), "score": score,
                    "where": Path(str(paths[e.image])).name, "frame": e.image}
    return [c for c in cards if c is not None]

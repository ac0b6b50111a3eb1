"""Hand the mined frames to labellers: why each was picked, and a CVAT task package.

`disputes` lists the boxes a pair argues about in one frame (what the labeller should look at
first); `package_mined` writes the selected frames as CVAT task parts through the curation
packager (`sitesight.curation.packaging.package_cvat_tasks`), optionally with one model's boxes
as pre-annotations to correct, and puts the ``why.json`` of the selection next to the parts.

Example:
    >>> parts = package_mined(pool, frames, "MINED/cvat", preannotate="A")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.dataset import Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.mining.discrepancy import PairDiscrepancy
from sitesight.mining.pool import Pool

__all__ = ["disputes", "package_mined"]


def _class_name(pool: Pool, class_id: int) -> str:
    names = pool.class_names
    return names[class_id] if 0 <= class_id < len(names) else f"class{class_id}"


def _box(pool: Pool, model: str, row: int) -> dict[str, Any]:
    run = pool.runs[model]
    return {"model": model, "xyxy": [round(float(v), 1) for v in run.xyxy[row]], "class": _class_name(pool, int(run.class_id[row])),
            "score": round(float(run.score[row]), 4)}


def disputes(pool: Pool, pd: PairDiscrepancy, frame: int, *, min_contrib: float = 0.2, limit: int = 20) -> list[dict[str, Any]]:
    """The boxes of ``frame`` that the pair disagrees about, biggest contribution first.

    Each entry: ``reason`` (``only <model>``, ``class flip``, ``attribute``, ``localisation``,
    ``score gap``, ``cross-task``), ``contribution``, and the boxes (``xyxy`` frame pixels, class,
    score) of each model involved.
    """
    ra, rb = pool.runs[pd.a], pool.runs[pd.b]
    out: list[dict[str, Any]] = []
    for row in range(int(ra.offsets[frame]), int(ra.offsets[frame + 1])):
        c = float(pd.a_contrib[row])
        if c < min_contrib:
            continue
        j = int(pd.a_match[row])
        boxes = [_box(pool, pd.a, row)] + ([_box(pool, pd.b, j)] if j >= 0 else [])
        if j < 0:
            reason = f"only {pd.a}"
        elif ra.class_id[row] != rb.class_id[j]:
            reason = "class flip"
        elif abs(float(ra.score[row]) - float(rb.score[j])) >= 0.3:
            reason = "score gap"
        elif pd.a_iou[row] < 0.75:
            reason = "localisation"
        elif pd.a_cross[row] > 0:
            reason = "cross-task"
        else:
            reason = "attribute"
        out.append({"reason": reason, "contribution": round(c, 4), "boxes": boxes})
    for row in range(int(rb.offsets[frame]), int(rb.offsets[frame + 1])):
        c = float(pd.b_contrib[row])
        if c < min_contrib:
            continue
        unmatched = not np.any(pd.a_match[int(ra.offsets[frame]) : int(ra.offsets[frame + 1])] == row)
        out.append({"reason": f"only {pd.b}" if unmatched else "cross-task", "contribution": round(c, 4), "boxes": [_box(pool, pd.b, row)]})
    out.sort(key=lambda d: -d["contribution"])
    return out[:limit]


def package_mined(
    pool: Pool,
    frames: Sequence[int] | np.ndarray,
    out_dir: Path | str,
    *,
    preannotate: str | None = None,
    conf: float = 0.5,
    max_images: int = 500,
    why: Path | str | None = None,
) -> list[Path]:
    """CVAT task parts of the given pool frames (images copied; missing images logged and left out).

    Args:
        pool: the pool (frame keys are the image paths).
        frames: pool frame indices to package, in order.
        out_dir: folder for the parts (created).
        preannotate: a model of the pool whose boxes with ``score >= conf`` become pre-annotations.
        conf: pre-annotation confidence threshold.
        max_images: images per CVAT task part.
        why: a ``why.json`` to copy into ``out_dir`` (the reasons each image was picked).
    """
    from sitesight.curation.packaging import package_cvat_tasks

    if preannotate is not None and preannotate not in pool.runs:
        raise InputError(f"unknown model {preannotate!r} for pre-annotations; models are {list(pool.runs)}", where="preannotate")
    top = max((int(r.class_id.max()) for r in pool.runs.values() if len(r)), default=-1)
    names = pool.class_names or tuple(f"class{i}" for i in range(top + 1))
    samples = []
    for f in np.asarray(frames, np.int64).tolist():
        gt = Detections.empty()
        if preannotate is not None:
            d = pool.runs[preannotate].frame_detections(f)
            d = d[d.score >= conf]
            gt = Detections(xyxy=d.xyxy, score=d.score, class_id=d.class_id)
        w, h = (int(v) for v in pool.image_wh[f])
        samples.append(Sample(path=Path(str(pool.keys[f])), image_wh=(w, h), gt=gt))
    dataset = Dataset(class_names=names, samples=tuple(samples))
    out_dir = Path(out_dir)
    parts = package_cvat_tasks(dataset, out_dir, max_images=max_images, prefix="mined", task_name="sitesight mined")
    if why is not None and Path(why).is_file():
        shutil.copyfile(why, out_dir / "why.json")
    atomic.write_text(out_dir / "frames.json", json.dumps([str(pool.keys[f]) for f in np.asarray(frames, np.int64).tolist()], indent=1))
    return parts

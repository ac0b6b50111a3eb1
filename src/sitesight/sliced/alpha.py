"""IoU-aware re-ranking of a stored run: for each alpha, rescore, post-process, score COCO AP; and the oracle.

Raw boxes of an IoU-aware detector (or of any run after ``sitesight rescore``) carry the class
probability ``cls_score`` = p and the predicted IoU ``iou_pred``. For each alpha the boxes are
rescored ``S = p^alpha * IoU^(1 - alpha)`` (`sitesight.evaluation.iou_aware.rescore`), post-processed
by the one path (`sitesight.sliced.postprocess.postprocess`, with the spec given: by default
class-wise NMS at IoU 0.5, the border rule, no confidence filter) and scored with
`sitesight.evaluation.coco.evaluate_coco` (AP, AP50, AP75). The *oracle* does the same with the
true IoU of each raw box against the ground truth in place of ``iou_pred``: the headroom a perfect
IoU predictor would give. No model runs.

Caveat: the boxes a detector stored already passed its own in-model NMS at the alpha it ran with;
re-ranking them reproduces re-running the model at another alpha only where that NMS removed
nothing that mattered (store with a loose in-model NMS to be safe).

Example:
    >>> from sitesight.sliced.alpha import alpha_sweep_run
    >>> sweep = alpha_sweep_run("runs/cam7", dataset, [0.0, 0.5, 1.0])  # doctest: +SKIP
    >>> sweep.best().alpha  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.evaluation.coco import evaluate_coco
from sitesight.evaluation.iou_aware import CLS_SCORE, IOU_PRED, AlphaRow, AlphaSweep, rescore, true_iou
from sitesight.identity import align_frames
from sitesight.sliced.postprocess import postprocess
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import FrameRecord, Run, load_run

__all__ = ["DEFAULT_SPEC", "alpha_sweep", "alpha_sweep_run", "tune_alpha_per_class"]

DEFAULT_SPEC = PostprocessSpec(conf=0.0, method="nms", metric="iou", threshold=0.5)


def _check_attributes(raws: Sequence[Detections]) -> None:
    for i, raw in enumerate(raws):
        if len(raw) and (CLS_SCORE not in raw.attributes or IOU_PRED not in raw.attributes):
            raise InputError(f"frame {i}: stored boxes lack {CLS_SCORE!r} / {IOU_PRED!r} attributes "
                             "(run an IoU-aware detector, or rescore the run with an IoU head first)", where=f"frame {i}")


def _memory_run(raws: Sequence[Detections], image_wh: Sequence[tuple[int, int]] | None,
                parameters: Mapping[str, Any] | None, class_names: Sequence[str] | None) -> Run:
    """In-memory predictions as a `Run` value (nothing written), so they take the one post-processing path."""
    whs = list(image_wh) if image_wh is not None else [(1 << 20, 1 << 20)] * len(raws)
    frames = tuple(FrameRecord(i, f"frame{i}", (int(w), int(h))) for i, (w, h) in enumerate(whs))
    manifest = {"parameters": dict(parameters or {}), "class_names": None if class_names is None else list(class_names)}
    return Run(Path("."), manifest, frames, tuple(raws))


def _sweep(run: Run, gts: Sequence[Detections], alphas: Sequence[float], class_names: Sequence[str] | None,
           spec: PostprocessSpec, oracle: bool) -> AlphaSweep:
    bad = [a for a in alphas if not 0.0 <= float(a) <= 1.0]
    if bad or not alphas:
        raise InputError(f"alphas must be a non-empty list in [0, 1], got {list(alphas)}", where="alpha")
    _check_attributes(run.raw)
    if len(gts) != len(run.raw):
        raise InputError(f"alpha_sweep: {len(run.raw)} frames of predictions for {len(gts)} ground truths")
    table = run.table()
    boxes = table.boxes
    p = boxes.attributes.get(CLS_SCORE, np.zeros(len(boxes), np.float32))
    predicted = boxes.attributes.get(IOU_PRED, np.zeros(len(boxes), np.float32))
    truth = np.concatenate([true_iou(r, g) for r, g in zip(run.raw, gts, strict=True)]) if oracle and len(boxes) else predicted
    if spec.class_agnostic:
        gts = [g.replace(class_id=np.zeros(len(g), np.int64)) for g in gts]
    rows = []
    for use_oracle in ([False, True] if oracle else [False]):
        for alpha in alphas:
            scored = table.replace(boxes.replace(score=rescore(p, truth if use_oracle else predicted, float(alpha))))
            final = postprocess(run, spec, class_names=class_names, raw=scored)
            named = evaluate_coco(list(gts), final.table, class_names=final.class_names).named
            rows.append(AlphaRow(round(float(alpha), 6), use_oracle, float(named["AP"]), float(named["AP50"]), float(named["AP75"])))
    return AlphaSweep(tuple(rows), len(run.raw), len(boxes))


def alpha_sweep(
    raws: Sequence[Detections],
    gts: Sequence[Detections],
    alphas: Sequence[float],
    *,
    class_names: Sequence[str] | None = None,
    image_wh: Sequence[tuple[int, int]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    spec: PostprocessSpec = DEFAULT_SPEC,
    oracle: bool = True,
) -> AlphaSweep:
    """Re-rank raw boxes for each alpha, post-process per frame, and score with COCO AP / AP50 / AP75.

    Args:
        raws: raw boxes per frame with ``cls_score`` and ``iou_pred`` attributes (``source`` optional).
        gts: ground truth per frame, aligned with ``raws``.
        alphas: values in ``[0, 1]`` (1 = class score only, 0 = predicted IoU only).
        class_names: the classes of both (default ``class0…``).
        image_wh / parameters: frame sizes and the run's slice grid for the border rule; None = merge only.
        spec: the post-processing (`DEFAULT_SPEC`: class-wise NMS at IoU 0.5, no confidence filter).
        oracle: also evaluate every alpha with the true IoU in place of the prediction.
    """
    n_cls = max([int(d.class_id.max()) + 1 for d in (*raws, *gts) if len(d)], default=1)
    names = list(class_names) if class_names is not None else [f"class{i}" for i in range(n_cls)]
    return _sweep(_memory_run(raws, image_wh, parameters, names), gts, alphas, names, spec, oracle)


def tune_alpha_per_class(
    preds: Sequence[Detections],
    gts: Sequence[Detections],
    alphas: Sequence[float],
    *,
    num_classes: int,
    spec: PostprocessSpec = DEFAULT_SPEC,
) -> np.ndarray:
    """The alpha with the best COCO AP for each class on validation frames: ``(num_classes,)`` float64.

    ``preds`` are raw boxes with ``cls_score`` and ``iou_pred``; a class without ground truth keeps
    alpha 1 (class score only). Ties go to the larger alpha (closer to the detector's own score).
    """
    names = [f"c{k}" for k in range(num_classes)]
    run = _memory_run(preds, None, None, names)
    _check_attributes(run.raw)
    table = run.table()
    boxes = table.boxes
    scores = np.full((len(alphas), num_classes), -np.inf)
    for a, alpha in enumerate(alphas):
        p = boxes.attributes.get(CLS_SCORE, np.zeros(len(boxes), np.float32))
        q = boxes.attributes.get(IOU_PRED, np.zeros(len(boxes), np.float32))
        scored = table.replace(boxes.replace(score=rescore(p, q, float(alpha))))
        final = postprocess(run, spec, class_names=names, raw=scored)
        result = evaluate_coco(list(gts), final.table, class_names=names)
        for k, name in enumerate(names):
            ap = result.per_class.get(name, {}).get("AP")
            if ap is not None and ap >= 0:
                scores[a, k] = ap
    best = np.ones(num_classes, np.float64)
    for k in range(num_classes):
        if np.isfinite(scores[:, k]).any():
            top = scores[:, k].max()
            best[k] = max(float(alphas[a]) for a in range(len(alphas)) if scores[a, k] >= top - 1e-12)
    return best


def alpha_sweep_run(
    run_dir: Path | str,
    dataset: Dataset,
    alphas: Sequence[float],
    *,
    spec: PostprocessSpec = DEFAULT_SPEC,
    oracle: bool = True,
) -> AlphaSweep:
    """`alpha_sweep` over a stored run against a `Dataset`'s ground truth (frames aligned by
    `sitesight.identity.align_frames`; frames without ground truth are left out).

    Raises:
        InputError: no frame with ground truth, or stored boxes without ``cls_score`` / ``iou_pred``.
    """
    run = load_run(run_dir)
    alignment = align_frames([f.key for f in run.frames], dataset, root=run.root)
    used = alignment.matched.tolist()
    if not used:
        raise InputError("no processed frame of the run has ground truth", run.run_dir)
    sub = Run(run.run_dir, run.manifest, tuple(run.frames[i] for i in used), tuple(run.raw[i] for i in used))
    gts = [dataset.samples[int(alignment.sample[i])].gt for i in used]
    return _sweep(sub, gts, alphas, dataset.class_names, spec, oracle)

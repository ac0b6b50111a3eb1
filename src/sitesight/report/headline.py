"""The headline every report section opens with: which model, on what data (frames, cameras, ground-truth
coverage), at which operating point and why, and the numbers a safety lead asks for first —
precision, recall and F1 with 95 % bootstrap intervals and how many workers were missed.

Intervals come from `sitesight.compare.result.describe` (frames resampled, within cameras when every
frame has one). A headline is a plain dict the ``headline`` macro renders::

    {"model": str, "data": [str, ...], "operating": str, "metrics": [{"metric", "value", "lo", "hi"}],
     "missed": {"value", "lo", "hi", "of"} | None, "notes": [str, ...]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["detection_headline", "classification_headline", "anomaly_headline", "cameras_text"]

N_RESAMPLES = 1000


def cameras_text(cameras: Sequence[str | None]) -> str:
    """``"12 cameras"``, ``"camera unknown"`` or ``"3 cameras (40 frames without one)"`` — never "None"."""
    known = [c for c in cameras if c not in (None, "")]
    if not known:
        return "camera unknown"
    n = len(set(known))
    text = f"{n} camera{'s' if n != 1 else ''}"
    return text if len(known) == len(cameras) else f"{text} ({len(cameras) - len(known)} frames without one)"


def _spec_text(spec: Any, conf: float) -> str:
    if spec and "method" in spec:
        from sitesight.sliced.spec import PostprocessSpec

        return str(PostprocessSpec.from_dict(spec))
    return f"confidence ≥ {conf:.3g}"


def detection_headline(data: Any, name: str) -> dict[str, Any]:
    """Headline of a `sitesight.report.detection.DetectionData`."""
    det = data.det
    frames = len(data.dataset) if data.dataset is not None else int(det.get("images") or 0)
    data_lines = [f"{frames:,} frames", cameras_text(list(data.cameras)) if data.cameras else "camera unknown"]
    cov = data.coverage
    if cov:
        data_lines.append(f"ground truth: {cov['both']:,} of {cov['gt']:,} labelled frames evaluated"
                          + (f"; {cov['run_only']:,} run frames have no labels" if cov.get("run_only") else ""))
    operating = f"{_spec_text(data.spec, data.conf)} at IoU {data.iou:g} — {data.op_source}"
    if data.preds is None or data.dataset is None or data.op_preds is None:
        metrics = [{"metric": k, "value": det.get(k), "lo": None, "hi": None} for k in ("precision", "recall", "f1")]
        n_gt = int((det.get("tp") or 0) + (det.get("fn") or 0))
        missed = {"value": det.get("fn"), "lo": None, "hi": None, "of": n_gt} if det.get("fn") is not None else None
        return {"model": data.model or name, "data": data_lines, "operating": operating, "metrics": metrics, "missed": missed,
                "notes": ["stored evaluation: no boxes, so no intervals"]}
    from sitesight.compare.detection_table import detection_table
    from sitesight.compare.result import describe

    gts = [s.gt for s in data.dataset.samples]
    names = data.dataset.class_names
    op = detection_table(gts, data.op_preds, class_names=names, conf=data.conf, area_ranges={"all": (0.0, 1e10)})
    blk = op.blocks

    def op_stat(sums: np.ndarray) -> np.ndarray:
        b = blk(sums)
        stats = op.statistic(sums)[:, 2:5]  # F1, precision, recall
        missed = (b["n_gt"] - b["op_tp"])[:, :, 0].sum(1)
        return np.column_stack([stats, missed])

    full = blk(op.counts.sum(0, keepdims=True, dtype=np.float64))
    n_gt = int(full["n_gt"][0, :, 0].sum())
    exact = np.r_[op.exact[2:5], n_gt - full["op_tp"][0, :, 0].sum()]
    rows = describe(op.counts, op_stat, ["F1", "precision", "recall", "missed"], exact=exact, cameras=data.cameras,
                    n_resamples=N_RESAMPLES)
    every = detection_table(gts, data.preds, class_names=names, conf=data.conf, area_ranges={"all": (0.0, 1e10)}, n_bins=16)
    rows_ap = describe(every.counts, lambda s: every.statistic(s)[:, :2], ["AP", "AP50"], exact=every.exact[:2],
                       cameras=data.cameras, n_resamples=N_RESAMPLES)
    by = {r["metric"]: r for r in rows + rows_ap}
    missed = {**by["missed"], "of": n_gt}
    notes = []
    if data.spec and "method" in data.spec:
        from sitesight.report.detection import AP_CONF

        notes.append(f"precision, recall, F1 and misses: the run post-processed with this spec; AP and the curves: with the same "
                     f"merge over every detection down to confidence {AP_CONF:g}")
    return {"model": data.model or name, "data": data_lines, "operating": operating,
            "metrics": [by["precision"], by["recall"], by["F1"], by["AP"], by["AP50"]], "missed": missed, "notes": notes}


RANDOM_INIT_WARNING = ("the backbone started from RANDOM weights (backbone_init='random'), not a pretrained model: "
                       "expect far lower accuracy on real data than a pretrained backbone gives")


def init_warnings(*records: Any) -> list[str]:
    """The headline's warning when training recorded ``backbone_init = 'random'`` in any of ``records``
    (a run's config, its checkpoint's ``best.json`` under ``checkpoint``, ``metrics.json``, ``summary.json``)."""
    for record in records:
        if not isinstance(record, Mapping):
            continue
        nested = record.get("checkpoint")
        inits = [record.get("backbone_init"), nested.get("backbone_init") if isinstance(nested, Mapping) else None]
        if "random" in inits:
            return [RANDOM_INIT_WARNING]
    return []


def classification_headline(name: str, model: str | None, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                            images: Sequence[str] | None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Macro F1 over active classes and accuracy with intervals (all boxes of a frame resampled together)."""
    from sitesight.compare.paired import class_count_table, classification_statistic
    from sitesight.compare.result import describe

    k = len(class_names)
    if images is not None and any(images):
        keys, unit = np.unique(np.asarray([str(i) for i in images], dtype=object), return_inverse=True)
        unit, n_units = unit.ravel(), keys.size
    else:
        unit, n_units = np.arange(len(y_true)), len(y_true)
    names, statistic = classification_statistic(k, class_names)
    table = class_count_table(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64), unit, n_units, k)
    rows = describe(table, lambda s: statistic(s)[:, :2], names[:2], n_resamples=N_RESAMPLES)
    return {"model": model or name, "data": [f"{len(y_true):,} labelled items", f"{n_units:,} images"],
            "operating": "arg-max class", "metrics": rows, "missed": None, "notes": [], "warnings": list(warnings)}


def anomaly_headline(name: str, labels: np.ndarray, scores: np.ndarray, threshold: float | None, threshold_name: str,
                     warnings: Sequence[str] = ()) -> dict[str, Any]:
    """AUROC with its interval, and recall / false alarms at the run's operating threshold."""
    from sitesight.compare.paired import anomaly_statistic, score_bins
    from sitesight.compare.result import describe

    known = labels >= 0
    y, s = labels[known] == 1, scores[known]
    data_lines = [f"{int(known.sum()):,} labelled images ({int(y.sum())} anomalous)", f"{int((~known).sum())} unlabelled"]
    if not (y.any() and (~y).any()):
        return {"model": name, "data": data_lines, "operating": threshold_name, "metrics": [], "missed": None,
                "notes": ["needs both normal and anomalous labels for metrics"], "warnings": list(warnings)}
    b, n_bins = score_bins(s, 1024)
    table = np.zeros((y.size, 2 * n_bins))
    table[np.arange(y.size), b + n_bins * y] = 1
    rows = describe(table, anomaly_statistic(n_bins, 0.05), ["AUROC", "recall@FAR0.05"], n_resamples=N_RESAMPLES)
    missed = None
    operating = "no stored threshold"
    if threshold is not None:
        flagged = s >= threshold
        rows.append({"metric": "recall at the threshold", "value": float(flagged[y].mean()), "lo": None, "hi": None})
        rows.append({"metric": "false-alarm rate", "value": float(flagged[~y].mean()), "lo": None, "hi": None})
        missed = {"value": int((~flagged[y]).sum()), "lo": None, "hi": None, "of": int(y.sum())}
        operating = f"score ≥ {threshold:.4g} ({threshold_name})"
    return {"model": name, "data": data_lines, "operating": operating, "metrics": rows, "missed": missed, "notes": [],
            "warnings": list(warnings)}

"""Folder in, files out: train an anomaly detector on a folder of normal images, score a folder.

`train_anomaly` fits on normal images (``--method ae|memory``), holds a share of them out to set a
threshold from normal images alone and writes one checkpoint. The hold-out takes whole groups
(`image_groups`: part, session or camera, from sub-folders, a file-name pattern or a CSV), never
single images of a group: tiles or frames of one part look alike, and a threshold calibrated on
the neighbours of the fitted images promises a false-alarm rate that unseen parts do not keep. The
threshold is the order statistic of `sitesight.evaluation.anomaly.normal_threshold`: the target
rate holds on unseen normals at a stated confidence, and fewer held-out normals than it needs are
warned about (or refused with ``strict``). `predict_anomaly` scores a folder and
writes ``scores.csv`` (``path, label, defect, score, flagged``; ``label`` is ``normal`` /
``anomalous`` when the folder layout says so, as `sitesight eval anomaly` reads it), ``summary.json``
(metrics, thresholds side by side, pixel AUROC where MVTec-style masks exist), ``histogram.png`` and
``heatmaps.png``.

Labels follow the MVTec AD layout: an image in a folder named ``good`` / ``normal`` / ``ok`` is
normal, one in any other sub-folder is anomalous with that folder's name as its defect type, and
images directly in the given folder are unlabelled. Masks are looked up as
``ground_truth/<defect>/<stem>_mask.png`` beside or above the folder. Unreadable images are skipped,
logged and listed in the summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.errors import InputError
from sitesight.evaluation.anomaly import (
    NormalThreshold,
    anomaly_metrics,
    min_normals,
    normal_threshold,
    pixel_auroc,
    read_mask,
)
from sitesight.models.anomaly.autoencoder import AutoencoderConfig, fit_autoencoder
from sitesight.models.anomaly.checkpoint import load_detector, read_detector_config, save_detector
from sitesight.models.anomaly.folders import ImageFolder, group_holdout, image_groups, read_images, scan_images
from sitesight.models.anomaly.memory import MemoryConfig, fit_memory, pretrained_cached
from sitesight.models.anomaly.plots import plot_heatmaps, plot_score_histogram
from sitesight.models.anomaly.thresholds import threshold_table
from sitesight.models.train import write_history

__all__ = ["ImageFolder", "scan_images", "read_images", "image_groups", "group_holdout", "train_anomaly", "predict_anomaly"]

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


def train_anomaly(
    normal_dir: Path | str,
    out: Path | str,
    *,
    config: AutoencoderConfig | MemoryConfig,
    holdout_fraction: float = 0.2,
    false_alarm_rate: float = 0.01,
    confidence: float = 0.95,
    group_by: str = "auto",
    strict: bool = False,
    weights: Path | str | None = None,
    pretrained: str = "auto",
    epochs: int = 30,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit a detector on the normal images under ``normal_dir`` and write ``out/model.safetensors``.

    Args:
        normal_dir: folder of normal images (searched recursively).
        out: output folder (checkpoint, ``.json`` config copy, ``history.csv/json`` for the autoencoder).
        config: `AutoencoderConfig` (method ``ae``) or `MemoryConfig` (method ``memory``).
        holdout_fraction: share of the normals kept out of fitting (whole groups) and scored to set
            the threshold (0 = fit on all, no stored threshold).
        false_alarm_rate: share of unseen normal images the stored threshold may flag.
        confidence: probability that it keeps that promise (`normal_threshold`).
        group_by: how images form groups for the hold-out (`image_groups`).
        strict: refuse (InputError) when the held-out normals are too few for the promise.
        weights: local backbone weights for ``memory``; unused for ``ae``.
        pretrained: ``memory`` without ``weights``: ``"auto"`` (ImageNet weights when they are in the
            local Hugging Face cache, else random init with a loud warning), ``"on"`` (fetch them;
            an error when that fails) or ``"off"`` (random init).
        epochs: training epochs for ``ae``.
        seed: seeds the split, the initialisation and the sampling.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``…
        progress: called with ``(done, total)`` (epochs for ``ae``; images, then coreset points for ``memory``).

    Returns:
        A summary dict: method, counts, the stored threshold, skipped files, warnings (e.g. too few
        held-out normals for the target rate), the checkpoint path.
    """
    folder = scan_images(normal_dir)
    images, read_ok, skipped = read_images(folder.paths)
    if len(images) < 2:
        raise InputError(f"need at least 2 readable normal images, found {len(images)}", Path(normal_dir))
    groups = image_groups([folder.paths[i] for i in read_ok], normal_dir, group_by)
    fit_idx, hold_idx = group_holdout(groups, holdout_fraction, seed=seed)
    warnings = []
    if holdout_fraction > 0 and len({*groups}) < 2:
        warnings.append(f"all {len(images)} normals form one group ({group_by}): nothing can be held out; "
                        "use --group-by to name parts, sessions or cameras")
    elif holdout_fraction > 0 and len({*groups}) == len(groups) and len(groups) > 1:
        log.info("hold-out by single image (no groups found): tiles or frames of one part should be grouped with --group-by")
    hold = [images[i] for i in hold_idx]
    fit_images = [images[i] for i in fit_idx]
    if hold and false_alarm_rate > 0:
        need = min_normals(false_alarm_rate, confidence)
        if len(hold) < need:
            message = (f"{len(hold)} held-out normals cannot promise a {100 * false_alarm_rate:g}% false-alarm rate at "
                       f"{100 * confidence:g}% confidence: it needs at least {need} (--holdout, or a higher --false-alarm-rate)")
            if strict:
                raise InputError(message, Path(normal_dir))
            warnings.append(message)
            log.warning(message)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    if isinstance(config, AutoencoderConfig):

        def on_epoch(row: dict[str, Any]) -> None:
            history.append(row)
            if progress is not None:
                progress(row["epoch"], epochs)

        detector = fit_autoencoder(fit_images, config=config, epochs=epochs, seed=seed, on_epoch=on_epoch, device=device)
        write_history(out, history)
    else:
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], len(fit_images))

        if pretrained not in ("auto", "on", "off"):
            raise InputError(f"pretrained must be auto, on or off, got {pretrained!r}", where="--pretrained")
        use_pretrained = weights is None and (pretrained == "on" or (pretrained == "auto" and pretrained_cached(config.backbone)))
        detector = fit_memory(fit_images, config=config, weights=weights, pretrained=use_pretrained, seed=seed, on_batch=on_batch,
                              device=device, on_coreset=progress)
        if detector.init == "random":
            warnings.append(f"feature memory on RANDOM features ({config.backbone}: no pretrained weights cached, no --weights): "
                            "expect far lower accuracy on real parts than ImageNet features give")
    threshold = None
    rule: NormalThreshold | None = None
    if hold:
        calib = detector.predict(hold).scores
        rule = normal_threshold(calib, false_alarm_rate=false_alarm_rate, confidence=confidence)
        fit_scores = detector.predict(fit_images).scores
        threshold = {
            **rule.to_dict(),
            "source": "normals",
            "rule": "order statistic (finite-sample bound on unseen normals)",
            "holdout_groups": sorted({groups[i] for i in hold_idx}),
            "group_by": group_by,
            "calibration_scores": [float(s) for s in calib],
            "fit_normals_flagged": [int((fit_scores >= rule.value).sum()), len(fit_images)],
        }
    path = save_detector(detector, out / "model.safetensors", threshold=threshold)
    return {
        "method": detector.method,
        "backbone_init": getattr(detector, "init", None),
        "checkpoint": str(path),
        "fit_images": len(fit_images),
        "holdout_images": len(hold),
        "holdout_groups": 0 if threshold is None else len(threshold["holdout_groups"]),
        "threshold": None if rule is None else rule.value,
        "threshold_rule": None if rule is None else rule.to_dict(),
        "skipped": skipped,
        "warnings": warnings,
    }


def predict_anomaly(
    model: Path | str,
    images_dir: Path | str,
    out: Path | str,
    *,
    threshold: float | None = None,
    heatmaps: int = 8,
    batch_size: int = 16,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every image under ``images_dir`` and write scores, summary and pictures into ``out``.

    Args:
        model: checkpoint from `train_anomaly`.
        images_dir: folder of images (MVTec-style sub-folders give labels, defect types and masks).
        out: output folder.
        threshold: flag ``score >= threshold``; default: the checkpoint's normal-only threshold.
        heatmaps: rows in ``heatmaps.png`` (highest-scoring anomalous and normal images; 0 = none).
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``…
        progress: called with ``(images done, total)``.

    Returns:
        The summary written to ``summary.json``.
    """
    config = read_detector_config(model)
    detector = load_detector(model, device=device)
    folder = scan_images(images_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stored = config.get("threshold") or {}
    t = threshold if threshold is not None else stored.get("value")
    scores = np.full(len(folder.paths), np.nan, np.float32)
    keep_maps = any(m is not None for m in folder.masks)  # for pixel AUROC; heatmaps are recomputed at the end
    maps: dict[int, np.ndarray] = {}
    skipped: list[str] = []
    for start in range(0, len(folder.paths), batch_size):
        idx = list(range(start, min(start + batch_size, len(folder.paths))))
        images, ok, bad = read_images([folder.paths[i] for i in idx])
        skipped += bad
        if images:
            pred = detector.predict(images, batch_size=batch_size)
            for j, k in enumerate(ok):
                scores[idx[k]] = pred.scores[j]
                if keep_maps:
                    maps[idx[k]] = pred.maps[j].astype(np.float16)  # half the memory; plenty for AUROC and pictures
        if progress is not None:
            progress(idx[-1] + 1, len(folder.paths))
    valid = np.flatnonzero(np.isfinite(scores))
    flagged = scores >= t if t is not None else np.zeros(len(scores), bool)
    _write_scores(out / "scores.csv", folder, scores, flagged if t is not None else None)
    summary: dict[str, Any] = {
        "method": config["method"],
        "model": str(model),
        "backbone_init": config.get("backbone_init", "unknown"),  # a report's headline warns about 'random'
        "images": len(valid),
        "skipped": skipped,
        "threshold": None if t is None else float(t),
        "threshold_source": "given" if threshold is not None else ("normals" if t is not None else None),
        "flagged": int(flagged[valid].sum()),
        "scores_csv": str(out / "scores.csv"),
    }
    summary["false_alarms"] = _false_alarms(stored, t, threshold is None, scores[[i for i in valid if folder.labels[i] == "normal"]])
    labelled = [i for i in valid if folder.labels[i]]
    y = np.array([folder.labels[i] == "anomalous" for i in labelled], bool)
    if labelled and y.any() and (~y).any():
        s = scores[labelled].astype(np.float64)
        summary["metrics"] = anomaly_metrics(y, s, threshold=t).to_dict()
        # without a threshold the metrics' threshold is the best F1 on these very labels: say so
        summary["metrics"]["tuned_on_test_labels"] = t is None
        calib = stored.get("calibration_scores")
        defects = [folder.defects[i] for i in labelled]
        summary["thresholds"] = [r.to_dict() for r in threshold_table(calib, s, y, defects=defects)]
        with_masks = [i for i in labelled if folder.labels[i] == "normal" or folder.masks[i] is not None]
        if any(folder.masks[i] is not None for i in with_masks) and _same_size(maps, with_masks):
            gt = np.stack([_read_mask(folder.masks[i], maps[i].shape) for i in with_masks])
            summary["pixel_auroc"] = pixel_auroc(gt, np.stack([maps[i].astype(np.float32) for i in with_masks]))
    summary["pictures"] = _pictures(out, folder, scores, valid, summary, detector=detector, n=heatmaps)
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    return summary


def _false_alarms(stored: dict[str, Any], t: float | None, stored_used: bool, normal_scores: np.ndarray) -> dict[str, Any]:
    """Observed false-alarm rate of threshold ``t`` on every normal set: the fitted normals (in sample),
    the held-out normals it was set on, and the normals of this folder (unseen), the last with the
    bound the order-statistic threshold promises for that many unseen normals."""
    if t is None:
        return {}
    out: dict[str, Any] = {}

    def entry(flagged: int, n: int) -> dict[str, Any]:
        return {"flagged": int(flagged), "n": int(n), "rate": float(flagged / n) if n else None}

    if stored_used and stored.get("fit_normals_flagged"):
        out["fit normals (in sample)"] = entry(*stored["fit_normals_flagged"])
    calib = stored.get("calibration_scores")
    if calib:
        out["held-out normals (threshold set on them)"] = entry(int((np.asarray(calib) >= t).sum()), len(calib))
    m = int(normal_scores.size)
    if m:
        row = entry(int((normal_scores >= t).sum()), m)
        fields = {k: stored.get(k) for k in ("false_alarm_rate", "confidence", "achieved_confidence", "n", "k", "min_normals", "enough")}
        if stored_used and None not in fields.values() and fields["n"]:
            rule = NormalThreshold(value=float(t), **fields)
            row.update({"promised_rate": rule.false_alarm_rate, "confidence": rule.confidence, "bound_95": rule.alarm_bound(m),
                        "within_bound": row["flagged"] <= rule.alarm_bound(m),
                        "bound_reads": f"of {m} unseen normals at most {rule.alarm_bound(m)} are flagged with 95% probability "
                                       f"when they are exchangeable with the {rule.n} held-out ones"})
        out["normals in this folder (unseen)"] = row
    return out


def _same_size(maps: dict[int, np.ndarray], idx: Sequence[int]) -> bool:
    """True when every image in ``idx`` has a map and all maps share one shape."""
    return all(i in maps for i in idx) and len({maps[i].shape for i in idx}) == 1


def _read_mask(path: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    if path is None:
        return np.zeros(shape, bool)
    return read_mask(path, shape[:2])


def _write_scores(path: Path, folder: ImageFolder, scores: np.ndarray, flagged: np.ndarray | None) -> None:
    import csv

    with atomic.open_atomic(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "defect", "score", "flagged"])
        for i, p in enumerate(folder.paths):
            if np.isfinite(scores[i]):
                flag = "" if flagged is None else int(flagged[i])
                writer.writerow([str(p), folder.labels[i], folder.defects[i] or "", f"{float(scores[i]):.6g}", flag])


def _pictures(
    out: Path, folder: ImageFolder, scores: np.ndarray, valid: np.ndarray, summary: dict[str, Any], *, detector: Any, n: int
) -> dict[str, str]:
    pictures: dict[str, str] = {}
    if not len(valid):
        return pictures
    labels = None
    sel = valid
    if all(folder.labels[i] for i in valid):
        labels = np.array([folder.labels[i] == "anomalous" for i in valid])
    lines = {row["name"]: row["threshold"] for row in summary.get("thresholds", []) if row["threshold"] is not None}
    if not lines and summary["threshold"] is not None:
        lines = {"threshold": summary["threshold"]}
    pictures["histogram"] = str(plot_score_histogram(scores[sel], labels, out / "histogram.png", thresholds=lines, title=f"{summary['method']} scores"))
    if n > 0:
        ranked = sorted(valid.tolist(), key=lambda i: -float(scores[i]))
        anomalous = [i for i in ranked if folder.labels[i] == "anomalous"]
        normal = [i for i in ranked if folder.labels[i] != "anomalous"]
        n_norm = min(len(normal), max(1, n // 4)) if anomalous else min(len(normal), n)
        chosen = anomalous[: n - n_norm] + normal[:n_norm]
        images, _, _ = read_images([folder.paths[i] for i in chosen])
        if len(images) == len(chosen) and chosen:
            maps = detector.predict(images).maps
            titles = [f"{folder.paths[i].parent.name}/{folder.paths[i].name}  score {float(scores[i]):.4g}" for i in chosen]
            masks = [_read_mask(folder.masks[i], m.shape) if folder.masks[i] is not None else None for i, m in zip(chosen, maps, strict=True)]
            pictures["heatmaps"] = str(plot_heatmaps(images, maps, out / "heatmaps.png", titles=titles, masks=masks))
    return pictures

"""Folder in, files out: train an anomaly detector on a folder of normal images, score a folder.

`train_anomaly` fits on normal images (``--method ae|memory``), holds a share of them out to set a
threshold from normal images alone and writes one checkpoint. `predict_anomaly` scores a folder and
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.errors import InputError
from sitesight.evaluation.anomaly import anomaly_metrics, pixel_auroc, threshold_from_normals
from sitesight.images import read_image_rgb
from sitesight.models.anomaly.autoencoder import AutoencoderConfig, fit_autoencoder
from sitesight.models.anomaly.checkpoint import load_detector, read_detector_config, save_detector
from sitesight.models.anomaly.memory import MemoryConfig, fit_memory
from sitesight.models.anomaly.plots import plot_heatmaps, plot_score_histogram
from sitesight.models.anomaly.thresholds import threshold_table
from sitesight.models.train import write_history

__all__ = ["ImageFolder", "scan_images", "read_images", "train_anomaly", "predict_anomaly"]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
NORMAL_FOLDERS = ("good", "normal", "ok")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImageFolder:
    """Images found under a folder, with what the layout says about them.

    Attributes:
        paths: image files, sorted.
        labels: ``"normal"``, ``"anomalous"`` or ``""`` (unknown) per image.
        defects: defect type (the sub-folder name) for anomalous images, else None.
        masks: the ground-truth mask file per image when one exists, else None.
    """

    paths: tuple[Path, ...]
    labels: tuple[str, ...]
    defects: tuple[str | None, ...]
    masks: tuple[Path | None, ...]


def scan_images(folder: Path | str) -> ImageFolder:
    """Find images under ``folder`` (recursively, ``ground_truth`` excluded) and label them by layout."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder of images", root)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "ground_truth" not in p.relative_to(root).parts)
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found", root)
    labels, defects, masks = [], [], []
    for p in paths:
        if p.parent == root:
            labels.append("")
            defects.append(None)
            masks.append(None)
            continue
        kind = p.parent.name
        normal = kind.lower() in NORMAL_FOLDERS
        labels.append("normal" if normal else "anomalous")
        defects.append(None if normal else kind)
        mask = None
        if not normal:
            for base in (root, root.parent, p.parent.parent.parent):
                candidate = base / "ground_truth" / kind / f"{p.stem}_mask.png"
                if candidate.is_file():
                    mask = candidate
                    break
        masks.append(mask)
    return ImageFolder(tuple(paths), tuple(labels), tuple(defects), tuple(masks))


def read_images(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode images; returns ``(images uint8 (H, W, 3), indices read, messages for those skipped)``."""
    images, ok, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            images.append(read_image_rgb(p))
            ok.append(i)
        except (InputError, OSError) as exc:
            log.warning("skipping %s: %s", p, exc)
            skipped.append(str(exc))
    return images, ok, skipped


def train_anomaly(
    normal_dir: Path | str,
    out: Path | str,
    *,
    config: AutoencoderConfig | MemoryConfig,
    holdout_fraction: float = 0.2,
    false_alarm_rate: float = 0.01,
    weights: Path | str | None = None,
    epochs: int = 30,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit a detector on the normal images under ``normal_dir`` and write ``out/model.safetensors``.

    Args:
        normal_dir: folder of normal images (searched recursively).
        out: output folder (checkpoint, ``.json`` config copy, ``history.csv/json`` for the autoencoder).
        config: `AutoencoderConfig` (method ``ae``) or `MemoryConfig` (method ``memory``).
        holdout_fraction: share of the normals kept out of fitting and scored to set the threshold
            (0 = fit on all, no stored threshold).
        false_alarm_rate: target share of normal images flagged by the stored threshold.
        weights: local backbone weights for ``memory`` (random init when None); unused for ``ae``.
        epochs: training epochs for ``ae``.
        seed: seeds the split, the initialisation and the sampling.
        progress: called with ``(done, total)`` (epochs for ``ae``, images for ``memory``).

    Returns:
        A summary dict: method, counts, the stored threshold, skipped files, warnings (e.g. too few
        held-out normals for the target rate), the checkpoint path.
    """
    folder = scan_images(normal_dir)
    images, _, skipped = read_images(folder.paths)
    if len(images) < 2:
        raise InputError(f"need at least 2 readable normal images, found {len(images)}", Path(normal_dir))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_hold = int(round(holdout_fraction * len(images))) if holdout_fraction > 0 else 0
    n_hold = min(n_hold, len(images) - 2)
    hold = [images[i] for i in order[:n_hold]]
    fit_images = [images[i] for i in order[n_hold:]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    if isinstance(config, AutoencoderConfig):

        def on_epoch(row: dict[str, Any]) -> None:
            history.append(row)
            if progress is not None:
                progress(row["epoch"], epochs)

        detector = fit_autoencoder(fit_images, config=config, epochs=epochs, seed=seed, on_epoch=on_epoch)
        write_history(out, history)
    else:
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], len(fit_images))

        detector = fit_memory(fit_images, config=config, weights=weights, seed=seed, on_batch=on_batch)
    threshold = None
    if hold:
        calib = detector.predict(hold).scores
        threshold = {
            "value": threshold_from_normals(calib, false_alarm_rate=false_alarm_rate),
            "source": "normals",
            "false_alarm_rate": false_alarm_rate,
            "calibration_scores": [float(s) for s in calib],
        }
    warnings = []
    if hold and false_alarm_rate > 0 and len(hold) * false_alarm_rate < 10:
        # Fewer than ~10 held-out normals above the threshold: the rate it keeps is mostly luck.
        warnings.append(
            f"{len(hold)} held-out normals cannot pin down a {100 * false_alarm_rate:g}% false-alarm rate "
            f"(~{len(hold) * false_alarm_rate:.1f} of them lie above the threshold); hold out at least "
            f"{int(np.ceil(10 / false_alarm_rate))} normals (--holdout) for a threshold you can rely on"
        )
        log.warning(warnings[-1])
    path = save_detector(detector, out / "model.safetensors", threshold=threshold)
    return {
        "method": detector.method,
        "checkpoint": str(path),
        "fit_images": len(fit_images),
        "holdout_images": len(hold),
        "threshold": None if threshold is None else threshold["value"],
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
        "images": len(valid),
        "skipped": skipped,
        "threshold": None if t is None else float(t),
        "threshold_source": "given" if threshold is not None else ("normals" if t is not None else None),
        "flagged": int(flagged[valid].sum()),
        "scores_csv": str(out / "scores.csv"),
    }
    labelled = [i for i in valid if folder.labels[i]]
    y = np.array([folder.labels[i] == "anomalous" for i in labelled], bool)
    if labelled and y.any() and (~y).any():
        s = scores[labelled].astype(np.float64)
        summary["metrics"] = anomaly_metrics(y, s, threshold=t).to_dict()
        calib = stored.get("calibration_scores")
        defects = [folder.defects[i] for i in labelled]
        summary["thresholds"] = [r.to_dict() for r in threshold_table(calib, s, y, defects=defects)]
        with_masks = [i for i in labelled if folder.labels[i] == "normal" or folder.masks[i] is not None]
        if any(folder.masks[i] is not None for i in with_masks) and _same_size(maps, with_masks):
            gt = np.stack([_read_mask(folder.masks[i], maps[i].shape) for i in with_masks])
            summary["pixel_auroc"] = pixel_auroc(gt, np.stack([maps[i].astype(np.float32) for i in with_masks]))
    summary["pictures"] = _pictures(out, folder, scores, valid, summary, detector=detector, n=heatmaps)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _same_size(maps: dict[int, np.ndarray], idx: Sequence[int]) -> bool:
    """True when every image in ``idx`` has a map and all maps share one shape."""
    return all(i in maps for i in idx) and len({maps[i].shape for i in idx}) == 1


def _read_mask(path: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    if path is None:
        return np.zeros(shape, bool)
    mask = read_image_rgb(path)[..., 0] > 127
    if mask.shape != shape:
        raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {shape[1]}x{shape[0]}", path)
    return mask


def _write_scores(path: Path, folder: ImageFolder, scores: np.ndarray, flagged: np.ndarray | None) -> None:
    import csv

    with path.open("w", newline="") as fh:
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

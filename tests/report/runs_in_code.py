"""Small runs of every kind, built in code on tiny synthetic frames (for the report tests)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.report import write_run_info

CLASSES = ("unknown", "correct", "wrong")
DET_CLASSES = ("person", "helmet")


def write_frames(folder: Path, n: int, *, seed: int = 0, wh: tuple[int, int] = (320, 200)) -> list[Path]:
    """``n`` JPEG frames: a grey gradient with a few coloured rectangles ("workers")."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = wh
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = np.linspace(60, 200, w, dtype=np.uint8)[None, :, None]
        for _ in range(4):
            x, y = rng.integers(0, w - 40), rng.integers(0, h - 60)
            img[y : y + 50, x : x + 20] = rng.integers(0, 255, 3)
        p = folder / f"frame_{i:03d}.jpg"
        Image.fromarray(img).save(p, quality=85)
        paths.append(p)
    return paths


def classification_run(root: Path, frames: list[Path], *, n_boxes: int = 60, seed: int = 0, name: str = "cls_a",
                       skill: float = 2.0, run_json: bool = False) -> Path:
    """A RoI-attribute run folder: predictions.csv (attribute layout), history.json, best.json."""
    rng = np.random.default_rng(seed)
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    y = rng.integers(0, len(CLASSES), n_boxes)
    logits = rng.normal(0, 1, (n_boxes, len(CLASSES)))
    logits[np.arange(n_boxes), y] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    with open(out / "predictions.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image", "box_index", "x1", "y1", "x2", "y2", "score", "label", "pred", *CLASSES])
        for i in range(n_boxes):
            x, yy = float(rng.integers(20, 280)), float(rng.integers(20, 120))
            wr.writerow([str(frames[i % len(frames)]), i // len(frames), x, yy, x + 18, yy + 45, 1.0, CLASSES[y[i]],
                         CLASSES[int(probs[i].argmax())], *(f"{v:.6f}" for v in probs[i])])
    history = [{"epoch": e, "train_loss": 1.2 / e, "lr": 1e-3, "backbone_frozen": False, "val_loss": 1.3 / e,
                "val_accuracy": 0.5 + 0.05 * e, "val_macro_ap": 0.5 + 0.06 * e, "val_macro_f1": 0.4 + 0.05 * e, "seconds": 1.0}
               for e in range(1, 5)]
    (out / "history.json").write_text(json.dumps(history))
    (out / "best.json").write_text(json.dumps({"kind": "roi_head", "class_names": list(CLASSES), "backbone": "tiny_cnn",
                                               "expansion": {"x": 1.0, "top": 0.2, "bottom": 1.5}, "epoch": 4}))
    (out / "metrics.json").write_text("{}")  # the report recomputes; the file marks the layout
    if run_json:
        write_run_info(out, kind="classification", name=name, artefacts={
            "predictions": out / "predictions.csv", "history": out / "history.json", "checkpoint_config": out / "best.json"})
    return out


def detection_dataset(frames: list[Path], *, seed: int = 0) -> Dataset:
    """Ground truth: 3 persons + 1 helmet per frame at fixed places."""
    rng = np.random.default_rng(seed)
    samples = []
    for i, p in enumerate(frames):
        xy = rng.uniform(10, 150, (4, 2))
        xyxy = np.c_[xy, xy + [[25, 60], [25, 60], [25, 60], [10, 10]]]
        samples.append(Sample(path=p, image_wh=(320, 200), gt=Detections(xyxy=xyxy, class_id=[0, 0, 0, 1]), image_id=i + 1))
    return Dataset(class_names=DET_CLASSES, samples=tuple(samples))


def detection_predictions(dataset: Dataset, *, seed: int = 0, noise: float = 0.05) -> list[Detections]:
    """Jittered ground truth, one dropped box per frame, a duplicate (another slice) and clutter."""
    rng = np.random.default_rng(seed)
    preds = []
    for s in dataset.samples:
        g = s.gt
        keep = np.ones(len(g), bool)
        keep[rng.integers(0, len(g))] = False
        wh = g.xyxy[keep, 2:] - g.xyxy[keep, :2]
        xyxy = g.xyxy[keep] + rng.normal(0, noise, (int(keep.sum()), 4)) * np.tile(wh, 2)
        dup = xyxy[:1] + 1.0
        clutter = np.array([[250.0, 150.0, 270.0, 190.0]])
        preds.append(Detections(
            xyxy=np.r_[xyxy, dup, clutter],
            score=np.r_[rng.uniform(0.5, 1.0, int(keep.sum())), [0.45, rng.uniform(0.1, 0.9)]],
            class_id=np.r_[g.class_id[keep], g.class_id[keep][:1], [0]],
            attributes={"source": np.r_[np.zeros(int(keep.sum()), np.int64), [1, -1]]},
        ))
    return preds


def detection_run(root: Path, frames: list[Path], *, name: str = "det_a", seed: int = 0, noise: float = 0.05,
                  sweep: bool = True) -> Path:
    """A detection run folder: COCO ground truth, COCO results, a merge × gate sweep CSV, run.json."""
    from sitesight.formats.coco import write_coco, write_coco_results

    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    dataset = detection_dataset(frames)
    gt = write_coco(dataset, out / "gt.json")  # inside the run folder: report refuses run.json artefacts outside it
    preds = detection_predictions(dataset, seed=seed, noise=noise)
    res = write_coco_results(dataset, preds, out / "results.json")
    artefacts = {"gt": gt, "predictions": res}
    if sweep:
        with open(out / "sweep.csv", "w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["method", "metric", "threshold", "conf", "gate", "tp", "fp", "fn", "precision", "recall", "f1", "gate_removed", "best"])
            wr.writerow(["nms", "iou", 0.5, 0.3, "", 30, 10, 6, 0.75, 0.833, 0.789, 0, 0])
            wr.writerow(["greedy_nmm", "ios", 0.5, 0.3, "r=40,conf=0.2", 30, 6, 6, 0.833, 0.833, 0.833, 4, 1])
        artefacts["sweep"] = out / "sweep.csv"
    write_run_info(out, kind="detection", name=name, artefacts=artefacts, config={"iou": 0.5, "conf": 0.3})
    return out


def anomaly_run(root: Path, frames: list[Path], *, name: str = "anom", seed: int = 0) -> Path:
    """scores.csv with labels and .npy heatmaps, thresholds in run.json."""
    rng = np.random.default_rng(seed)
    out = root / name
    (out / "maps").mkdir(parents=True, exist_ok=True)
    labels = np.arange(len(frames)) % 3 == 0
    scores = rng.normal(0, 1, len(frames)) + 2 * labels
    with open(out / "scores.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image", "label", "score", "heatmap"])
        for i, p in enumerate(frames):
            np.save(out / "maps" / f"{i}.npy", rng.random((25, 40)).astype(np.float32))
            wr.writerow([str(p), "anomalous" if labels[i] else "normal", f"{scores[i]:.5f}", f"maps/{i}.npy"])
    write_run_info(out, kind="anomaly", name=name, artefacts={"scores": out / "scores.csv"},
                   config={"thresholds": {"p99 of normals": float(np.percentile(scores[~labels], 99))}})
    return out


def mining_run(root: Path, frames: list[Path], *, name: str = "mined", seed: int = 0) -> Path:
    """ranking.csv (image, score, models)."""
    rng = np.random.default_rng(seed)
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ranking.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image", "score", "models"])
        for p in frames:
            wr.writerow([str(p), f"{rng.random():.4f}", "A,B"])
    return out

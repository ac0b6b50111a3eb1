"""Report section for a detection run: dataset, COCO stats, sweeps, errors with example crops.

With ground truth and predictions every number is computed here by the evaluation package
(`evaluate_coco`, `detection_report`, and `classify_errors` for per-box examples). A run that only
left an evaluation JSON (``coco`` + ``det`` keys, e.g. the demo's stand-in) is shown from that JSON,
without example crops. The merge × gate table comes from ``sitesight sweep``'s CSV/JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.dataset import Dataset
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.report import plots
from sitesight.report.crops import FrameCache, draw_crop
from sitesight.report.error_examples import EXAMPLE_TYPES, classify_errors
from sitesight.report.runs import ReportRun

__all__ = ["DetectionData", "load_detection", "detection_section", "read_sweep_table"]

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
GT_COLOUR = (46, 204, 113)
PRED_COLOUR = (231, 76, 60)


@dataclass(frozen=True)
class DetectionData:
    """A detection run's numbers, and its boxes when it has them.

    Attributes:
        coco: `CocoResult.to_dict()`.
        det: `detection_report` dict (operating point, sweep rows, best thresholds, errors, confusion).
        dataset / preds: the ground truth and the per-sample predictions (None for an evaluation JSON).
        iou, conf: matching IoU and operating confidence.
    """

    coco: Mapping[str, Any]
    det: Mapping[str, Any]
    dataset: Dataset | None
    preds: Sequence[Detections] | None
    iou: float
    conf: float

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.dataset is not None:
            return self.dataset.class_names
        return tuple(self.coco.get("per_class", {}).keys())


def load_detection(run: ReportRun) -> DetectionData:
    """Evaluate the run (or read its evaluation JSON)."""
    iou = float(run.config.get("iou", 0.5))
    conf = float(run.config.get("conf", 0.5))
    pred_path = run.artefact("predictions")
    gt_path = run.artefact("gt")
    if pred_path is None or gt_path is None:
        ev = run.artefact("evaluation")
        if ev is None:
            raise InputError("a detection run needs predictions and gt, or an evaluation JSON", run.path)
        data = json.loads(ev.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("coco"), dict) or not isinstance(data.get("det"), dict):
            raise InputError("expected an object with 'coco' and 'det'", ev)
        dataset = None
        if gt_path is not None:
            from sitesight.formats import read_dataset

            dataset = read_dataset(gt_path)
        det = data["det"]
        return DetectionData(data["coco"], det, dataset, None, float(det.get("iou", iou)), float(det.get("conf", conf)))
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.inputs import detection_report
    from sitesight.sliced.evaluate import read_ground_truth, scored

    truth = read_ground_truth(gt_path)
    spec = report_spec(run.config, conf)
    s = scored(truth, pred_path, spec=spec, include_unscored_gt=bool(run.config.get("include_unscored_gt", False)))
    # the report shows the evaluated frames only (the coverage says which), under the spec it states
    dataset = truth.dataset.with_samples([truth.dataset.samples[i] for i in _evaluated(truth.dataset, s.paths)])
    if spec.class_agnostic:
        dataset = dataset.replace(class_names=s.class_names, samples=tuple(
            smp.replace(gt=g) for smp, g in zip(dataset.samples, s.gts, strict=True)))
    coco = evaluate_coco(s.gts, s.preds, class_names=s.class_names).to_dict()
    det = detection_report(s.gts, s.preds, class_names=s.class_names, iou=iou, conf=conf, thresholds=THRESHOLDS)
    det.update(s.record())
    return DetectionData(coco, det, dataset, list(s.preds), iou, conf)


def _evaluated(dataset: Dataset, paths: Sequence[str]) -> list[int]:
    position = {str(smp.path): i for i, smp in enumerate(dataset.samples)}
    return [position[p] for p in paths]


def report_spec(config: Mapping[str, Any], conf: float):  # noqa: ANN201 - PostprocessSpec
    """The post-processing a detection run's report uses: ``config["spec"]`` (a spec dict, a sweep
    row, ``RUN/sweep.csv:best`` or JSON text); else the legacy ``config["merge"]`` dict; the
    report's ``conf`` fills in a missing confidence."""
    from sitesight.sliced.spec import PostprocessSpec, parse_spec

    value = config.get("spec")
    if isinstance(value, str) and value.strip():
        return parse_spec(value)
    if isinstance(value, Mapping):
        return PostprocessSpec.from_dict({"conf": conf, **value})
    merge = config.get("merge") if isinstance(config.get("merge"), Mapping) else {}
    return PostprocessSpec.from_dict({"conf": conf, **merge})


def _dataset_summary(dataset: Dataset) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    for s in dataset.samples:
        key = f"{s.image_wh[0]}x{s.image_wh[1]}"
        sizes[key] = sizes.get(key, 0) + 1
    per_class = []
    heights = [np.concatenate([s.gt.xyxy[s.gt.class_id == k, 3] - s.gt.xyxy[s.gt.class_id == k, 1] for s in dataset.samples] or [np.zeros(0)])
               for k in range(len(dataset.class_names))]
    for k, (name, count) in enumerate(dataset.class_counts().items()):
        h = heights[k]
        per_class.append({"class": name, "boxes": count, "median_h": float(np.median(h)) if h.size else None,
                          "p10_h": float(np.percentile(h, 10)) if h.size else None})
    boxes = [len(s.gt) for s in dataset.samples]
    cameras = {s.camera_id for s in dataset.samples if s.camera_id is not None}
    return {"frames": len(dataset), "sizes": sizes, "boxes": int(sum(boxes)), "per_frame": float(np.mean(boxes)) if boxes else 0.0,
            "cameras": len(cameras) or None, "per_class": per_class}


def read_sweep_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``sitesight sweep`` table (CSV with a ``best`` column, or its JSON), numbers parsed."""
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [dict(r) for r in data.get("rows", [])] if isinstance(data, dict) else []
        for i, r in enumerate(rows):
            r["best"] = int(i == data.get("best", -1))
        return rows
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            row: dict[str, Any] = {}
            for k, v in r.items():
                if k in ("method", "metric", "gate", "class_map"):
                    row[k] = v or ""
                    continue
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    raise InputError(f"column {k!r}: not a number: {v!r}", path, f"line {line}") from None
            rows.append(row)
    return rows


def _sweep_section(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    rows = read_sweep_table(path)
    if not rows:
        return None
    ranked = sorted(rows, key=lambda r: -float(r.get("f1", 0)))
    gate_effect = []
    for gate in dict.fromkeys(str(r.get("gate", "")) for r in rows):
        best = max((r for r in rows if str(r.get("gate", "")) == gate), key=lambda r: float(r.get("f1", 0)))
        gate_effect.append({**best, "gate": gate or "no gate"})
    return {"rows": ranked[:30], "total": len(rows), "gate_effect": gate_effect, "file": str(path)}


def _curves(det: Mapping[str, Any], names: Sequence[str]) -> tuple[str | None, str | None]:
    sweep = det.get("sweep") or []
    if not sweep:
        return None, None
    conf = np.array([r["conf"] for r in sweep])
    pr: dict[str, tuple[np.ndarray, np.ndarray]] = {"all": (np.array([r["recall"] for r in sweep]), np.array([r["precision"] for r in sweep]))}
    f1: dict[str, tuple[np.ndarray, np.ndarray]] = {"all": (conf, np.array([r["f1"] for r in sweep]))}
    for n in names:
        if all(n in r.get("per_class", {}) for r in sweep):
            pc = [r["per_class"][n] for r in sweep]
            pr[n] = (np.array([c["recall"] for c in pc]), np.array([c["precision"] for c in pc]))
            f1[n] = (conf, np.array([c["f1"] for c in pc]))
    return plots.pr_curves(pr, title="precision–recall over confidence thresholds"), plots.f1_vs_conf(f1)


def _examples(data: DetectionData, per_type: int, cache: FrameCache) -> list[dict[str, Any]]:
    assert data.dataset is not None and data.preds is not None
    ds = data.dataset
    gts = [s.gt for s in ds.samples]
    errors = classify_errors(gts, data.preds, iou=data.iou, conf=data.conf)
    names = ds.class_names
    out = []
    for kind in EXAMPLE_TYPES:
        chosen = sorted((e for e in errors if e.type == kind), key=lambda e: -e.score)[:per_type]
        cards = []
        for e in chosen:
            frame = cache.get(ds.image_path(ds.samples[e.image]))
            if frame is None:
                continue
            gt_box = None if e.gt is None else gts[e.image].xyxy[e.gt]
            if e.pred is not None:
                p = data.preds[e.image]
                others = [] if gt_box is None else [(gt_box, GT_COLOUR)]
                label = f"{names[int(p.class_id[e.pred])]} {float(p.score[e.pred]):.2f}"
                src = draw_crop(frame, p.xyxy[e.pred], label=label, colour=PRED_COLOUR, others=others)
            else:
                assert gt_box is not None
                src = draw_crop(frame, gt_box, label=names[int(gts[e.image].class_id[e.gt])], colour=GT_COLOUR)
            cards.append({"src": src, "where": Path(str(ds.samples[e.image].path)).name, "score": e.score if e.pred is not None else None})
        out.append({"type": kind, "count": sum(1 for e in errors if e.type == kind), "cards": cards})
    return out


def _defined(value: Any) -> Any:
    """COCO marks undefined values (no ground truth in that range) as -1: shown as a dash."""
    return None if isinstance(value, (int, float)) and value < 0 else value


def _stride(det: Mapping[str, Any]) -> int:
    """Every n-th sweep row in the table so that it stays at about 20 rows (the plots use all)."""
    return max(1, int(np.ceil(len(det.get("sweep", [])) / 20)))


def detection_section(run: ReportRun, *, examples_per_type: int = 6, cache: FrameCache | None = None,
                      data: DetectionData | None = None) -> dict[str, Any]:
    """Everything the detection template shows for one run, as plain values."""
    cache = cache or FrameCache()
    data = data or load_detection(run)
    names = data.class_names
    det, coco = data.det, data.coco
    pr_png, f1_png = _curves(det, names)
    errors = det.get("errors", {})
    confusion = det.get("confusion")
    stat_names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    return {
        "kind": "detection",
        "name": run.name,
        "path": str(run.path),
        "summary": None if data.dataset is None else _dataset_summary(data.dataset),
        "images": det.get("images"),
        "coco_stats": [(k, _defined(coco.get(k))) for k in stat_names if k in coco],
        "per_class_ap": [{"class": n, **{k: _defined(x) for k, x in dict(v).items()}} for n, v in coco.get("per_class", {}).items()],
        "ap_columns": list(dict.fromkeys(k for v in coco.get("per_class", {}).values() for k in v)),
        "op": {k: det.get(k) for k in ("conf", "iou", "tp", "fp", "fn", "precision", "recall", "f1")},
        "op_per_class": [{"class": n, **c} for n, c in (det.get("per_class") or {}).items()],
        "sweep": [{k: r[k] for k in ("conf", "tp", "fp", "fn", "precision", "recall", "f1")} for r in det.get("sweep", [])][::_stride(det)],
        "pr_png": pr_png,
        "f1_png": f1_png,
        "best_thresholds": [{"class": n, **(v.get("best_f1") or {})} for n, v in (det.get("best_thresholds") or {}).items()],
        "merge_sweep": _sweep_section(run.artefact("sweep")),
        "errors": errors,
        "errors_png": plots.bar_chart(list(errors.get("counts", {})), {"count": list(errors.get("counts", {}).values())},
                                      title="false positives by type, and misses") if errors.get("counts") else None,
        "confusion_png": None if not confusion else plots.confusion_heatmap(np.array(confusion["matrix"]), confusion["labels"],
                                                                           title="class confusion (with background)"),
        "examples": None if data.preds is None or data.dataset is None else _examples(data, examples_per_type, cache),
        "config_json": json.dumps(run.config, indent=1, default=str) if run.config else "",
    }

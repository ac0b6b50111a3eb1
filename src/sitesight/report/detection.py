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
from sitesight.report.crops import FrameCache
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
        coco: `CocoResult.to_dict()` (from every prediction the spec keeps at ``AP_CONF``).
        det: `detection_report` dict (operating point, sweep rows, best thresholds, errors, confusion).
        dataset / preds: the ground truth and the per-sample predictions (None for an evaluation JSON).
        iou, conf: matching IoU and operating confidence.
        op_preds: the predictions at the operating point (the run post-processed with the chosen spec).
        op_source: where the operating point came from (``--spec``, the sweep's best row, best F1 …).
        spec: the post-processing spec (``to_dict()``), None for a results file or a stored evaluation.
        cameras: camera per evaluated frame (None when unknown).
        coverage: frame counts from `sitesight.identity.Coverage.to_dict` (None when not known).
        model: what produced the boxes (the run manifest's model), when known.
    """

    coco: Mapping[str, Any]
    det: Mapping[str, Any]
    dataset: Dataset | None
    preds: Sequence[Detections] | None
    iou: float
    conf: float
    op_preds: Sequence[Detections] | None = None
    op_source: str = ""
    spec: Mapping[str, Any] | None = None
    cameras: Sequence[str | None] = ()
    coverage: Mapping[str, int] | None = None
    model: str | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.dataset is not None:
            return self.dataset.class_names
        return tuple(self.coco.get("per_class", {}).keys())


AP_CONF = 0.05  # runs are post-processed at this confidence for AP and the curves; the operating point is a threshold above it


def _choose_spec(run: ReportRun, spec: str | None, conf: float | None, options: Mapping[str, Any] | None = None) -> tuple[Any, str, bool]:
    """``(spec, source, best_f1)``: the operating point asked for, else the run's own, else best F1;
    ``options`` (the other spec options given: method, metric, threshold, gate, class_map,
    class_agnostic, border, as `sitesight.sliced.spec.spec_from_options` takes them) go on top."""
    from dataclasses import replace

    from sitesight.sliced.spec import PostprocessSpec, parse_spec, spec_from_options

    best_f1 = False
    if spec:
        chosen, source = parse_spec(spec), f"--spec {spec}"
    elif run.config.get("spec"):
        chosen, source = report_spec(run.config, float(run.config.get("conf", 0.5))), "the run's recorded spec"
    elif run.artefact("sweep") is not None:
        chosen, source = parse_spec(f"{run.artefact('sweep')}:best"), f"best row of {run.artefact('sweep').name}"  # type: ignore[union-attr]
    elif "conf" in run.config or "merge" in run.config:
        chosen, source = report_spec(run.config, float(run.config.get("conf", 0.5))), "the run's run.json"
    else:
        chosen, source, best_f1 = PostprocessSpec(conf=AP_CONF), "best-F1 confidence on these labels (optimistic)", True
    if conf is not None:
        chosen, source, best_f1 = replace(chosen, conf=float(conf)), f"--conf {conf:g}", False
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if given:
        chosen = spec_from_options(default=chosen, **given)
        source += " with " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in given.items())
    return chosen, source, best_f1


def load_detection(run: ReportRun, *, spec: str | None = None, conf: float | None = None,
                   options: Mapping[str, Any] | None = None) -> DetectionData:
    """Evaluate the run (or read its evaluation JSON) at its operating point.

    Args:
        run: a detection run.
        spec: ``--spec`` text (sweep row, ``RUN/sweep.csv:best``, JSON) for the post-processing and confidence.
        conf: ``--conf``: the operating confidence (overrides the spec's).
        options: the other spec options given (``--class-map``, ``--gate`` …), applied on top.

    The operating point is ``spec``/``conf`` when given, else the run's recorded spec or the best row
    of its sweep table, else the best-F1 confidence on these labels (said so: it is optimistic). AP and
    the curves use every prediction the spec keeps down to `AP_CONF`.
    """
    from dataclasses import replace

    iou = float(run.config.get("iou", 0.5))
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
        return DetectionData(data["coco"], det, dataset, None, float(det.get("iou", iou)), float(det.get("conf", 0.5)),
                             op_source="as stored in the evaluation file (no boxes: no intervals)",
                             model=str(data.get("predictor") or run.config.get("predictor") or "") or None)
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.detection import match_detections
    from sitesight.evaluation.inputs import detection_report
    from sitesight.sliced.evaluate import is_run, read_ground_truth, scored

    truth = read_ground_truth(gt_path)
    chosen, source, best_f1 = _choose_spec(run, spec, conf, options)
    unscored = bool(run.config.get("include_unscored_gt", False))
    a_run = is_run(pred_path)
    s_all = scored(truth, pred_path, spec=replace(chosen, conf=min(chosen.conf, AP_CONF)) if a_run else chosen,
                   include_unscored_gt=unscored)
    op_conf = chosen.conf
    if best_f1:
        best = match_detections(s_all.gts, s_all.preds, class_names=s_all.class_names).best_thresholds()["all"]["best_f1"]
        op_conf = float(best["threshold"]) if best else 0.5
        chosen = replace(chosen, conf=op_conf)
    s_op = scored(truth, pred_path, spec=chosen, include_unscored_gt=unscored) if a_run and op_conf > AP_CONF else s_all
    # the report shows the evaluated frames only (the coverage says which), under the spec it states
    dataset = truth.dataset.with_samples([truth.dataset.samples[i] for i in _evaluated(truth.dataset, s_all.paths)])
    if chosen.class_agnostic:
        dataset = dataset.replace(class_names=s_all.class_names, samples=tuple(
            smp.replace(gt=g) for smp, g in zip(dataset.samples, s_all.gts, strict=True)))
    coco = evaluate_coco(s_all.gts, s_all.preds, class_names=s_all.class_names).to_dict()
    det = detection_report(s_all.gts, s_all.preds, class_names=s_all.class_names, iou=iou, conf=op_conf, thresholds=THRESHOLDS)
    if s_op is not s_all:  # the operating point's counts from the run post-processed at that confidence
        det.update(match_detections(s_op.gts, s_op.preds, iou=iou, class_names=s_op.class_names).at(op_conf).to_dict())
    det.update(s_op.record())
    model = None
    if a_run:
        manifest = json.loads((Path(pred_path) / "manifest.json").read_text(encoding="utf-8"))
        model = str(manifest.get("model") or "") or None
    return DetectionData(coco, det, dataset, list(s_all.preds), iou, op_conf, op_preds=list(s_op.preds), op_source=source,
                         spec=chosen.to_dict() if a_run else {"conf": op_conf}, cameras=[smp.camera_id for smp in dataset.samples],
                         coverage=s_op.coverage.to_dict(), model=model)


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
    common = sorted(sizes.items(), key=lambda kv: -kv[1])
    from sitesight.report.headline import cameras_text

    return {"frames": len(dataset), "sizes": dict(common[:3]), "more_sizes": len(common) - 3 if len(common) > 3 else 0,
            "boxes": int(sum(boxes)), "per_frame": float(np.mean(boxes)) if boxes else 0.0,
            "cameras": len(cameras) or None, "cameras_text": cameras_text([s.camera_id for s in dataset.samples]), "per_class": per_class}


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


def _error_counts(data: DetectionData) -> list[dict[str, Any]]:
    """Errors per type at the operating point (the gallery shows them)."""
    assert data.dataset is not None and data.op_preds is not None
    errors = classify_errors([smp.gt for smp in data.dataset.samples], data.op_preds, iou=data.iou, conf=data.conf)
    return [{"type": kind, "count": sum(1 for e in errors if e.type == kind)} for kind in EXAMPLE_TYPES]


def _matched_curves(data: DetectionData) -> tuple[str | None, str | None]:
    """PR curve per class, and precision / recall / F1 against the confidence threshold (all classes)."""
    from sitesight.evaluation.detection import match_detections

    if data.dataset is None or data.preds is None:
        return None, None
    m = match_detections([smp.gt for smp in data.dataset.samples], data.preds, iou=data.iou, class_names=data.class_names)
    pr = {}
    for k, n in enumerate(data.class_names):
        c = m.pr_curve(k)
        if c["threshold"].size and m.n_gt[k] > 0:
            pr[f"{n} (AP50 {_ap50(data, n)})"] = (c["recall"], c["precision"])
    c = m.pr_curve(None)
    prf = None
    if c["threshold"].size:
        prf = plots.prf_vs_conf(c["threshold"], c["precision"], c["recall"], c["f1"], chosen=data.conf)
    return (plots.pr_curves(pr, title="precision–recall per class (IoU 0.5)") if pr else None), prf


def _ap50(data: DetectionData, name: str) -> str:
    value = data.coco.get("per_class", {}).get(name, {}).get("AP50")
    return "–" if value is None or value < 0 else f"{value:.2f}"


def _gallery(data: DetectionData, cache: FrameCache, per_type: int) -> dict[str, Any] | None:
    from sitesight.report.gallery import TYPE_LABELS, gallery_cards

    if data.dataset is None or data.op_preds is None:
        return None
    ds = data.dataset
    cards = gallery_cards([smp.gt for smp in ds.samples], data.op_preds, paths=[ds.image_path(smp) for smp in ds.samples],
                          cameras=list(data.cameras) or [None] * len(ds), class_names=ds.class_names, conf=data.conf,
                          iou=data.iou, per_type=per_type, cache=cache)
    options = {
        "type": [(k, v) for k, v in TYPE_LABELS.items() if any(c["type"] == k for c in cards)],
        "class": [(n, n) for n in ds.class_names if any(c["class"] == n for c in cards)],
        "camera": [(c, c) for c in sorted({c["camera"] for c in cards})],
        "size": [(z, z) for z in ("small", "medium", "large") if any(c["size"] == z for c in cards)],
    }
    return {"cards": cards, "options": options, "per_type": per_type}


def _defined(value: Any) -> Any:
    """COCO marks undefined values (no ground truth in that range) as -1: shown as a dash."""
    return None if isinstance(value, (int, float)) and value < 0 else value


def _stride(det: Mapping[str, Any]) -> int:
    """Every n-th sweep row in the table so that it stays at about 20 rows (the plots use all)."""
    return max(1, int(np.ceil(len(det.get("sweep", [])) / 20)))


def detection_section(run: ReportRun, *, examples_per_type: int = 60, cache: FrameCache | None = None,
                      data: DetectionData | None = None, spec: str | None = None, conf: float | None = None,
                      options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the detection template shows for one run, as plain values (headline first).

    Args:
        examples_per_type: gallery cards per error type at most.
        spec, conf, options: the operating point (see `load_detection`).
    """
    from sitesight.report.headline import detection_headline

    cache = cache or FrameCache()
    data = data or load_detection(run, spec=spec, conf=conf, options=options)
    names = data.class_names
    det, coco = data.det, data.coco
    pr_png, f1_png = _curves(det, names)
    pr_class_png, prf_png = _matched_curves(data)
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
        "examples": None if data.op_preds is None or data.dataset is None else _error_counts(data),
        "gallery": _gallery(data, cache, examples_per_type),
        "headline": detection_headline(data, run.name),
        "pr_class_png": pr_class_png,
        "prf_png": prf_png,
        "config_json": json.dumps(run.config, indent=1, default=str) if run.config else "",
    }

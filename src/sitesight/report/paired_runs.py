"""What ``sitesight compare A B`` reads: two detection runs or COCO results files (with ``--gt``), two
classification CSVs / run folders, or two anomaly CSVs / run folders — aligned on the same items.

Detection: each side goes through `sitesight.sliced.evaluate.scored` (the one post-processing
path and the one frame rule), then only the frames both sides cover are compared. Each model is
held at its own operating point: the ``--spec``/``--spec-a``/``--spec-b`` given, else the best row of
the run's own ``sweep.csv``, else the default spec with the best-F1 confidence on these labels
(stated as optimistic); ``--conf`` fixes the confidence for both.

Classification rows are lined up on ``(image, box_index)``, anomaly rows on the image; the true
labels must agree on both sides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.compare.paired import compare_anomaly, compare_classifications, compare_detections
from sitesight.compare.result import Comparison
from sitesight.errors import InputError
from sitesight.report.anomaly import load_anomaly
from sitesight.report.classification import load_classification
from sitesight.report.detection import load_detection
from sitesight.report.runs import ReportRun, load_report_run

__all__ = ["compare_paths", "compare_detection_data", "compare_classification_runs", "compare_anomaly_runs", "input_kind",
           "OperatingChoice"]


@dataclass(frozen=True)
class OperatingChoice:
    """One detector's operating point: ``conf`` and where it came from (and the spec, for a run)."""

    conf: float
    source: str
    spec: dict[str, Any] | None


def input_kind(path: Path, *, allow_outside: bool = False) -> str:
    """``detection``, ``classification`` or ``anomaly`` from what the path holds."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "detection"
        kind = load_report_run(path, allow_outside=allow_outside).kind
        if kind not in ("classification", "anomaly"):
            raise InputError(f"cannot compare a {kind} run folder; expected a detection run, or classification/anomaly predictions", path)
        return kind
    if not path.is_file():
        raise InputError("not found", path)
    if path.suffix.lower() == ".json":
        return "detection"
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = [h.strip() for h in fh.readline().split(",")]
        anomaly_columns = ("image", "path", "label", "score", "heatmap", "defect", "flagged")  # what predict anomaly writes
        if "label" in header and "score" in header and all(h in anomaly_columns for h in header):
            return "anomaly"
        if "label" in header:
            return "classification"
        raise InputError(f"a CSV to compare needs a 'label' column (columns are {header})", path, "line 1")
    raise InputError("expected a run folder, a COCO results .json, or a predictions .csv", path)


def _detections(a: Path, b: Path, gt: Path, *, spec_a: str | None, spec_b: str | None, conf: float | None, **kw: Any) -> Comparison:
    sides = []
    for path, spec_text in ((a, spec_a), (b, spec_b)):
        artefacts = {"predictions": path.resolve(), "gt": gt.resolve()}
        if path.is_dir() and (path / "sweep.csv").is_file():
            artefacts["sweep"] = (path / "sweep.csv").resolve()
        sides.append(load_detection(ReportRun("detection", path.name, path, artefacts), spec=spec_text, conf=conf))
    cmp = compare_detection_data(sides[0], sides[1], **kw)
    return replace(cmp, settings={**cmp.settings, "gt": str(gt)})


def compare_detection_data(da: Any, db: Any, **kw: Any) -> Comparison:
    """Compare two `sitesight.report.detection.DetectionData` on the frames both evaluated (each at its own
    operating point: AP from every kept detection, F1 from the run post-processed at that point).
    ``kw`` goes to `compare_detections` (``names``, ``n_resamples``, ``seed``, ``primary``)."""
    name_a, name_b = kw.get("names", ("A", "B"))
    assert da.dataset is not None and db.dataset is not None and da.preds is not None and db.preds is not None
    if da.class_names != db.class_names:
        raise InputError(f"the two sides evaluate different classes: {list(da.class_names)} and {list(db.class_names)}")
    paths_a = [str(smp.path) for smp in da.dataset.samples]
    index_b = {str(smp.path): i for i, smp in enumerate(db.dataset.samples)}
    pairs = [(i, index_b[p]) for i, p in enumerate(paths_a) if p in index_b]
    if not pairs:
        raise InputError(f"{name_a} and {name_b} share no frame of the ground truth")
    notes = []
    if len(pairs) < max(len(da.dataset), len(db.dataset)):
        notes.append(f"compared on the {len(pairs)} frames both cover ({name_a}: {len(da.dataset)}, {name_b}: {len(db.dataset)})")
    ia, ib = [i for i, _ in pairs], [j for _, j in pairs]
    gts = [da.dataset.samples[i].gt for i in ia]
    op_a, op_b = da.op_preds or da.preds, db.op_preds or db.preds
    cmp = compare_detections(gts, [da.preds[i] for i in ia], [db.preds[j] for j in ib], class_names=da.class_names,
                             conf_a=da.conf, conf_b=db.conf, cameras=[da.dataset.samples[i].camera_id for i in ia],
                             op_preds=([op_a[i] for i in ia], [op_b[j] for j in ib]), **kw)
    ops = {name: asdict(OperatingChoice(d.conf, d.op_source, dict(d.spec) if d.spec else None)) for name, d in ((cmp.a, da), (cmp.b, db))}
    coverage = {"frames_compared": len(pairs), "frames_with_objects": sum(1 for g in gts if len(g)),
                "gt_frames": (da.coverage or {}).get("gt", len(da.dataset))}
    settings = {**cmp.settings, "operating_points": ops, "gt_coverage": coverage,
                "ap_predictions": "every detection the spec keeps down to confidence 0.05; F1/precision/recall at the operating point"}
    return replace(cmp, settings=settings, notes=tuple(notes) + cmp.notes)


def _report_run(path: Any, kind: str) -> Any:
    if isinstance(path, ReportRun):
        return path
    if path.is_dir():
        return load_report_run(path)
    role = "predictions" if kind == "classification" else "scores"
    return ReportRun(kind, path.stem, path.parent, {role: path.resolve()})


def compare_classification_runs(a: Any, b: Any, **kw: Any) -> Comparison:
    """Two classification CSVs / run folders / `sitesight.report.runs.ReportRun` values, lined up on
    ``(image, box_index)``; ``kw`` goes to `compare_classifications`."""
    da, db = load_classification(_report_run(a, "classification")), load_classification(_report_run(b, "classification"))
    if da.class_names != db.class_names:
        raise InputError(f"the two sides have different classes: {list(da.class_names)} and {list(db.class_names)}")
    index_b = {k: i for i, k in enumerate(db.keys())}
    pairs = [(i, index_b[k]) for i, k in enumerate(da.keys()) if k in index_b]
    if not pairs:
        raise InputError(f"{a} and {b} share no labelled row (lined up on image and box_index)")
    ia, ib = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    if not np.array_equal(da.y_true[ia], db.y_true[ib]):
        bad = int(np.sum(da.y_true[ia] != db.y_true[ib]))
        raise InputError(f"{bad} lined-up rows carry different true labels in {a} and {b}")
    images = [str(x) for x in da.images[ia]]
    has_images = any(images)
    cmp = compare_classifications(da.y_true[ia], da.y_pred[ia], db.y_pred[ib], class_names=da.class_names,
                                  images=images if has_images else None, **kw)
    notes = [] if len(pairs) == len(da.y_true) == len(db.y_true) else [f"compared on the {len(pairs)} rows both hold"]
    return replace(cmp, notes=tuple(notes) + cmp.notes)


def compare_anomaly_runs(a: Any, b: Any, *, false_alarm_rate: float = 0.05, **kw: Any) -> Comparison:
    """Two anomaly score CSVs / run folders / `ReportRun` values, lined up on the image; ``kw`` goes to
    `compare_anomaly`."""
    rows_a, la, sa = load_anomaly(_report_run(a, "anomaly"))
    rows_b, lb, sb = load_anomaly(_report_run(b, "anomaly"))
    index_b = {r["image"]: i for i, r in enumerate(rows_b)}
    pairs = [(i, index_b[r["image"]]) for i, r in enumerate(rows_a) if r["image"] in index_b and la[i] >= 0]
    if not pairs:
        raise InputError(f"{a} and {b} share no labelled image")
    ia, ib = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    if not np.array_equal(la[ia], lb[ib]):
        raise InputError(f"{int(np.sum(la[ia] != lb[ib]))} images carry different labels in {a} and {b}")
    return compare_anomaly(la[ia] == 1, sa[ia], sb[ib], false_alarm_rate=false_alarm_rate, **kw)


def compare_paths(
    a: Path | str,
    b: Path | str,
    *,
    gt: Path | str | None = None,
    spec: str | None = None,
    spec_a: str | None = None,
    spec_b: str | None = None,
    conf: float | None = None,
    metric: str | None = None,
    false_alarm_rate: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
    names: tuple[str, str] | None = None,
    allow_outside: bool = False,
) -> Comparison:
    """`sitesight compare A B`: recognise the inputs, line them up and compare (see the module notes).

    ``allow_outside`` lets a run folder's ``run.json`` name artefacts outside that folder (refused
    by default; see `sitesight.report.runs`).

    Raises:
        InputError: different kinds, a detection comparison without ``gt``, nothing in common.
    """
    a, b = Path(a), Path(b)
    kind_a, kind_b = input_kind(a, allow_outside=allow_outside), input_kind(b, allow_outside=allow_outside)
    if kind_a != kind_b:
        raise InputError(f"cannot compare {kind_a} predictions ({a}) with {kind_b} predictions ({b})")
    labels = names or (a.stem if a.is_file() else a.name, b.stem if b.is_file() else b.name)
    if labels[0] == labels[1] and a.is_file() and b.is_file() and a.parent.name != b.parent.name:
        labels = (f"{a.parent.name}/{a.stem}", f"{b.parent.name}/{b.stem}")  # runs/v9/results.json vs runs/v10/results.json
    if labels[0] == labels[1]:
        labels = (f"A ({labels[0]})", f"B ({labels[1]})")
    kw: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "names": labels}
    if kind_a == "detection":
        if gt is None:
            raise InputError("comparing detections needs the ground truth: --gt GT")
        return _detections(a, b, Path(gt), spec_a=spec_a or spec, spec_b=spec_b or spec, conf=conf, primary=metric or "AP", **kw)
    run_a, run_b = (load_report_run(p, allow_outside=allow_outside) if p.is_dir() else p for p in (a, b))
    if kind_a == "classification":
        return compare_classification_runs(run_a, run_b, **kw)
    return compare_anomaly_runs(run_a, run_b, false_alarm_rate=false_alarm_rate, **kw)

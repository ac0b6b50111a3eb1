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

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight.compare.paired import compare_anomaly, compare_classifications, compare_detections
from sitesight.compare.result import Comparison
from sitesight.errors import InputError

__all__ = ["compare_paths", "input_kind", "OperatingChoice"]


@dataclass(frozen=True)
class OperatingChoice:
    """One detector's operating point: ``conf`` and where it came from (and the spec, for a run)."""

    conf: float
    source: str
    spec: dict[str, Any] | None


def input_kind(path: Path) -> str:
    """``detection``, ``classification`` or ``anomaly`` from what the path holds."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "detection"
        from sitesight.report.runs import load_report_run

        kind = load_report_run(path).kind
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
        if "label" in header and "score" in header and not any(h not in ("image", "path", "label", "score", "heatmap") for h in header):
            return "anomaly"
        if "label" in header:
            return "classification"
        raise InputError(f"a CSV to compare needs a 'label' column (columns are {header})", path, "line 1")
    raise InputError("expected a run folder, a COCO results .json, or a predictions .csv", path)


def _spec_for(path: Path, spec_text: str | None, conf: float | None) -> tuple[Any, str]:
    from sitesight.sliced.spec import PostprocessSpec, parse_spec

    if spec_text:
        spec, source = parse_spec(spec_text), f"--spec {spec_text}"
    elif path.is_dir() and (path / "sweep.csv").is_file():
        spec, source = parse_spec(f"{path / 'sweep.csv'}:best"), "best row of the run's sweep.csv"
    else:
        spec, source = PostprocessSpec(), "default spec"
    if conf is not None:
        from dataclasses import replace

        spec, source = replace(spec, conf=float(conf)), f"{source}, --conf {conf:g}"
    return spec, source


def _detections(a: Path, b: Path, gt: Path, *, spec_a: str | None, spec_b: str | None, conf: float | None, **kw: Any) -> Comparison:
    from sitesight.evaluation.detection import match_detections
    from sitesight.sliced.evaluate import read_ground_truth, scored

    truth = read_ground_truth(gt)
    sides, choices = [], []
    for path, spec_text in ((a, spec_a), (b, spec_b)):
        spec, source = _spec_for(path, spec_text, conf)
        s = scored(truth, path, spec=spec)
        sides.append(s)
        op: float = spec.conf
        if conf is None and not spec_text and source == "default spec":
            best = match_detections(s.gts, s.preds, class_names=s.class_names).best_thresholds()["all"]["best_f1"]
            if best is not None:
                op = float(best["threshold"])
                source = f"{source}; best-F1 confidence on these labels (optimistic)"
        choices.append(OperatingChoice(op, source, spec.to_dict() if path.is_dir() else None))
    sa, sb = sides
    if sa.class_names != sb.class_names:
        raise InputError(f"the two sides evaluate different classes: {list(sa.class_names)} and {list(sb.class_names)}")
    index_b = {p: i for i, p in enumerate(sb.paths)}
    pairs = [(i, index_b[p]) for i, p in enumerate(sa.paths) if p in index_b]
    if not pairs:
        raise InputError(f"{a} and {b} share no frame of the ground truth")
    notes = []
    if len(pairs) < max(len(sa.paths), len(sb.paths)):
        notes.append(f"compared on the {len(pairs)} frames both cover ({a.name}: {len(sa.paths)}, {b.name}: {len(sb.paths)})")
    camera_of = {str(s.path): s.camera_id for s in truth.dataset.samples}
    gts = [sa.gts[i] for i, _ in pairs]
    cmp = compare_detections(gts, [sa.preds[i] for i, _ in pairs], [sb.preds[j] for _, j in pairs], class_names=sa.class_names,
                             conf_a=choices[0].conf, conf_b=choices[1].conf, cameras=[camera_of.get(sa.paths[i]) for i, _ in pairs],
                             **kw)
    covered = sum(1 for g in gts if len(g))
    settings = {**cmp.settings, "operating_points": {cmp.a: asdict(choices[0]), cmp.b: asdict(choices[1])},
                "gt": str(gt), "gt_coverage": {"frames_compared": len(pairs), "frames_with_objects": covered,
                                                 "gt_frames": len(truth.dataset)}}
    from dataclasses import replace

    return replace(cmp, settings=settings, notes=tuple(notes) + cmp.notes)


def _report_run(path: Path, kind: str) -> Any:
    from sitesight.report.runs import ReportRun, load_report_run

    if path.is_dir():
        return load_report_run(path)
    role = "predictions" if kind == "classification" else "scores"
    return ReportRun(kind, path.stem, path.parent, {role: path.resolve()})


def _classifications(a: Path, b: Path, **kw: Any) -> Comparison:
    from sitesight.report.classification import load_classification

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
    from dataclasses import replace

    return replace(cmp, notes=tuple(notes) + cmp.notes)


def _anomaly(a: Path, b: Path, *, false_alarm_rate: float, **kw: Any) -> Comparison:
    from sitesight.report.anomaly import load_anomaly

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
) -> Comparison:
    """`sitesight compare A B`: recognise the inputs, line them up and compare (see the module notes).

    Raises:
        InputError: different kinds, a detection comparison without ``gt``, nothing in common.
    """
    a, b = Path(a), Path(b)
    kind_a, kind_b = input_kind(a), input_kind(b)
    if kind_a != kind_b:
        raise InputError(f"cannot compare {kind_a} predictions ({a}) with {kind_b} predictions ({b})")
    labels = names or (a.stem if a.is_file() else a.name, b.stem if b.is_file() else b.name)
    if labels[0] == labels[1]:
        labels = (f"A ({labels[0]})", f"B ({labels[1]})")
    kw: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "names": labels}
    if kind_a == "detection":
        if gt is None:
            raise InputError("comparing detections needs the ground truth: --gt GT")
        return _detections(a, b, Path(gt), spec_a=spec_a or spec, spec_b=spec_b or spec, conf=conf, primary=metric or "AP", **kw)
    if kind_a == "classification":
        return _classifications(a, b, **kw)
    return _anomaly(a, b, false_alarm_rate=false_alarm_rate, **kw)

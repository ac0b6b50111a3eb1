"""`sitesight eval coco|det|cls|anomaly`: metrics from files, printed and optionally written as JSON.

`eval_app` is the `eval` command group; other modules may add commands to it (e.g. ``iou-aware``).
Each command parses, calls one library function, prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sitesight import atomic
from sitesight.cli import jsonout
from sitesight.cli import spec_options as so
from sitesight.progress import make_console

eval_app = typer.Typer(name="eval", help="Evaluate detections, classifiers and anomaly scores.", no_args_is_help=True)

console = make_console()
JSON_HELP = "Also write the full result as JSON to this file ('-': to standard output, instead of the tables)."


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if jsonout.to_stdout(path):  # --json -: the tables were silenced, the JSON alone goes to stdout
        console.quiet = False
        typer.echo(json.dumps(data, indent=2, allow_nan=False, default=_jsonable))
        return
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(data, indent=2, allow_nan=False, default=_jsonable))
        console.print(f"written {path}")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(v: float | None) -> str:
    return "—" if v is None or v < 0 else f"{v:.4f}"


def _coverage_line(record: dict[str, Any]) -> None:
    cov = record.get("coverage")
    if cov:
        console.print(f"frames: predictions {cov['run']}, ground truth {cov['gt']}, both {cov['both']}, ground-truth only "
                      f"{cov['gt_only']}, predictions only {cov['run_only']}; evaluated {record.get('evaluated_frames', cov['both'])}")
    if record.get("spec"):
        from sitesight.sliced.spec import PostprocessSpec

        console.print(f"post-processing: {PostprocessSpec.from_dict(record['spec'])}")
    for key, n in (record.get("dropped") or {}).items():
        console.print(f"[yellow]{key.replace('_', ' ')}: {n} results[/yellow]")


def _coco_grid(iou_thrs: str, max_dets: str) -> tuple[list[float], list[int]]:
    """``--iou-thrs`` and ``--max-dets`` as pycocotools' ``iouThrs`` and ``maxDets``."""
    from sitesight.errors import InputError
    from sitesight.ranges import parse_range

    try:
        thresholds = parse_range(iou_thrs)
    except ValueError as exc:
        raise InputError(f"--iou-thrs {iou_thrs!r}: {exc}") from None
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise InputError(f"--iou-thrs {iou_thrs!r}: expected IoU thresholds in (0, 1]")
    try:
        limits = sorted(int(v) for v in max_dets.split(","))
    except ValueError:
        raise InputError(f"--max-dets {max_dets!r}: expected a comma list of integers, e.g. 1,10,100") from None
    if not limits or limits[0] < 1:
        raise InputError(f"--max-dets {max_dets!r}: expected positive integers")
    return thresholds, limits


def _ray_engine(engine: str, pred: Path) -> bool:
    """True for ``--engine ray`` on a run folder; a usage error for an unknown engine or Ray on a results file."""
    if engine == "local":
        return False
    from sitesight.sliced.evaluate import is_run

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    if engine == "ray" and not is_run(pred):
        raise typer.BadParameter("--engine ray evaluates a run folder; a results file is read locally")
    return engine == "ray"


@eval_app.command("coco")
def coco(
    gt: Path = typer.Option(..., "--gt", help="Ground truth: COCO JSON (any format with a run folder)."),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON (list of image_id, category_id, bbox, score) or a sitesight run folder."),
    json_out: Path = typer.Option(None, "--json", help=JSON_HELP),
    relative_area: bool = typer.Option(False, "--relative-area", help="Area ranges as fractions of the frame (give --area-ranges)."),
    area_ranges: str = typer.Option(None, "--area-ranges", help="small,medium upper bounds, e.g. '1024,9216' (px²) or '0.0005,0.005' with --relative-area."),
    honour_max_dets: bool = typer.Option(False, "--honour-max-dets", help="Headline AP at the last maxDets instead of pycocotools' fixed 100."),
    max_dets: str = typer.Option("1,10,100", "--max-dets", help="pycocotools' maxDets: detections per image and class, comma list (the last one bounds matching)."),
    iou_thrs: str = typer.Option("0.5:0.95:0.05", "--iou-thrs", help="IoU thresholds as start:stop:step or a comma list (pycocotools' iouThrs)."),
    spec: str = so.SPEC,
    conf: float = so.CONF,
    method: str = so.METHOD,
    metric: str = so.METRIC,
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
    include_unscored_gt: bool = so.INCLUDE_UNSCORED,
    ignore_unknown: bool = so.IGNORE_UNKNOWN,
    engine: str = typer.Option("local", "--engine", help="local | ray: a run folder's labelled frames post-processed in Ray tasks (pip install 'sitesight[ray]')."),
    ray_address: str = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
) -> None:
    """COCO bbox AP/AR: the 12 pycocotools stats (identical values) and per-class AP.

    A run folder is post-processed (default conf 0.05, greedy_nmm/ios@0.5) and scored on the frames
    both sides cover (--include-unscored-gt for all ground-truth frames).
    """
    console.quiet = jsonout.to_stdout(json_out)  # --json -: only the JSON on stdout
    from sitesight.evaluation.coco import COCO_AREA_RANGES, STAT_NAMES
    from sitesight.evaluation.coco_files import evaluate_coco_files

    thresholds, limits = _coco_grid(iou_thrs, max_dets)
    ranges = dict(COCO_AREA_RANGES)
    if area_ranges:
        from sitesight.errors import InputError

        try:
            small, medium = (float(v) for v in area_ranges.split(","))
        except ValueError:
            raise InputError(f"--area-ranges: expected 'small,medium', got {area_ranges!r}") from None
        top = 1.0 if relative_area else 1e10
        ranges = {"all": (0.0, top), "small": (0.0, small), "medium": (small, medium), "large": (medium, top)}
    options = dict(area_ranges=ranges, relative_area=relative_area, honour_max_dets=honour_max_dets,
                   iou_thresholds=thresholds, max_dets=limits)
    record: dict[str, Any] = {}
    with console.status("evaluating"):
        if pred.is_dir() or class_map:  # (a results file needs none of the run machinery: not imported)
            from sitesight.sliced.evaluate import evaluate_coco_pred
            from sitesight.sliced.spec import PostprocessSpec

            s = so.spec_of(spec or so.recorded_spec(pred, console), conf, method, metric, threshold, gate, class_map,
                           class_agnostic, border, default=PostprocessSpec(conf=0.05))
            coco_kwargs = {"spec": s, "include_unscored_gt": include_unscored_gt, "area_ranges": ranges,
                           "honour_max_dets": honour_max_dets, "relative_area": relative_area,
                           "iou_thresholds": thresholds, "max_dets": limits}
            if _ray_engine(engine, pred):
                from sitesight.engines.ray import RayOptions
                from sitesight.engines.ray_eval import evaluate_coco_pred_ray

                result, scored = evaluate_coco_pred_ray(gt, pred, options=RayOptions(address=ray_address), **coco_kwargs)
            else:
                result, scored = evaluate_coco_pred(gt, pred, ignore_unknown=ignore_unknown, **coco_kwargs)
            record = scored.record()
        else:
            _ray_engine(engine, pred)
            result = evaluate_coco_files(gt, pred, class_agnostic=bool(class_agnostic), ignore_unknown=ignore_unknown, **options)
            record = {"dropped": {k: v for k, v in result.counts.items() if k.startswith("dropped") and v}}
    _coverage_line(record)
    table = Table("stat", "value", title=f"COCO bbox: {result.counts['images']} images, {result.counts['gt']} GT, {result.counts['pred']} predictions")
    for name, value in zip(STAT_NAMES, result.stats, strict=True):
        table.add_row(name, _fmt(float(value)))
    console.print(table)
    per = Table("class", "AP", "AP50", "AP75", "AR100", title="per class")
    for name, row in result.per_class.items():
        per.add_row(name, _fmt(row.get("AP")), _fmt(row.get("AP50")), _fmt(row.get("AP75")), _fmt(row.get("AR100")))
    console.print(per)
    _write_json(json_out, {**result.to_dict(), **record})


@eval_app.command("det")
def det(
    gt: Path = typer.Option(..., "--gt", help="Ground truth in any supported format (CVAT, COCO, YOLO, VOC)."),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON or a sitesight run folder."),
    iou: float = typer.Option(0.5, "--iou", min=0.0, max=1.0, help="IoU for a match."),
    sweep: str = typer.Option("0.05:0.95:0.05", "--sweep", help="Thresholds as start:stop:step or a comma list."),
    target_recall: float = typer.Option(None, "--target-recall", help="Report the highest-precision threshold reaching this recall."),
    spec: str = so.SPEC,
    conf: float = typer.Option(None, "--conf", help="Operating confidence (default 0.5); for a run folder also the confidence raw boxes need before merging."),
    method: str = so.METHOD,
    metric: str = so.METRIC,
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
    include_unscored_gt: bool = so.INCLUDE_UNSCORED,
    ignore_unknown: bool = so.IGNORE_UNKNOWN,
    json_out: Path = typer.Option(None, "--json", help=JSON_HELP),
    ap: str = typer.Option("coco", "--ap", help="AP per class at --iou over every prediction: coco (101-point), voc07 (11-point) or voc12 (all-point), as the VOC devkit."),
    pixel_inclusive: bool = typer.Option(False, "--pixel-inclusive", help="VOC devkit boxes: width = x2 - x1 + 1 (with --ap voc07/voc12)."),
    engine: str = typer.Option("local", "--engine", help="local | ray: a run folder's labelled frames post-processed in Ray tasks (pip install 'sitesight[ray]')."),
    ray_address: str = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
) -> None:
    """TP/FP/FN/precision/recall/F1 at --conf and --iou, a confidence sweep, AP and an error breakdown.

    --pred: COCO results JSON, a run folder, or a folder of <image>.txt files with
    'class confidence left top right bottom' (the mAP tools' layout; --gt may be its ground-truth
    folder, 'class left top right bottom [difficult]'). VOC AP ties are broken by score, then image
    path, then box, so the order of the inputs never changes it.

    A run folder goes through the same post-processing as `sitesight sweep` and `export` (so a sweep
    row and this command agree when given the same options, e.g. --spec RUN/sweep.csv:best), scored
    on the frames both sides cover unless --include-unscored-gt.
    """
    console.quiet = jsonout.to_stdout(json_out)  # --json -: only the JSON on stdout
    from sitesight.evaluation.detection import parse_sweep
    from sitesight.sliced.evaluate import evaluate_det
    from sitesight.sliced.spec import PostprocessSpec

    thresholds = parse_sweep(sweep)
    s = so.spec_of(spec or so.recorded_spec(pred, console), conf, method, metric, threshold, gate, class_map, class_agnostic,
                   border, default=PostprocessSpec(conf=0.5))
    with console.status("matching"):
        det_kwargs = {"spec": s, "iou": iou, "thresholds": thresholds, "target_recall": target_recall,
                      "include_unscored_gt": include_unscored_gt}
        if _ray_engine(engine, pred):
            from sitesight.engines.ray import RayOptions
            from sitesight.engines.ray_eval import evaluate_det_ray

            out = evaluate_det_ray(gt, pred, options=RayOptions(address=ray_address), ap=ap, pixel_inclusive=pixel_inclusive,
                                   **det_kwargs)
        else:
            out = evaluate_det(gt, pred, ignore_unknown=ignore_unknown, ap=ap, pixel_inclusive=pixel_inclusive, **det_kwargs)
    _coverage_line(out)
    table = Table("class", "TP", "FP", "FN", "precision", "recall", "F1", title=f"{out['images']} images at conf ≥ {s.conf:g}, IoU ≥ {iou}")
    for name, row in [*out["per_class"].items(), ("all", out)]:
        table.add_row(name, str(row["tp"]), str(row["fp"]), str(row["fn"]), _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]))
    console.print(table)
    sw = Table("conf", "TP", "FP", "FN", "precision", "recall", "F1", title="confidence sweep")
    for row in out["sweep"]:
        sw.add_row(f"{row['conf']:.3f}", str(row["tp"]), str(row["fp"]), str(row["fn"]), _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]))
    console.print(sw)
    errors = out["errors"]
    if "ap" in out:
        res = out["ap"]
        aps = Table("class", "AP", title=f"AP@{iou} ({res['method']}{', +1 pixel' if res['pixel_inclusive'] else ''}), "
                                         f"mAP {_fmt(res['map'])}")  # fmt: skip
        for name, value in res["per_class"].items():
            aps.add_row(name, _fmt(value))
        console.print(aps)
    err = Table("error", "count", "ΔAP if fixed", title=f"error breakdown (AP@{iou} = {errors['ap']:.4f})")
    for name, count in errors["counts"].items():
        err.add_row(name, str(count), f"{errors['delta_ap'][name]:+.4f}")
    err.add_row("duplicate across slices", str(errors["duplicate_cross_slice"]), "")
    console.print(err)
    _write_json(json_out, out)


@eval_app.command("cls")
def cls(
    pred: Path = typer.Option(..., "--pred", help="CSV: 'label' (true class name) and one probability column per class."),
    class_map: str = typer.Option(None, "--class-map", help="Model class column → label name, e.g. 'With Helmet=helmet,Without Helmet=head'; columns mapped onto one name are summed, 'X=' drops a column."),
    json_out: Path = typer.Option(None, "--json", help=JSON_HELP),
) -> None:
    """Per-class AP/precision/recall/F1/support, accuracy, confusion, macro over active and all classes."""
    console.quiet = jsonout.to_stdout(json_out)  # --json -: only the JSON on stdout
    from sitesight.evaluation.inputs import evaluate_cls_csv
    from sitesight.identity import parse_class_map

    result = evaluate_cls_csv(pred, class_map=parse_class_map(class_map))
    table = Table("class", "AP", "precision", "recall", "F1", "support", title=f"{result.n_samples} samples, accuracy {result.accuracy:.4f}")
    for name, m in result.per_class.items():
        table.add_row(name, _fmt(m.ap), _fmt(m.precision), _fmt(m.recall), _fmt(m.f1), str(m.support))
    for label, macro in (("macro (active classes)", result.macro_active), ("macro (all classes)", result.macro_all)):
        table.add_row(label, _fmt(macro["ap"]), _fmt(macro["precision"]), _fmt(macro["recall"]), _fmt(macro["f1"]), "")
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning: {w}[/yellow]")
    _write_json(json_out, result.to_dict())


@eval_app.command("anomaly")
def anomaly(
    scores: Path = typer.Option(..., "--scores", help="CSV with 'label' (normal/anomalous) and 'score' columns."),
    threshold: float = typer.Option(None, "--threshold", help="Flag score ≥ this; default: the best-F1 threshold on these labels."),
    json_out: Path = typer.Option(None, "--json", help=JSON_HELP),
) -> None:
    """Image-level AUROC, AUPR and precision/recall/F1 at a threshold."""
    console.quiet = jsonout.to_stdout(json_out)  # --json -: only the JSON on stdout
    from sitesight.evaluation.inputs import evaluate_anomaly_csv

    result = evaluate_anomaly_csv(scores, threshold=threshold)
    d = result.to_dict()
    table = Table("metric", "value", title=f"{result.n_anomalous} anomalous, {result.n_normal} normal")
    for key in ("auroc", "aupr", "threshold", "precision", "recall", "f1"):
        table.add_row(key, _fmt(d[key]) if key != "threshold" else f"{d[key]:.6g} ({d['threshold_source']})")
    console.print(table)
    _write_json(json_out, d)

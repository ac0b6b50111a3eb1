"""`sitesight sweep`: merge × gate × confidence recomputed from a stored run, evaluated, best row marked."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sitesight.cli import jsonout
from sitesight.cli import spec_options as so
from sitesight.progress import make_console, progress_reporter

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


@app.command("sweep")
def sweep(
    run_dir: Path = typer.Argument(..., help="Run folder written by `sitesight detect`."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth (CVAT, COCO, YOLO or VOC; format detected)."),
    method: str = typer.Option("nms,nmm,greedy_nmm", "--method", help="Merge methods, comma-separated."),
    metric: str = typer.Option("iou,ios", "--metric", help="Match metrics, comma-separated."),
    threshold: str = typer.Option("0.3,0.4,0.5", "--threshold", help="Merge thresholds: list or start:stop:step."),
    conf: str = typer.Option("0.15:0.5:0.05", "--conf", help="Confidence thresholds: list or start:stop:step."),
    gate: list[str] = typer.Option([], "--gate", help="Gate setting, e.g. r=40,conf=0.2 (repeatable); rows without a gate are always included."),
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = typer.Option(False, "--class-agnostic/--class-aware", help="Treat every class as one (merge, gate and scoring ignore classes)."),
    border: bool = typer.Option(True, "--border/--no-border", help="Slice-border rule: drop cut boxes an uncut twin covers."),
    iou: float = typer.Option(0.5, "--iou", help="IoU at which a detection matches ground truth."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the table (.csv or .json); default RUN/sweep.csv."),
    json_out: Path | None = jsonout.JSON_OPTION,
    engine: str = typer.Option("local", "--engine", help="local | ray (tasks over the run's shards; pip install 'sitesight[ray]')."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
) -> None:
    """Score every merge × gate × confidence combination on stored raw boxes, without the model.

    Every row is a post-processing spec: `--spec RUN/sweep.csv:best` (or :ROW) hands it to
    `export`, `eval det|coco`, `report` and `mine`, which then give the same detections.
    """
    from sitesight.formats import read_dataset
    from sitesight.identity import parse_class_map
    from sitesight.sliced.gate import parse_gate
    from sitesight.sliced.store import load_run
    from sitesight.sliced.sweep import align_gt, merge_grid, parse_range, sweep_run

    try:
        merges = merge_grid(_split(method), _split(metric), parse_range(threshold))
        confs = parse_range(conf)
        gates = [None, *(parse_gate(g) for g in gate)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    dataset = read_dataset(gt)
    grid = {"merges": merges, "confs": confs, "gates": gates, "class_names": dataset.class_names, "iou": iou,
            "class_map": parse_class_map(class_map), "class_agnostic": class_agnostic, "border": border}
    console = make_console()
    console.quiet = jsonout.to_stdout(json_out)
    total = len(merges) * len(gates) * len(confs)
    with progress_reporter("sweep", None if engine == "ray" else total, unit="frames" if engine == "ray" else "settings",
                           console=make_console(stderr=True)) as progress:
        if engine == "ray":  # frames are the unit of work there: the bar counts labelled frames
            from sitesight.engines.ray import RayOptions
            from sitesight.engines.ray_runs import sweep_run_ray

            result = sweep_run_ray(run_dir, dataset, options=RayOptions(address=ray_address), on_progress=progress.advance, **grid)
        else:
            run = load_run(run_dir)
            gts = align_gt(run, dataset)
            covered = sum(g is not None for g in gts)
            console.print(f"frames: run {len(gts)}, ground truth {len(dataset)}, both {covered}, ground-truth only "
                          f"{len(dataset) - covered}, run only {len(gts) - covered}")
            result = sweep_run(run, gts, on_progress=progress.advance, **grid)
    table = Table(title=f"{total} combinations over {result.frames} frames (IoU {iou:g})")
    for name in ("", "method", "metric", "thr", "conf", "gate", "P", "R", "F1", "TP", "FP", "FN", "gated"):
        table.add_column(name, justify="left" if name in ("method", "metric", "gate") else "right")
    for i, r in enumerate(result.rows):
        table.add_row("*" if i == result.best else "", r.method, r.metric, f"{r.threshold:g}", f"{r.conf:.2f}",
                      r.gate or "-", f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}", str(r.tp), str(r.fp),
                      str(r.fn), str(r.gate_removed), style="bold green" if i == result.best else None)
    console.print(table)
    _print_gate_effect(console, result)
    path = result.save(out or run_dir / "sweep.csv")
    b = result.rows[result.best]
    console.print(f"best (*): {b.method}/{b.metric}@{b.threshold:g} conf {b.conf:.2f} gate {b.gate or '-'} → "
                  f"F1 {b.f1:.3f}; table saved to {path} (reuse it: --spec {path}:best)")
    jsonout.emit(json_out, {**result.to_dict(), "table": str(path)})


def _print_gate_effect(console, result) -> None:  # noqa: ANN001 - rich Console, SweepResult
    """Per gate setting, at its best row: the boxes it removed per size bucket, TP (cost) / FP (gain)."""
    from sitesight.sliced.gate import size_bucket_names

    if not result.gate_effect:
        return
    best_per_gate: dict[str, int] = {}
    for i in result.gate_effect:
        g = result.rows[i].gate
        if g not in best_per_gate or result.rows[i].f1 > result.rows[best_per_gate[g]].f1:
            best_per_gate[g] = i
    table = Table(title="gate effect per object size (longer box side) at each gate's best row: TP removed / FP removed")
    table.add_column("gate", justify="left")
    table.add_column("F1", justify="right")
    for name in size_bucket_names():
        table.add_column(name, justify="right")
    for g, i in best_per_gate.items():
        effect = result.gate_effect[i]
        table.add_row(g, f"{result.rows[i].f1:.3f}", *(f"{tp} / {fp}" for tp, fp in effect.tolist()))
    console.print(table)

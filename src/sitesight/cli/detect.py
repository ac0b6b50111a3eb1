"""`sitesight detect` (sliced detection into a resumable run) and `sitesight export` (COCO / CVAT)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sitesight.cli.main import app

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[fps]} frames/s"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )


def _bad(message: str) -> typer.BadParameter:
    return typer.BadParameter(message)


def _postprocess_options(method: str, metric: str, threshold: float, gate: str | None):  # noqa: ANN202
    from sitesight.sliced.border import MergeSpec
    from sitesight.sliced.gate import parse_gate

    try:
        return MergeSpec(method, metric, threshold), (parse_gate(gate) if gate else None)
    except ValueError as exc:
        raise _bad(str(exc)) from None


@app.command("detect")
def detect(
    frames: list[str] = typer.Argument(..., help="Image files, folders, glob patterns or video files."),
    model: str = typer.Option(..., "--model", "-m", help="Detector spec: yolo:W.pt | torchvision:ARCH:W.pt | onnx:M.onnx | iouaware:CKPT.safetensors (sitesight train det) | replay:RESULTS.json[:IMAGES.json]"),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (Parquet shards + manifest.json)."),
    slice_size: int = typer.Option(640, "--slice", min=1, help="Square slice side in pixels."),
    overlap: float = typer.Option(0.2, "--overlap", min=0.0, max=0.95, help="Overlap between slices (fraction)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Slices per detector call."),
    full_frame: bool = typer.Option(True, "--full-frame/--no-full-frame", help="Also run the model on each whole frame."),
    conf: float = typer.Option(0.05, "--conf", help="Lowest raw score kept (sweeps raise it later)."),
    video_step: int = typer.Option(1, "--video-step", min=1, help="Keep every N-th frame of videos."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out (default)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) | ray (Ray Data actors; pip install 'sitesight[ray]')."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
    ray_workers: int | None = typer.Option(None, "--ray-workers", min=1, help="With --engine ray: detector actors (default one per GPU, else per free CPU)."),
) -> None:
    """Run a detector on slices of every frame and store the raw boxes; resumes after a kill."""
    from sitesight.errors import InputError
    from sitesight.predictors import build_detector
    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import detect_to_run

    if not resume and (out / "manifest.json").exists():
        raise InputError("run folder already holds a run; pass --resume or choose a new --out", out)
    if engine not in ("local", "ray"):
        raise _bad(f"--engine must be local or ray, got {engine!r}")
    refs = list_frames(frames, video_step=video_step)
    run_kwargs = {"model": model, "slice_wh": (slice_size, slice_size), "overlap_ratio": (overlap, overlap),
                  "batch_size": batch, "full_frame": full_frame}
    if engine == "local":
        detector = build_detector(model, conf=conf)
    with _progress() as progress:
        task = progress.add_task("detect", total=len(refs), fps="-")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            progress.update(task, fps=f"{speed:.2f}" if speed else "-")

        if engine == "local":
            summary = detect_to_run(refs, detector, out, on_progress=advance, **run_kwargs)
        else:
            summary = _detect_ray(refs, out, conf, ray_address, ray_workers, run_kwargs, advance)
        progress.advance(task, summary.already_done)
    for s in summary.skipped:
        console.print(f"[yellow]skipped[/yellow] {s.key}: {s.reason}")
    console.print(
        f"{summary.processed} frames processed, {len(summary.skipped)} skipped, {summary.already_done} already done "
        f"(of {summary.total}); {summary.boxes} raw boxes; {summary.frames_per_second:.2f} frames/s, "
        f"{100 * summary.overhead_fraction:.0f}% of wall time outside the model → {out}"
    )
    logging.getLogger(__name__).debug("summary %s", summary)


def _detect_ray(refs, out, conf, address, workers, run_kwargs, advance):  # noqa: ANN001, ANN202
    from functools import partial

    from sitesight.engines.ray import RayOptions, detect_to_run_ray
    from sitesight.errors import InputError
    from sitesight.predictors import build_detector, parse_spec

    parse_spec(run_kwargs["model"])  # a bad spec fails here in one line, not inside every actor
    if run_kwargs["model"].startswith("replay:"):
        raise InputError("replayed predictions are looked up, not computed: use --engine local", where="--model")
    # the model is built inside each Ray actor, where it runs (and on that actor's GPU)
    factory = partial(build_detector, run_kwargs["model"], conf=conf)
    return detect_to_run_ray(refs, factory, out, options=RayOptions(address=address, workers=workers),
                             on_progress=advance, **run_kwargs)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="Run folder written by `sitesight detect`."),
    coco: Path | None = typer.Option(None, "--coco", help="Write COCO results JSON here."),
    cvat: Path | None = typer.Option(None, "--cvat", help="Write CVAT 1.1 XML pre-annotation parts into this folder."),
    part_size: int = typer.Option(100, "--part-size", min=1, help="Frames per CVAT part (one task each)."),
    conf: float = typer.Option(0.25, "--conf", help="Confidence threshold on raw boxes."),
    method: str = typer.Option("greedy_nmm", "--method", help="nms | nmm | greedy_nmm."),
    metric: str = typer.Option("ios", "--metric", help="iou | ios."),
    threshold: float = typer.Option(0.5, "--threshold", help="Merge match threshold."),
    gate: str | None = typer.Option(None, "--gate", help="Full-image gate, e.g. r=40,conf=0.2."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class names (default class0, class1...)."),
) -> None:
    """Merge a stored run's raw boxes and export them as COCO results and/or CVAT task parts."""
    from sitesight.sliced.export import export_coco_results, export_cvat_parts, run_dataset
    from sitesight.sliced.store import load_run

    if coco is None and cvat is None:
        raise _bad("give --coco and/or --cvat")
    spec, gate_params = _postprocess_options(method, metric, threshold, gate)
    names = [c.strip() for c in classes.split(",")] if classes else None
    dataset, removed = run_dataset(load_run(run_dir), conf=conf, merge_spec=spec, gate=gate_params, class_names=names)
    boxes = dataset.box_count()
    if coco is not None:
        console.print(f"COCO results: {export_coco_results(dataset, coco)}")
    if cvat is not None:
        parts = export_cvat_parts(dataset, cvat, part_size=part_size)
        console.print(f"CVAT: {len(parts)} part(s) of up to {part_size} frames in {cvat}")
    console.print(f"{len(dataset)} frames, {boxes} boxes" + (f"; the gate removed {removed}" if gate_params else ""))

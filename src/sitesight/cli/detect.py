"""`sitesight detect` (sliced detection into a resumable run) and `sitesight export` (COCO / CVAT)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from sitesight.cli import spec_options as so
from sitesight.device import DEVICE_HELP
from sitesight.progress import make_console, progress_reporter

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root

console = make_console(stderr=True)


def _bad(message: str) -> typer.BadParameter:
    return typer.BadParameter(message)


@app.command("detect")
def detect(
    frames: list[str] = typer.Argument(..., help="Image files, folders, glob patterns or video files; with --engine ray also storage URLs (s3://bucket/prefix/, gs://...)."),
    model: str = typer.Option(..., "--model", "-m", help="Detector spec: yolo:W.pt | torchvision:ARCH:W.pt | onnx:M.onnx | iouaware:CKPT.safetensors (sitesight train det) | replay:RESULTS.json[:IMAGES.json]"),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (Parquet shards + manifest.json)."),
    slice_size: int = typer.Option(640, "--slice", min=1, help="Square slice side in pixels."),
    overlap: float = typer.Option(0.2, "--overlap", min=0.0, max=0.95, help="Overlap between slices (fraction)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Slices per detector call."),
    full_frame: bool = typer.Option(True, "--full-frame/--no-full-frame", help="Also run the model on each whole frame."),
    conf: float = typer.Option(0.05, "--conf", help="Lowest raw score kept (sweeps raise it later)."),
    video_step: int = typer.Option(1, "--video-step", min=1, help="Keep every N-th frame of videos."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out (default)."),
    classes: str | None = typer.Option(None, "--classes", help="The model's class names in class-id order, comma-separated (recorded in the run so classes match ground truth by name; default: the model's own names when it has them)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    imgsz: int | None = typer.Option(None, "--imgsz", min=32, help="Long side each slice is resized to for the model (default: the slice size, no resize)."),
    full_imgsz: int | None = typer.Option(None, "--full-imgsz", min=32, help="Long side the whole frame is resized to for the full-frame pass (default: --imgsz, else the slice size)."),
    half: bool = typer.Option(False, "--half", help="float16 inference where the backend supports it (Ultralytics, torchvision, iouaware on CUDA)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) | ray (Ray Data actors; pip install 'sitesight[ray]')."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
    ray_workers: int | None = typer.Option(None, "--ray-workers", min=1, help="With --engine ray: detector actors (default one per GPU, else per free CPU)."),
) -> None:
    """Run a detector on slices of every frame and store the raw boxes; resumes after a kill.

    Frames are decoded and sliced in background threads while the model runs on batches that span
    frames. Progress goes to stderr: a bar on a terminal, a plain line every few seconds in a pipe or log.
    """
    from sitesight.errors import InputError
    from sitesight.predictors import build_detector
    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import detect_to_run

    if not resume and (out / "manifest.json").exists():
        raise InputError("run folder already holds a run; pass --resume or choose a new --out", out)
    if engine not in ("local", "ray"):
        raise _bad(f"--engine must be local or ray, got {engine!r}")
    if any("://" in f for f in frames):  # frames on object storage (s3://, gs://, ...): read by the Ray workers
        if engine != "ray" or not all("://" in f for f in frames):
            raise _bad("storage URLs (s3://, gs://, file://) need --engine ray, and then every FRAMES argument is one")
        from sitesight.engines.storage import list_uri_frames

        refs = list_uri_frames(frames)
    else:
        refs = list_frames(frames, video_step=video_step)
    run_kwargs = {"model": model, "slice_wh": (slice_size, slice_size), "overlap_ratio": (overlap, overlap),
                  "batch_size": batch, "full_frame": full_frame}
    sizes = {"imgsz": imgsz, "full_imgsz": full_imgsz if full_imgsz is not None else imgsz}
    if engine == "local":
        detector = build_detector(model, conf=conf, device=device, half=half)
    names = [c.strip() for c in classes.split(",")] if classes else None
    with progress_reporter("detect", len(refs), unit="frames", console=console) as progress:
        if engine == "local":
            summary = detect_to_run(refs, detector, out, on_progress=progress.advance, class_names=names, **run_kwargs, **sizes)
        else:
            summary = _detect_ray(refs, out, (conf, device, half), ray_address, ray_workers,
                                  {**run_kwargs, **sizes, "class_names": names}, progress.advance)
        progress.skip(summary.already_done)
    for s in summary.skipped:
        console.print(f"[yellow]skipped[/yellow] {s.key}: {s.reason}")
    console.print(
        f"{summary.processed} frames processed, {len(summary.skipped)} skipped, {summary.already_done} already done "
        f"(of {summary.total}); {summary.boxes} raw boxes; {summary.frames_per_second:.2f} frames/s, "
        f"{100 * summary.overhead_fraction:.0f}% of wall time outside the model → {out}"
    )
    from sitesight.sliced.store import read_manifest

    earlier = len(read_manifest(out).get("skipped") or []) - len(summary.skipped)
    if earlier > 0:  # a resume: the frames an earlier pass skipped are not retried, but still said
        console.print(f"{earlier} frames skipped by an earlier pass, listed with their reason in {out / 'manifest.json'}")
    logging.getLogger(__name__).debug("summary %s", summary)


def _detect_ray(refs, out, run_options, address, workers, run_kwargs, advance):  # noqa: ANN001, ANN202
    from functools import partial

    from sitesight.engines.ray import RayOptions, detect_to_run_ray
    from sitesight.errors import InputError
    from sitesight.predictors import build_detector, parse_spec

    parse_spec(run_kwargs["model"])  # a bad spec fails here in one line, not inside every actor
    if run_kwargs["model"].startswith("replay:"):
        raise InputError("replayed predictions are looked up, not computed: use --engine local", where="--model")
    # the model is built inside each Ray actor, where it runs (and on that actor's GPU)
    conf, device, half = run_options
    factory = partial(build_detector, run_kwargs["model"], conf=conf, device=device, half=half)
    return detect_to_run_ray(refs, factory, out, options=RayOptions(address=address, workers=workers),
                             on_progress=advance, **run_kwargs)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="Run folder written by `sitesight detect`."),
    coco: Path | None = typer.Option(None, "--coco", help="Write COCO results JSON here (and OUT.spec.json beside it)."),
    cvat: Path | None = typer.Option(None, "--cvat", help="Write CVAT 1.1 XML pre-annotation parts into this folder."),
    parquet: Path | None = typer.Option(None, "--parquet", help="Write the final boxes as Parquet here (the run's box schema; frames, class names and spec in the metadata)."),
    part_size: int = typer.Option(100, "--part-size", min=1, help="Frames per CVAT part (one task each)."),
    gt: Path | None = typer.Option(None, "--gt", help="Ground truth whose image ids, category ids and class names the COCO export uses (pycocotools loads the file against it)."),
    classes: str | None = typer.Option(None, "--classes", help="The model's class names, comma-separated, for a run that did not record them."),
    spec: str = so.SPEC,
    conf: float = typer.Option(None, "--conf", help="Confidence threshold on raw boxes (default 0.25)."),
    method: str = so.METHOD,
    metric: str = so.METRIC,
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
) -> None:
    """Post-process a stored run (the same path as `sweep` and `eval`) and export COCO results, CVAT parts and/or Parquet.

    Without --gt, COCO image ids are the frame's position in the run + 1 and category ids the class
    index + 1; every result also names its frame (file_name), which `sitesight eval` aligns by.
    """
    from sitesight.sliced.evaluate import read_ground_truth
    from sitesight.sliced.export import export_coco, export_cvat_parts, export_parquet, final_dataset
    from sitesight.sliced.postprocess import postprocess
    from sitesight.sliced.store import load_run

    if coco is None and cvat is None and parquet is None:
        raise _bad("give --coco, --cvat and/or --parquet")
    s = so.spec_of(spec or so.recorded_spec(run_dir, console), conf, method, metric, threshold, gate, class_map,
                   class_agnostic, border)
    run = load_run(run_dir)
    if classes:
        run = run.with_class_names([c.strip() for c in classes.split(",")])
    truth = read_ground_truth(gt) if gt is not None else None
    target = truth.dataset.class_names if truth is not None and not s.class_agnostic else None
    final = postprocess(run, s, class_names=target)
    console.print(f"post-processing: {s}")
    if coco is not None:
        record = export_coco(final, coco, gt=None if truth is None else truth.dataset,
                             gt_category_ids=None if truth is None else truth.category_ids)
        left = record.get("frames_left_out", 0)
        console.print(f"COCO results: {coco} (ids {record['ids']}" + (f"; {left} frames not in the ground truth left out" if left else "") + ")")
    if cvat is not None:
        parts = export_cvat_parts(final_dataset(final), cvat, part_size=part_size, record=final.summary())
        console.print(f"CVAT: {len(parts)} part(s) of up to {part_size} frames in {cvat}")
    if parquet is not None:
        console.print(f"Parquet: {export_parquet(final, parquet)}")
    console.print(f"{len(final.frames)} frames, {len(final.table)} boxes" + (f"; the gate removed {final.gate_removed}" if s.gate else ""))

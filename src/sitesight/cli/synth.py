"""`sitesight synth`: synthetic construction-site CCTV frames with ground truth, for trying things out."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from sitesight.errors import InputError
from sitesight.progress import make_console

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root

console = make_console()
ANNOTATION_FORMATS = ("cvat", "coco", "yolo", "voc", "none")


def _parse_wh(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size: expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from None
    return w, h


@app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Folder for the JPEG frames and the annotations."),
    frames: int = typer.Option(24, "--frames", "-n", min=1, help="Number of frames."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same pixels and boxes."),
    size: str = typer.Option("1920x1080", "--size", help="Frame size WIDTHxHEIGHT."),
    cameras: int = typer.Option(4, "--cameras", min=1, help="Fixed cameras (frames go round robin)."),
    timestamp: bool = typer.Option(True, "--timestamp/--no-timestamp", help="Burn a CCTV date/camera caption in."),
    fmt: str = typer.Option("cvat", "--format", "-f", help="Annotations: cvat, coco, yolo, voc or none."),
) -> None:
    """Render synthetic site frames (workers, helmets, heads, safety ropes) and write their ground truth."""
    if fmt not in ANNOTATION_FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}; choose one of {', '.join(ANNOTATION_FORMATS)}")
    image_wh = _parse_wh(size)
    from sitesight.synth import write_site_dataset

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("rendering", total=frames)
        ds = write_site_dataset(out, n_frames=frames, seed=seed, image_wh=image_wh, n_cameras=cameras,
                                timestamp_overlay=timestamp, progress=lambda done, _: bar.update(task, completed=done))
    written = "JPEGs only"
    if fmt != "none":
        from sitesight.formats import write_dataset

        target = out / {"cvat": "annotations.xml", "coco": "annotations.json"}.get(fmt, fmt)
        written = str(write_dataset(ds, target, fmt, images="symlink"))
    counts = ", ".join(f"{k}: {v}" for k, v in ds.class_counts().items())
    console.print(f"{len(ds)} frames {image_wh[0]}x{image_wh[1]} in {out} ({counts}); annotations: {written}")

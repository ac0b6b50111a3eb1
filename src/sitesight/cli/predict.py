"""`sitesight predict roi|cls`: apply a trained checkpoint; predictions CSV in the `sitesight eval cls` layout.

Other model families add their commands to `predict_app` (``sitesight predict anomaly``…).
"""

from __future__ import annotations

from pathlib import Path

import typer

predict_app = typer.Typer(help="Apply trained models: RoI attribute heads, image classifiers.", no_args_is_help=True)


@predict_app.command("roi")
def predict_roi(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint (.safetensors) from `sitesight train roi`."),
    boxes: Path = typer.Option(..., "--boxes", help="A stored detection run folder, or ground truth (CVAT/COCO/YOLO/VOC)."),
    images: Path = typer.Option(None, "--images", help="Folder the frames' paths are relative to (default: as stored)."),
    box_class_id: int = typer.Option(None, "--box-class-id", help="Class id of the boxes to classify (default: the checkpoint's box class by name)."),
    conf: float = typer.Option(0.25, "--conf", help="Score threshold for a run's detections."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Frames per batch."),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(Path("roi_predictions.csv"), "--out", "-o", help="Predictions CSV."),
) -> None:
    """Add attribute probabilities to every box of the checkpoint's class (backbone once per frame)."""
    from sitesight.models.attribute import predict_roi_dataset

    if (boxes / "manifest.json").is_file():
        from sitesight.sliced.export import run_dataset
        from sitesight.sliced.store import load_run

        dataset, _ = run_dataset(load_run(boxes), conf=conf)
        box_class_id = 0 if box_class_id is None else box_class_id
    else:
        from sitesight.formats import read_dataset

        dataset = read_dataset(boxes)
    rows, skipped = predict_roi_dataset(model, dataset, out, images_root=images, box_class_id=box_class_id, batch_size=batch_size, device=device)
    _echo_skipped(skipped)
    typer.echo(f"{rows} boxes from {len(dataset) - len(skipped)} frames → {out}")


@predict_app.command("cls")
def predict_cls(
    model: Path = typer.Option(..., "--model", "-m", help="Checkpoint (.safetensors) from `sitesight train cls`."),
    images: Path = typer.Option(..., "--images", help="An image, a folder of images, or a folder-per-class tree (labels filled in)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(Path("cls_predictions.csv"), "--out", "-o", help="Predictions CSV."),
) -> None:
    """Class probabilities for images; the CSV has image, label, pred and one column per class."""
    from sitesight.models.classifier import predict_image_files

    n, skipped = predict_image_files(model, images, out, batch_size=batch_size, device=device)
    _echo_skipped(skipped)
    typer.echo(f"{n} images → {out}")


def _echo_skipped(skipped: list[tuple[Path, str]]) -> None:
    """The batch's summary of unreadable images: one line each (to stderr), then the count."""
    for _, reason in skipped:
        typer.echo(f"skipped {reason}", err=True)
    if skipped:
        typer.echo(f"{len(skipped)} unreadable image(s) skipped", err=True)

"""`sitesight data convert|validate|stats`: formats in and out, validation, statistics.

`data_app` is the `data` command group; the curation commands (``sitesight.cli.curate``) add
themselves to it. Each command parses, calls one library function, prints.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sitesight.cli import jsonout
from sitesight.progress import make_console

data_app = typer.Typer(name="data", help="Read, write, validate and curate datasets.", no_args_is_help=True)

console = make_console()
FROM_HELP = "Input format (cvat, coco, yolo, voc); detected from the path when omitted."
POINTS_HELP = "Turn CVAT points/skeleton shapes into boxes by their extent."


@data_app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="Annotation file or dataset folder to read."),
    dst: Path = typer.Argument(..., help="File (cvat, coco) or folder (yolo, voc) to write."),
    to: str = typer.Option(..., "--to", "-t", help="Output format: cvat, coco, yolo, voc or txt."),
    src_fmt: str = typer.Option(None, "--from", "-f", help=FROM_HELP),
    images: str = typer.Option("copy", "--images", help="yolo/voc: copy, symlink, hardlink or none (labels only)."),
    points_as_boxes: bool = typer.Option(False, "--points-as-boxes", help=POINTS_HELP),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="yolo/voc: also copy images that the labels place outside the dataset folder (refused by default)."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Convert a dataset between CVAT XML, COCO JSON, YOLO, Pascal VOC and the per-image text layout (txt)."""
    from sitesight.formats import convert_dataset

    console.quiet = jsonout.to_stdout(json_out)
    with console.status(f"converting {src} → {to}"):
        loaded, written = convert_dataset(src, dst, to, src_fmt=src_fmt, images=images, points_as_boxes=points_as_boxes,
                                          allow_outside=allow_outside_root)  # fmt: skip
    ds = loaded.dataset
    console.print(f"{len(ds)} images, {ds.box_count()} boxes, {len(ds.class_names)} classes → {written}")  # type: ignore[attr-defined]
    if loaded.issues:
        console.print(f"[yellow]{len(loaded.issues)} issues while reading; run `sitesight data validate {src}`[/yellow]")
    jsonout.emit(json_out, {"images": len(ds), "boxes": ds.box_count(), "classes": list(ds.class_names),  # type: ignore[attr-defined]
                            "written": str(written), "issues": len(loaded.issues)})


@data_app.command("validate")
def validate(
    path: Path = typer.Argument(..., help="Annotation file or dataset folder."),
    src_fmt: str = typer.Option(None, "--from", "-f", help=FROM_HELP),
    no_images: bool = typer.Option(False, "--no-images", help="Do not check that image files exist."),
    points_as_boxes: bool = typer.Option(False, "--points-as-boxes", help=POINTS_HELP),
    limit: int = typer.Option(30, "--limit", help="Issues to list per code (all are counted)."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Check boxes, labels, attributes, duplicates and files; exit code 1 when errors are found."""
    from sitesight.validation import validate_path

    console.quiet = jsonout.to_stdout(json_out)
    with console.status(f"validating {path}"):
        report = validate_path(path, src_fmt, check_images=not no_images, points_as_boxes=points_as_boxes)
    if json_out is not None and not jsonout.to_stdout(json_out):
        jsonout.emit(json_out, report.to_dict())
    shown: dict[str, int] = {}
    for issue in report.issues:
        shown[issue.code] = shown.get(issue.code, 0) + 1
        if shown[issue.code] <= limit:
            colour = "red" if issue.severity == "error" else "yellow"
            place = f"{issue.path}" + (f" ({issue.where})" if issue.where else "") if issue.path else ""
            console.print(f"[{colour}]{issue.severity:7s}[/{colour}] {issue.code:20s} {place}: {issue.message}", highlight=False)
    table = Table(title=f"{report.source} ({report.fmt}): {report.n_images} images, {report.n_boxes} boxes")
    for column in ("code", "severity", "count"):
        table.add_column(column)
    severity = {i.code: i.severity for i in report.issues}
    for code, count in sorted(report.counts().items()):
        table.add_row(code, severity[code], str(count))
    console.print(table)
    if jsonout.to_stdout(json_out):
        jsonout.emit(json_out, report.to_dict())
    if report.ok:
        console.print(f"[green]no errors[/green] ({len(report.warnings)} warnings)")
    else:
        console.print(f"[red]{len(report.errors)} errors[/red], {len(report.warnings)} warnings")
        raise SystemExit(1)  # typer.Exit's code is lost under main()'s standalone_mode=False


@data_app.command("stats")
def stats(
    path: Path = typer.Argument(..., help="Annotation file or dataset folder."),
    src_fmt: str = typer.Option(None, "--from", "-f", help=FROM_HELP),
    json_out: Path = jsonout.JSON_OPTION,
    points_as_boxes: bool = typer.Option(False, "--points-as-boxes", help=POINTS_HELP),
) -> None:
    """Boxes per class and attribute value, box sizes (pixels and relative), images without boxes."""
    from sitesight.formats import read_dataset
    from sitesight.stats import dataset_stats

    console.quiet = jsonout.to_stdout(json_out)
    with console.status(f"reading {path}"):
        result = dataset_stats(read_dataset(path, src_fmt, points_as_boxes=points_as_boxes))
    if json_out is not None and not jsonout.to_stdout(json_out):
        jsonout.emit(json_out, result.to_dict())
    console.print(f"{result.n_images} images, {result.n_boxes} boxes, {len(result.images_without_boxes)} images without boxes")
    table = Table(title="classes")
    for column in ("class", "boxes", "images", "small", "medium", "large", "median w px", "median h px", "median w/W", "median h/H"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name, count in result.class_counts.items():
        size = result.box_size.get(name, {})
        bucket = result.size_buckets.get(name, {})
        med = [size.get(m, {}).get("median") for m in ("width_px", "height_px", "width_rel", "height_rel")]
        table.add_row(name, str(count), str(result.images_per_class[name]), *(str(bucket.get(b, 0)) for b in ("small", "medium", "large")),
                      *("-" if v is None else f"{v:.1f}" if i < 2 else f"{v:.3f}" for i, v in enumerate(med)))  # fmt: skip
    console.print(table)
    for attr, counts in result.attribute_counts.items():
        if counts:
            console.print(f"[bold]{attr}[/bold]: " + ", ".join(f"{v}={n}" for v, n in counts.items()), highlight=False)
    if result.tag_counts:
        console.print("[bold]tags[/bold]: " + ", ".join(f"{t}={n}" for t, n in result.tag_counts.items()), highlight=False)
    if jsonout.to_stdout(json_out):
        jsonout.emit(json_out, result.to_dict())

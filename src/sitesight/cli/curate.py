"""`sitesight data filter|split|mix|tile|dedup|sample|package`: curation commands on the `data` group.

Each command parses its options, calls one `sitesight.curation` function and prints a summary.
Datasets are read with `sitesight.formats.read_dataset` (format auto-detected) and written with
`sitesight.formats.write_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sitesight import atomic
from sitesight.cli import jsonout
from sitesight.cli.data import data_app
from sitesight.errors import InputError
from sitesight.pathsafe import safe_component
from sitesight.progress import make_console

console = make_console(stderr=True)
FORMATS_HELP = "Output format: cvat, coco, yolo or voc."


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _read(path: Path, fmt: str | None = None):
    from sitesight.formats import read_dataset

    return read_dataset(path, fmt)


def _write(dataset, path: Path, fmt: str, images: str = "copy") -> None:
    from sitesight.formats import write_dataset

    write_dataset(dataset, path, fmt, images=images)


def _path_lines(paths: list, out: Path) -> str:
    """One path per line; a path holding a line break would read back as two paths, so it is refused."""
    for path in paths:
        if "\n" in str(path) or "\r" in str(path):
            raise InputError(f"frame path {str(path)[:120]!r} holds a line break; a one-path-per-line list cannot hold it", out)
    return "".join(f"{p}\n" for p in paths)


def _region(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--ignore-region {text!r}: expected x1,y1,x2,y2 (pixels, or fractions of the frame)")
    return values  # type: ignore[return-value]


def _wh(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x640") from None
    return w, h


@data_app.command("dedup")
def dedup(
    sources: list[Path] = typer.Argument(..., help="Frames or folders of frames (searched recursively)."),
    report: Path = typer.Option(Path("dedup_report.csv"), "--report", help="Decisions as CSV (.csv) or JSON."),
    max_distance: int = typer.Option(4, "--max-distance", help="Hash bits (of 64) that still count as the same picture."),
    ignore_region: list[str] = typer.Option([], "--ignore-region", help="x1,y1,x2,y2 to blank (timestamp overlay); px or fractions. Repeatable."),
    pattern: str = typer.Option(None, "--pattern", help="File-name regex with named groups camera and ts (default: cam_YYYYmmddTHHMMSS)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Hashing threads."),
    delete: bool = typer.Option(False, "--delete", help="Delete dropped frames from disk. Off by default."),
    engine: str = typer.Option("local", "--engine", help="local | ray (one Ray task per camera; pip install 'sitesight[ray]')."),
    ray_address: str = typer.Option(None, "--ray-address", help="With --engine ray: cluster to join (auto, ray://HEAD:10001); default starts a local Ray."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Drop frozen frames: per camera in time order, compare each frame with the last kept one."""
    from sitesight.curation.captures import CAPTURE_NAME_PATTERN, list_captures
    from sitesight.curation.dedup import dedup_frames, remove_dropped

    captures = list_captures(sources, pattern=pattern or CAPTURE_NAME_PATTERN)
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    options = {"max_distance": max_distance, "ignore_regions": [_region(r) for r in ignore_region], "workers": workers}
    with _progress("hashing", len(captures)) as advance:
        if engine == "ray":
            from sitesight.engines.ray import RayOptions
            from sitesight.engines.ray_curation import dedup_frames_ray

            result = dedup_frames_ray(captures, options=RayOptions(address=ray_address), progress=advance, **options)
        else:
            result = dedup_frames(captures, progress=advance, **options)
    result.write_report(report)
    summary = result.summary()
    if delete:
        summary["deleted"] = remove_dropped(result)
    jsonout.emit_summary(summary, json_out)
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} unreadable frames skipped; listed in {report}[/yellow]")


def _skipped_fields(skipped: list[tuple[Path, str]]) -> dict[str, object]:
    """Each skipped frame on stderr with its reason; the summary's ``skipped`` count and list."""
    for path, reason in skipped:
        console.print(f"skipped {path}: {reason}", markup=False, highlight=False)
    return {"skipped": len(skipped), "skipped_frames": [[str(path), reason] for path, reason in skipped]}


@data_app.command("sample")
def sample(
    sources: list[Path] = typer.Argument(..., help="Frames or folders of frames (searched recursively)."),
    every: float = typer.Option(..., "--every", help="Seconds between two frames of one camera."),
    out: Path = typer.Option(Path("sampled.txt"), "--out", "-o", help="Text file listing the picked frames."),
    exclude: Path = typer.Option(None, "--exclude", help="File of frames (paths or names) or epoch timestamps never to pick."),
    max_frames: int = typer.Option(None, "--max-frames", help="Cut the interleaved list to this many frames."),
    pattern: str = typer.Option(None, "--pattern", help="File-name regex with named groups camera and ts."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """One frame per N seconds per camera, cameras interleaved, skipping excluded frames.

    Frames whose header cannot be read (GIF, dangling link, empty, not an image, decompression bomb) are
    passed over for the camera's next frame and listed with their reason; a truncated file shows only
    when decoded (`detect` skips it then)."""
    from sitesight.curation.captures import CAPTURE_NAME_PATTERN, list_captures
    from sitesight.curation.sampling import read_exclusions, sample_frames
    from sitesight.images import frame_problem

    paths, stamps = read_exclusions(exclude) if exclude else ([], [])
    picks, skipped = sample_frames(list_captures(sources, pattern=pattern or CAPTURE_NAME_PATTERN), every_s=every,
                                   exclude_paths=paths, exclude_timestamps=stamps, max_frames=max_frames, check=frame_problem)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, _path_lines([c.path for c in picks], out))
    summary = {"picked": len(picks), "cameras": len({c.camera_id for c in picks}), "list": str(out), **_skipped_fields(skipped)}
    jsonout.emit_summary(summary, json_out)


@data_app.command("filter")
def filter_labels(
    src: Path = typer.Argument(..., help="Dataset to read (format auto-detected)."),
    dst: Path = typer.Argument(..., help="Where to write the filtered dataset."),
    to: str = typer.Option("coco", "--to", help=FORMATS_HELP),
    fixed_location: bool = typer.Option(False, "--fixed-location", help="Drop tiny boxes recurring at one place per camera."),
    max_w: float = typer.Option(0.03, "--max-w", help="Tiny: normalised width below this ..."),
    max_h: float = typer.Option(0.05, "--max-h", help="... and normalised height below this."),
    min_frames: int = typer.Option(3, "--min-frames", help="Recurring: seen in at least this many frames of a camera."),
    remap: list[str] = typer.Option([], "--remap", help="old=new (new empty drops the class). Repeatable."),
    attr_rule: list[str] = typer.Option([], "--attr-rule", help="class:attribute=value->new_class. Repeatable."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Apply label filters in this order: attribute → class rules, class remapping, fixed-location filter."""
    from sitesight.curation.filters import (
        attributes_to_classes,
        drop_fixed_location,
        parse_attribute_rule,
        remap_classes,
    )

    dataset = _read(src)
    before = dataset.box_count()
    if attr_rule:
        dataset = attributes_to_classes(dataset, [parse_attribute_rule(r) for r in attr_rule])
    if remap:
        pairs = [r.split("=", 1) for r in remap]
        if any(len(p) != 2 for p in pairs):
            raise InputError(f"--remap: expected old=new, got {remap}")
        dataset = remap_classes(dataset, {old.strip(): (new.strip() or None) for old, new in pairs})
    dropped = 0
    if fixed_location:
        dataset, dropped = drop_fixed_location(dataset, max_w=max_w, max_h=max_h, min_frames=min_frames)
    _write(dataset, dst, to)
    jsonout.emit_summary({"boxes_in": before, "boxes_out": dataset.box_count(), "fixed_location_dropped": dropped,
                           "classes": list(dataset.class_names)}, json_out)


@data_app.command("split")
def split(
    src: Path = typer.Argument(..., help="Dataset to read (format auto-detected)."),
    out: Path = typer.Argument(..., help="Folder; yolo: one dataset OUT/data.yaml with every subset inside; other formats: OUT/<name>."),
    to: str = typer.Option("coco", "--to", help=FORMATS_HELP),
    link: str = typer.Option("copy", "--link", help="yolo/voc images: copy, symlink or hardlink (no copies of the pixels)."),
    fraction: list[str] = typer.Option(["train=0.8", "val=0.1", "test=0.1"], "--fraction", help="name=share. Repeatable."),
    group_by: list[str] = typer.Option(["camera"], "--group-by", help="camera, time, source or phash (same picture, also flipped/rotated). Repeatable; none = per image."),
    time_window: float = typer.Option(60.0, "--time-window", help="Seconds for --group-by time."),
    hash_distance: int = typer.Option(4, "--hash-distance", min=0, max=64, help="Bits (of 64) within which --group-by phash calls two pictures the same."),
    seed: int = typer.Option(0, "--seed", help="Shuffling seed."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Stratified split where no camera / time window / source photo straddles two subsets.

    Prints JSON: the number of groups formed, images lacking the grouping information, and per
    subset the images and the shares reached by image and by every class's boxes.
    """
    from sitesight.curation.split import plan_split, split_dataset

    try:
        fractions = {k.strip(): float(v) for k, v in (f.split("=", 1) for f in fraction)}
    except ValueError:
        raise InputError(f"--fraction: expected name=share, got {fraction}") from None
    for name in fractions:  # each becomes a folder (or a yolo split): never a path out of OUT
        safe_component(name, what="--fraction subset name")
    keys = [g for g in group_by if g != "none"]
    dataset = _read(src)
    with _progress("hashing", len(dataset) if "phash" in keys else 0) as advance:
        plan = plan_split(dataset, fractions=fractions, group_by=keys, time_window_s=time_window, hash_distance=hash_distance,
                          seed=seed, progress=advance)  # fmt: skip
    parts = split_dataset(dataset, plan=plan)
    if to == "yolo":  # one root that Ultralytics trains on as written: images/<subset>, labels/<subset>, data.yaml
        _write(dataset.with_samples([s for p in parts.values() for s in p.samples]), out, to, link)
    else:
        for name, part in parts.items():
            _write(part, out / name, to, link)
    summary = plan.summary(dataset.class_names)
    for name, part in parts.items():
        summary["subsets"][name]["boxes"] = part.class_counts()
    if summary["missing"]:
        console.print(f"[yellow]{summary['missing']} images lack that grouping information; each stands alone[/yellow]")
    jsonout.emit_summary(summary, json_out)


@data_app.command("mix")
def mix(
    out: Path = typer.Argument(..., help="Folder for manifest.json, images.txt and the mixed dataset."),
    source: list[str] = typer.Option(..., "--source", help="[name=]path[:n=COUNT][:xREPEAT], e.g. site=site.xml:x8. Repeatable."),
    to: str = typer.Option(None, "--to", help=FORMATS_HELP + " Omit to write only the manifest and list."),
    seed: int = typer.Option(0, "--seed", help="Seed for subsampling and shuffling."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Build a training set from several sources with per-source ratios, recorded in manifest.json."""
    from sitesight.curation.mix import MixSource, mix_datasets, parse_source_spec, write_manifest

    sources = []
    for spec in source:
        name, path, count, repeat = parse_source_spec(spec)
        sources.append(MixSource(name, _read(path), count=count, repeat=repeat, origin=str(path)))
    mixed, manifest = mix_datasets(sources, seed=seed)
    write_manifest(manifest, out / "manifest.json")
    atomic.write_text(out / "images.txt", _path_lines([s.path for s in mixed.samples], out / "images.txt"))
    if to:
        _write(mixed, out / "dataset", to)
    jsonout.emit_summary({"images_out": manifest["images_out"], "sources": {r["name"]: r["images_out"] for r in manifest["sources"]}}, json_out)


@data_app.command("tile")
def tile(
    src: Path = typer.Argument(..., help="Dataset to read (format auto-detected)."),
    out: Path = typer.Argument(..., help="Folder for tiles (OUT/tiles) and the tiled dataset (OUT/dataset)."),
    to: str = typer.Option("coco", "--to", help=FORMATS_HELP),
    slice_size: str = typer.Option("640x640", "--slice", help="Tile WIDTHxHEIGHT in pixels."),
    overlap: float = typer.Option(0.2, "--overlap", help="Overlap between tiles as a fraction of the tile."),
    min_area_ratio: float = typer.Option(0.1, "--min-area-ratio", help="Keep a clipped box when this share of it remains."),
    keep_empty: bool = typer.Option(True, "--keep-empty/--no-empty", help="Also write tiles without boxes."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Cut a labelled set into overlapping tiles with clipped boxes (for training on slices)."""
    from sitesight.curation.tiling import tile_dataset

    dataset = _read(src)
    skipped: list[tuple[Path, str]] = []
    with _progress("tiling", len(dataset)) as advance:
        tiled = tile_dataset(dataset, out / "tiles", slice_wh=_wh(slice_size), overlap_ratio=(overlap, overlap),
                             min_area_ratio=min_area_ratio, keep_empty=keep_empty, progress=advance,
                             on_skip=lambda path, reason: skipped.append((path, reason)))  # fmt: skip
    _write(tiled, out / "dataset", to)
    summary = {"frames": len(dataset), "tiles": len(tiled), "boxes": tiled.box_count(), **_skipped_fields(skipped)}
    jsonout.emit_summary(summary, json_out)


@data_app.command("package")
def package(
    src: Path = typer.Argument(..., help="Dataset with pre-annotations (any format); with --images a folder or .txt list of images."),
    out: Path = typer.Argument(..., help="Folder for the task parts."),
    max_images: int = typer.Option(500, "--max-images", min=1, help="Largest number of images per CVAT task."),
    as_zip: bool = typer.Option(False, "--zip", help="Write each part as a zip instead of a folder."),
    prefix: str = typer.Option("part", "--prefix", help="Name prefix of the parts."),
    images: bool = typer.Option(False, "--images", help="SRC is a folder or .txt list of images without labels."),
    label: list[str] = typer.Option([], "--label", help="With --images: a label to declare in the task. Repeatable."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Also pack images the labels place outside the dataset folder (refused by default)."),
    json_out: Path = jsonout.JSON_OPTION,
) -> None:
    """Split images into CVAT task packages (images + annotations.xml CVAT imports)."""
    from sitesight.curation.packaging import images_dataset, package_cvat_tasks

    skipped: list[tuple[Path, str]] = []
    on_skip = lambda path, reason: skipped.append((path, reason))  # noqa: E731
    dataset = images_dataset(src, class_names=label, on_skip=on_skip) if images else _read(src)
    with _progress("packaging", len(dataset)) as advance:
        parts = package_cvat_tasks(dataset, out, max_images=max_images, as_zip=as_zip, prefix=prefix, progress=advance,
                                   on_skip=on_skip, allow_outside=allow_outside_root)  # fmt: skip
    summary = {"images": len(dataset) + len(skipped) if images else len(dataset), "parts": [str(p) for p in parts],
               **_skipped_fields(skipped)}
    jsonout.emit_summary(summary, json_out)

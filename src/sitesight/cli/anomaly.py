"""`sitesight train anomaly`, `sitesight predict anomaly`, `sitesight anomaly-parts`.

Thin wrappers over `sitesight.models.anomaly.pipeline` and `sitesight.synth.parts` (synthetic screws
in the MVTec AD layout, to try the detectors on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sitesight.cli.predict import predict_app
from sitesight.cli.train import train_app
from sitesight.errors import InputError
from sitesight.progress import make_console

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root

console = make_console()


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _layers(text: str | None, trained_features: bool) -> tuple[int, ...]:
    if not text:
        # Pretrained features: PatchCore's layer2+layer3. Random init: shallower levels keep local texture.
        return (2, 3) if trained_features else (1, 2)
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"expected comma-separated level indices, got {text!r}", where="--layers") from None


@train_app.command("anomaly")
def train_anomaly_cmd(
    normal_dir: Path = typer.Argument(..., help="Folder of normal (defect-free) images, searched recursively."),
    method: str = typer.Option("memory", "--method", help="ae (convolutional autoencoder) or memory (PatchCore-style)."),
    out: Path = typer.Option(Path("runs/anomaly"), "--out", "-o", help="Folder for model.safetensors (+ .json, history)."),
    image_size: int = typer.Option(None, "--image-size", help="Square input side (default: 64 for ae, 128 for memory)."),
    backbone: str = typer.Option("resnet18", "--backbone", help="memory: timm backbone name."),
    weights: Path = typer.Option(None, "--weights", help="memory: local backbone weights file (timm key layout)."),
    pretrained: str = typer.Option("auto", "--pretrained", help="memory without --weights: auto (ImageNet weights when in the local "
                                   "Hugging Face cache, else random init with a warning), on (fetch), off (random init)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1…"),
    layers: str = typer.Option(None, "--layers", help="memory: feature levels, e.g. 2,3 (default 2,3 with --weights, else 1,2)."),
    coreset_ratio: float = typer.Option(0.1, "--coreset-ratio", help="memory: share of normal patches kept."),
    depth: int = typer.Option(3, "--depth", help="ae: stride-2 stages."),
    bottleneck: int = typer.Option(16, "--bottleneck", help="ae: code channels."),
    error: str = typer.Option("l2", "--error", help="ae: per-pixel error, l2 or ssim."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="ae: training epochs."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of normals held out (whole groups) to set the threshold."),
    group_by: str = typer.Option("auto", "--group-by", help="Hold-out groups (part/session/camera): folder, image, auto, "
                                 "name:REGEX (first group of the file name) or a CSV with path,group."),
    false_alarm_rate: float = typer.Option(0.01, "--false-alarm-rate", help="Share of unseen normal images the threshold may flag."),
    confidence: float = typer.Option(0.95, "--confidence", help="Probability that the threshold keeps --false-alarm-rate on unseen normals."),
    strict: bool = typer.Option(False, "--strict-threshold", help="Refuse when the held-out normals are too few for the promise (default: warn)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit an anomaly detector on normal images only and store a threshold set from held-out normals."""
    from sitesight.models.anomaly.autoencoder import AutoencoderConfig
    from sitesight.models.anomaly.memory import MemoryConfig
    from sitesight.models.anomaly.pipeline import train_anomaly

    if method == "ae":
        config: AutoencoderConfig | MemoryConfig = AutoencoderConfig(image_size=image_size or 64, depth=depth, bottleneck=bottleneck, error=error)
    elif method == "memory":
        from sitesight.models.anomaly.memory import pretrained_cached

        trained = weights is not None or pretrained == "on" or (pretrained == "auto" and pretrained_cached(backbone))
        config = MemoryConfig(backbone=backbone, layers=_layers(layers, trained), image_size=image_size or 128, coreset_ratio=coreset_ratio)
    else:
        raise InputError(f"unknown method {method!r}; choose ae or memory", where="--method")
    with _bar(f"fitting {method}") as progress:
        summary = train_anomaly(
            normal_dir, out, config=config, holdout_fraction=holdout, false_alarm_rate=false_alarm_rate, confidence=confidence,
            group_by=group_by, strict=strict, weights=weights, pretrained=pretrained, epochs=epochs, seed=seed, device=device,
            progress=progress,
        )  # fmt: skip
    t = "none" if summary["threshold"] is None else f"{summary['threshold']:.6g}"
    console.print(
        f"{summary['method']}: fitted on {summary['fit_images']} normals, threshold {t} "
        f"from {summary['holdout_images']} held-out normals ({summary['holdout_groups']} groups) → {summary['checkpoint']}"
    )
    rule = summary.get("threshold_rule")
    if rule:
        console.print(f"threshold = held-out normal #{rule['k']} of {rule['n']} (ascending): flags at most "
                      f"{100 * rule['false_alarm_rate']:g}% of unseen normals with {100 * rule['achieved_confidence']:.1f}% confidence "
                      f"(needs >= {rule['min_normals']} held-out normals for {100 * rule['confidence']:g}%)")
    for message in summary["skipped"]:
        console.print(f"[yellow]skipped[/yellow] {message}")
    for message in summary["warnings"]:
        console.print(f"[yellow]warning[/yellow] {message}")


@predict_app.command("anomaly")
def predict_anomaly_cmd(
    images: Path = typer.Argument(..., help="Folder of images; MVTec-style sub-folders (good/, <defect>/) give labels."),
    model: Path = typer.Option(..., "--model", "-m", help="model.safetensors from `sitesight train anomaly`."),
    out: Path = typer.Option(Path("runs/anomaly_predictions"), "--out", "-o", help="scores.csv, summary.json, histogram.png, heatmaps.png."),
    threshold: float = typer.Option(None, "--threshold", help="Flag score ≥ this (default: the model's normal-only threshold)."),
    heatmaps: int = typer.Option(8, "--heatmaps", min=0, help="Rows in heatmaps.png (0 = none)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1…"),
) -> None:
    """Score images; scores.csv has path, label, defect, score, flagged (readable by `sitesight eval anomaly`)."""
    from sitesight.models.anomaly.pipeline import predict_anomaly

    with _bar("scoring") as progress:
        summary = predict_anomaly(model, images, out, threshold=threshold, heatmaps=heatmaps, batch_size=batch_size, device=device, progress=progress)
    console.print(f"{summary['images']} images, {summary['flagged']} flagged → {summary['scores_csv']}")
    if "metrics" in summary:
        m = summary["metrics"]
        console.print(f"image AUROC {m['auroc']:.4f}  AUPR {m['aupr']:.4f}" + (f"  pixel AUROC {summary['pixel_auroc']:.4f}" if "pixel_auroc" in summary else ""))
        table = Table("threshold", "value", "false alarms", "recall", "precision", "F1", title="thresholds side by side")
        for row in summary["thresholds"]:
            value = "—" if row["threshold"] is None else f"{row['threshold']:.5g}"
            table.add_row(row["name"], value, f"{100 * row['false_alarm_rate']:.1f}%", f"{row['recall']:.3f}", f"{row['precision']:.3f}", f"{row['f1']:.3f}")
        console.print(table)
        if m.get("tuned_on_test_labels"):
            console.print("[yellow]note[/yellow] no threshold stored or given: precision/recall/F1 above use the best-F1 threshold "
                          "chosen on these test labels (optimistic)")
    for name, row in summary.get("false_alarms", {}).items():
        line = f"false alarms on {name}: {row['flagged']}/{row['n']}" + (f" ({100 * row['rate']:.1f}%)" if row["rate"] is not None else "")
        if "bound_95" in row:
            ok = "within" if row["within_bound"] else "[red]ABOVE[/red]"
            line += f", {ok} the promised bound of {row['bound_95']} ({100 * row['promised_rate']:g}% at {100 * row['confidence']:g}%)"
        console.print(line)
    for message in summary["skipped"]:
        console.print(f"[yellow]skipped[/yellow] {message}")
    console.print(f"summary → {Path(out) / 'summary.json'}")


@app.command("anomaly-parts")
def anomaly_parts_cmd(
    out: Path = typer.Option(Path("parts"), "--out", "-o", help="Folder for the MVTec-style layout."),
    n_train: int = typer.Option(40, "--train", min=2, help="Normal training images."),
    n_test_normal: int = typer.Option(20, "--test-normal", min=0),
    n_test_defect: int = typer.Option(20, "--test-defect", min=0, help="Defective test images (scratch, dent, missing_thread, contamination in turn)."),
    size: int = typer.Option(128, "--size", min=32, help="Square image side in pixels."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write synthetic screws (normal and with planted defects and masks) in the MVTec AD layout."""
    from sitesight.synth.parts import write_parts_dataset

    root = write_parts_dataset(out, n_train=n_train, n_test_normal=n_test_normal, n_test_defect=n_test_defect, seed=seed, image_wh=(size, size))
    console.print(f"{n_train} train, {n_test_normal + n_test_defect} test images → {root} (train/good, test/<type>, ground_truth)")

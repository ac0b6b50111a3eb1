"""`sitesight train det|iou-head`, `sitesight rescore`, `sitesight eval iou-aware`: IoU-aware detection.

Each command parses its options, calls one library function, prints a short summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sitesight import atomic
from sitesight.cli import spec_options as so
from sitesight.cli.eval import eval_app
from sitesight.cli.train import DEVICE_HELP, _wh, read_train_val, train_app
from sitesight.errors import InputError
from sitesight.progress import make_console, progress_reporter

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root

console = make_console()


def _numbers(text: str, where: str, kind: type = float) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}", where=where) from None


@train_app.command("det")
def train_det(
    data: Path = typer.Argument(..., help="Training set: CVAT/COCO/YOLO/VOC file or folder."),
    val: Path = typer.Option(None, "--val", help="Validation set (COCO AP every epoch); default: a split of DATA."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of DATA's frames held out when --val is absent."),
    fmt: str = typer.Option(None, "--format", help="cvat, coco, yolo or voc (default: detected)."),
    backbone: str = typer.Option("resnet18.a1_in1k", "--backbone", help="timm CNN name (with a pretrained tag) or tiny_pyramid."),
    pretrained: bool = typer.Option(True, "--pretrained/--random-init", help="Start from the backbone's pretrained weights (timm / Hugging Face cache)."),
    weights: Path = typer.Option(None, "--weights", help="Local backbone weights (safetensors / torch) for offline sites; wins over --pretrained."),
    out_indices: str = typer.Option("2,3,4", "--out-indices", help="Backbone stages fed to the FPN."),
    extra_levels: int = typer.Option(2, "--extra-levels", min=0, max=2, help="P6/P7 levels above the last stage."),
    fpn_channels: int = typer.Option(256, "--fpn-channels", min=8),
    head_convs: int = typer.Option(4, "--head-convs", min=1, max=4),
    anchor_sizes: str = typer.Option("32,64,128,256,512", "--anchor-sizes", help="Base anchor size per pyramid level (px)."),
    aspect_ratios: str = typer.Option("0.5,1,2", "--aspect-ratios", help="Anchor height/width ratios."),
    input_size: str = typer.Option("800,1333", "--input-size", help="MIN,MAX: short side / long-side cap of the model's resize."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="S = p^alpha * IoU^(1-alpha); 1 = plain RetinaNet."),
    tile: str = typer.Option(None, "--tile", help="Train on slices WIDTHxHEIGHT of every frame (e.g. 640x640)."),
    epochs: int = typer.Option(12, "--epochs", min=1),
    batch_size: int = typer.Option(4, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or sgd."),
    warmup: int = typer.Option(50, "--warmup", min=0, help="Linear warm-up steps."),
    patience: int = typer.Option(4, "--patience", min=1, help="Stop after N epochs without a better validation AP."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Flip, scale jitter and photometric noise."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/det"), "--out", "-o", help="best.safetensors, last.pt, history.csv."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
) -> None:
    """Train an IoU-aware RetinaNet (IoU branch beside box regression) with COCO evaluation every epoch."""
    from sitesight.models.detector.iou_aware import DetectorConfig
    from sitesight.models.detector.train import DetTrainConfig, train_detector

    train_ds, val_ds = read_train_val(data, val, fmt, val_fraction=val_fraction, seed=seed)
    sizes = _numbers(input_size, "--input-size", int)
    if len(sizes) != 2:
        raise InputError(f"expected MIN,MAX, got {input_size!r}", where="--input-size")
    config = DetectorConfig(backbone=backbone, class_names=train_ds.class_names, out_indices=_numbers(out_indices, "--out-indices", int),
                            extra_levels=extra_levels, fpn_channels=fpn_channels, head_convs=head_convs,
                            anchor_sizes=_numbers(anchor_sizes, "--anchor-sizes"), aspect_ratios=_numbers(aspect_ratios, "--aspect-ratios"),
                            min_size=sizes[0], max_size=sizes[1], alpha=alpha)
    fit = DetTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, warmup_steps=warmup, patience=patience,
                         hflip=0.5 if augment else 0.0, scale=(0.8, 1.25) if augment else (1.0, 1.0), photometric=augment,
                         tile_wh=_wh(tile) if tile else None, device=device, seed=seed)
    result = train_detector(train_ds, val_ds if len(val_ds) else None, config=config, train_config=fit, out_dir=out, weights=weights,
                            resume=resume, pretrained=pretrained and backbone != "tiny_pyramid")
    console.print(json.dumps({k: v for k, v in result.to_dict().items() if k != "history"}, indent=1, default=str))


@train_app.command("iou-head")
def train_iou_head_cmd(
    run: Path = typer.Argument(..., help="A stored run of any detector (sitesight detect … --out RUN)."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth of the run's frames (CVAT/COCO/YOLO/VOC)."),
    fmt: str = typer.Option(None, "--format", help="cvat, coco, yolo or voc (default: detected)."),
    backbone: str = typer.Option("tiny_cnn", "--backbone", help="timm name or tiny_cnn."),
    frame_size: str = typer.Option("1280x720", "--frame-size", help="Network input WIDTHxHEIGHT (letterboxed)."),
    epochs: int = typer.Option(10, "--epochs", min=1),
    val_fraction: float = typer.Option(0.25, "--val-fraction", help="Last share of frames used to calibrate and tune alpha."),
    min_score: float = typer.Option(0.05, "--min-score", help="Stored boxes below this score are not used."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/iou_head"), "--out", "-o", help="iou_head.safetensors and summary.json."),
) -> None:
    """Train a RoI IoU head on a detector's stored predictions vs ground truth; tune alpha per class."""
    from sitesight.formats import read_dataset
    from sitesight.models.detector.iou_head import IoUHeadConfig
    from sitesight.models.detector.rescore import train_iou_head_on_run

    dataset = read_dataset(gt, fmt)
    config = IoUHeadConfig(backbone=backbone, class_names=dataset.class_names, frame_wh=_wh(frame_size))
    summary = train_iou_head_on_run(run, dataset, config=config, out_dir=out, val_fraction=val_fraction, epochs=epochs,
                                    min_score=min_score, seed=seed, device=device)
    cal = summary["calibration"]
    console.print(f"IoU head → {summary['checkpoint']}; alphas {summary['alphas']}; validation Spearman {cal['spearman']:.3f}, "
                  f"ECE {cal['ece']:.3f}")


@app.command("rescore")
def rescore_cmd(
    run: Path = typer.Argument(..., help="A stored run of any detector."),
    head: Path = typer.Option(..., "--head", help="IoU head checkpoint (sitesight train iou-head)."),
    out: Path = typer.Option(..., "--out", "-o", help="The rescored run folder."),
    alpha: str = typer.Option(None, "--alpha", help="One alpha, or one per class (comma list); default: the head's tuned alphas."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    spec: str = so.SPEC,
    conf: float = typer.Option(None, "--conf", help="Confidence on the rescored raw boxes before merging (default 0)."),
    method: str = typer.Option(None, "--method", help="Merge method: nms (default) | nmm | greedy_nmm."),
    metric: str = typer.Option(None, "--metric", help="Merge overlap metric: iou (default) | ios."),
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
) -> None:
    """Add predicted IoU to every stored box and rescore S = p^alpha * IoU^(1-alpha), before merging.

    The post-processing options name how the rescored boxes are meant to be merged: OUT/manifest.json
    records them as its spec (``eval iou-aware OUT`` starts from it) and the final boxes per frame
    before and after rescoring are counted under it.
    """
    from sitesight.models.detector.rescore import rescore_run
    from sitesight.sliced.alpha import DEFAULT_SPEC
    from sitesight.sliced.postprocess import postprocess
    from sitesight.sliced.store import load_run

    alphas = None if alpha is None else _numbers(alpha, "--alpha")
    s = so.spec_of(spec, conf, method, metric, threshold, gate, class_map, class_agnostic, border, default=DEFAULT_SPEC)
    source = load_run(run)
    console.print(f"post-processing: {s}")
    with progress_reporter("rescore", len(source.frames), unit="frames", console=make_console(stderr=True)) as progress:
        result = rescore_run(run, head, out, alphas=alphas if alphas is None or len(alphas) > 1 else alphas[0], device=device,
                             on_progress=progress.advance, spec=s)
    before, after = len(postprocess(source, s).table), len(postprocess(result, s).table)
    console.print(f"{len(result.frames)} frames rescored ({len(result.skipped)} skipped) → {result.run_dir}; "
                  f"final boxes under the spec: {before} before, {after} after rescoring")


@eval_app.command("iou-aware")
def eval_iou_aware(
    run: Path = typer.Argument(..., help="A stored run whose boxes carry cls_score and iou_pred."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth (CVAT/COCO/YOLO/VOC)."),
    alpha: str = typer.Option("0:1:0.1", "--alpha", help="start:stop:step (stop included) or a comma list."),
    fmt: str = typer.Option(None, "--format", help="Ground-truth format (default: detected)."),
    spec: str = so.SPEC,
    conf: float = typer.Option(None, "--conf", help="Confidence on the rescored raw boxes before merging (default 0)."),
    method: str = typer.Option(None, "--method", help="Merge method: nms (default) | nmm | greedy_nmm."),
    metric: str = typer.Option(None, "--metric", help="Merge overlap metric: iou (default) | ios."),
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
    oracle: bool = typer.Option(True, "--oracle/--no-oracle", help="Also rank with the true IoU against ground truth."),
    json_out: Path = typer.Option(None, "--json", help="Also write the result as JSON here."),
    csv_out: Path = typer.Option(None, "--csv", help="Also write the rows as CSV here."),
) -> None:
    """Re-rank stored predictions for each alpha and report AP, AP50, AP75 (+ the true-IoU oracle); no model runs."""
    from rich.table import Table

    from sitesight.formats import read_dataset
    from sitesight.sliced.alpha import DEFAULT_SPEC, alpha_sweep_run
    from sitesight.sliced.sweep import parse_range

    try:
        alphas = parse_range(alpha)
    except ValueError as exc:
        raise InputError(f"--alpha: {exc}") from None
    spec = spec or so.recorded_spec(run, console)  # what `rescore` was told the boxes are meant for
    s = so.spec_of(spec, conf, method, metric, threshold, gate, class_map, class_agnostic, border, default=DEFAULT_SPEC)
    console.print(f"post-processing: {s}")
    result = alpha_sweep_run(run, read_dataset(gt, fmt), alphas, spec=s, oracle=oracle)
    table = Table(title=f"IoU-aware re-ranking: {result.frames} frames, {result.boxes} raw boxes")
    for col in ("alpha", "IoU", "AP", "AP50", "AP75"):
        table.add_column(col, justify="right")
    for r in result.rows:
        table.add_row(f"{r.alpha:g}", "true (oracle)" if r.oracle else "predicted", f"{r.AP:.4f}", f"{r.AP50:.4f}", f"{r.AP75:.4f}")
    console.print(table)
    best = result.best()
    console.print(f"best alpha {best.alpha:g}: AP {best.AP:.4f}, AP75 {best.AP75:.4f}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(json_out, json.dumps({**result.to_dict(), "spec": s.to_dict()}, indent=1))
    if csv_out is not None:
        result.save_csv(csv_out)

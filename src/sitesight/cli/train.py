"""`sitesight train roi|cls`: train a RoI attribute head or an image classifier (needs the [torch] extra).

Other model families add their commands to `train_app` (``sitesight train anomaly``…).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sitesight.errors import InputError

train_app = typer.Typer(help="Train models: RoI attribute heads, image classifiers.", no_args_is_help=True)

DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps."
GRID_KEYS = ("lr", "resize", "batch_size", "epochs", "augment", "backbone", "loss", "freeze_epochs", "weighted_sampler")


def _wh(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"expected WIDTHxHEIGHT, got {text!r}", where="--frame-size") from None
    return w, h


def _floats(text: str | None, where: str) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}", where=where) from None


def read_train_val(data: Path, val: Path | None, fmt: str | None, *, val_fraction: float, seed: int):
    """Training and validation datasets: ``val`` when given, else a seeded split of ``data``."""
    from sitesight.formats import read_dataset

    train_ds = read_dataset(data, fmt)
    if val is not None:
        return train_ds, read_dataset(val, fmt)
    from sitesight.curation.split import split_dataset

    parts = split_dataset(train_ds, fractions={"train": 1 - val_fraction, "val": val_fraction}, group_by=(), seed=seed)
    return parts["train"], parts["val"]


@train_app.command("roi")
def train_roi(
    data: Path = typer.Argument(..., help="Training set: CVAT/COCO/YOLO/VOC file or folder."),
    val: Path = typer.Option(None, "--val", help="Validation set (picks the best epoch); default: a grouped split of DATA."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of DATA's frames for validation when --val is absent."),
    test: Path = typer.Option(None, "--test", help="Test set, scored once with the best epoch; default: a split of DATA when --val is absent."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.0, help="Share of DATA's frames for the test split when --val is absent "
                                        "(0: the validation set is scored, which also picked the epoch: optimistic)."),
    expand: str = typer.Option("auto", "--expand", help="Box expansion before pooling, x=WIDTH_FACTOR,top=H_ABOVE,bottom=H_BELOW (fractions of "
                               "the box height); auto: x=1,top=0.2,bottom=1.5 for person boxes (rope below), x=1.1,top=0.1,bottom=0.1 otherwise (head/helmet)."),
    fmt: str = typer.Option(None, "--format", help="cvat, coco, yolo or voc (default: detected)."),
    box_class: str = typer.Option(None, "--box-class", help="Class whose boxes carry the attribute (default: the only class whose boxes carry it)."),
    attribute: str = typer.Option(None, "--attribute", help="Box attribute to learn, missing = unknown (default: the only attribute the boxes carry)."),
    backbone: str = typer.Option("vit_small_patch16_dinov3.lvd1689m", "--backbone", help="timm name (with a pretrained tag), hf-hub:ORG/NAME, or tiny_cnn."),
    pretrained: bool = typer.Option(True, "--pretrained/--random-init", help="Start from the backbone's pretrained weights (timm / Hugging Face cache; downloaded once)."),
    weights: Path = typer.Option(None, "--weights", help="Local backbone weights (safetensors / torch, timm layout) for offline sites; wins over --pretrained."),
    frame_size: str = typer.Option("auto", "--frame-size", help="Network input WIDTHxHEIGHT (letterboxed); auto = the frames' median size, long side <= 1280."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Frames per batch."),
    lr: float = typer.Option(5e-4, "--lr", help="Learning rate of the new head (AdamW, cosine schedule)."),
    backbone_lr_scale: float = typer.Option(0.1, "--backbone-lr-scale", min=0.0, help="Backbone rate = --lr x this (a pretrained backbone takes smaller steps)."),
    patience: int = typer.Option(8, "--patience", min=1),
    class_weights: str = typer.Option(None, "--class-weights", help="e.g. 1,1.5,1.5 (default: 1 for unknown, 1.5 others)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Photometric, camera and erasing augmentation."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use only the first N frames of each set (0 = all)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision on CUDA (bfloat16, else float16)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (CUDA; the first epoch pays for it)."),
    workers: int = typer.Option(2, "--workers", min=0, help="DataLoader worker processes decoding frames beside the model."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/roi"), "--out", "-o", help="Checkpoint, history, predictions, metrics."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
) -> None:
    """Train a RoI attribute head (backbone once per frame, RoIAlign on expanded boxes) and evaluate it.

    One line per epoch goes to stderr; the summary (JSON) to stdout.
    """
    from sitesight.models.attribute import box_expansion, default_frame_wh, roi_target, train_and_evaluate_roi
    from sitesight.models.augment import Augment
    from sitesight.models.data import attribute_classes
    from sitesight.models.roi_head import RoIHeadConfig
    from sitesight.models.train import FitConfig

    test_ds = None
    if val is None and test is None and test_fraction > 0:
        from sitesight.curation.split import split_dataset
        from sitesight.formats import read_dataset

        if val_fraction + test_fraction >= 1:
            raise InputError(f"--val-fraction {val_fraction:g} + --test-fraction {test_fraction:g} leave nothing to train on", where="--test-fraction")
        parts = split_dataset(read_dataset(data, fmt), fractions={"train": 1 - val_fraction - test_fraction, "val": val_fraction,
                                                                 "test": test_fraction}, group_by=(), seed=seed)
        train_ds, val_ds, test_ds = parts["train"], parts["val"], parts["test"]
    else:
        train_ds, val_ds = read_train_val(data, val, fmt, val_fraction=val_fraction, seed=seed)
        if test is not None:
            from sitesight.formats import read_dataset

            test_ds = read_dataset(test, fmt)
    if limit:
        train_ds, val_ds = (d.with_samples(d.samples[:limit]) for d in (train_ds, val_ds))
        test_ds = None if test_ds is None else test_ds.with_samples(test_ds.samples[:limit])
    box_class, attribute = roi_target(train_ds, box_class=box_class, attribute=attribute)
    names = attribute_classes(train_ds, attribute)
    weights_tuple = _floats(class_weights, "--class-weights") or (1.0,) + (1.5,) * (len(names) - 1)
    frame_wh = default_frame_wh(train_ds) if frame_size == "auto" else _wh(frame_size)
    config = RoIHeadConfig(backbone=backbone, class_names=names, frame_wh=frame_wh, attribute=attribute, box_class=box_class,
                           expansion=box_expansion(expand, box_class))
    fit_config = FitConfig(epochs=epochs, batch_size=batch_size, lr=lr, backbone_lr_scale=backbone_lr_scale, patience=patience,
                           class_weights=weights_tuple, device=device, amp=amp, compile=compile_model, num_workers=workers, seed=seed)
    if weights is not None:
        from sitesight.models.backbone import load_weights_file

        load_weights_file(weights)  # fail before training when the file is unreadable
    summary = train_and_evaluate_roi(train_ds, val_ds, test=test_ds, config=config, fit_config=fit_config, out_dir=out,
                                     augment=Augment() if augment else None, resume=resume, weights=weights, pretrained=pretrained)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k not in ("metrics", "history")}, indent=1))
    b = summary["baselines"]
    typer.echo(f"{summary['evaluated_on']}: macro F1 {summary['macro_f1']:.3f}, accuracy {summary['accuracy']:.3f} | majority "
               f"({b['majority']['predicts']}) macro F1 {b['majority']['macro_f1']:.3f}, accuracy {b['majority']['accuracy']:.3f} | "
               f"prior macro F1 {b['prior']['macro_f1']:.3f} ({summary['selection']})", err=True)


@train_app.command("cls")
def train_cls(
    data: Path = typer.Argument(..., help="Folder-per-class images: DATA/<class>/<image>."),
    val: Path = typer.Option(None, "--val", help="Validation folder; default: a grouped split of DATA."),
    val_fraction: float = typer.Option(0.25, "--val-fraction", help="Share held out when --val is absent."),
    group_pattern: str = typer.Option(None, "--group-pattern", help="Regex with a (?P<source>…) group naming the original of augmented copies."),
    backbone: str = typer.Option("resnet18.a1_in1k", "--backbone", help="timm name (with a pretrained tag), hf-hub:ORG/NAME, or tiny_cnn."),
    pretrained: bool = typer.Option(True, "--pretrained/--random-init", help="Start from the backbone's pretrained weights (timm / Hugging Face cache)."),
    weights: Path = typer.Option(None, "--weights", help="Local backbone weights (safetensors / torch) for offline sites; wins over --pretrained."),
    resize: int = typer.Option(224, "--resize", min=8, help="Square input size."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    patience: int = typer.Option(8, "--patience", min=1),
    freeze_epochs: int = typer.Option(0, "--freeze-epochs", min=0, help="Train only the new head for the first N epochs."),
    loss: str = typer.Option("ce", "--loss", help="ce or focal."),
    balance: str = typer.Option("weights", "--balance", help="Long tails: weights (inverse frequency), sampler, or none."),
    augment: bool = typer.Option(True, "--augment/--no-augment"),
    grid: list[str] = typer.Option(None, "--grid", help=f"KEY=V1,V2 (repeatable); keys: {', '.join(GRID_KEYS)}."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision on CUDA (bfloat16, else float16)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (CUDA)."),
    workers: int = typer.Option(2, "--workers", min=0, help="DataLoader worker processes decoding images beside the model."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/cls"), "--out", "-o"),
    resume: bool = typer.Option(False, "--resume"),
) -> None:
    """Fine-tune an image classifier (new head on a timm backbone); --grid compares settings in one table."""
    import numpy as np

    from sitesight.models.augment import Augment
    from sitesight.models.classifier import ClassifierConfig, train_and_evaluate_classifier
    from sitesight.models.data import scan_image_folder, split_images
    from sitesight.models.grid import parse_grid, run_grid
    from sitesight.models.train import FitConfig

    if balance not in ("weights", "sampler", "none"):
        raise InputError(f"--balance must be weights, sampler or none, got {balance!r}")
    paths, labels, names = scan_image_folder(data)
    if val is not None:
        vpaths, vlabels, vnames = scan_image_folder(val)
        if vnames != names:
            raise InputError(f"class folders differ from DATA's {list(names)}: {list(vnames)}", val)
        train, valid = (paths, labels), (vpaths, vlabels)
    else:
        train, valid = split_images(paths, labels, val_fraction=val_fraction, group_pattern=group_pattern, seed=seed)

    def one(overrides: dict, name: str) -> dict:
        o = {"lr": lr, "resize": resize, "batch_size": batch_size, "epochs": epochs, "augment": augment, "backbone": backbone,
             "loss": loss, "freeze_epochs": freeze_epochs, "weighted_sampler": balance == "sampler", **overrides}
        counts = np.bincount(train[1], minlength=len(names)).astype(float)
        weights_tuple = tuple(float(v) for v in counts.sum() / (len(names) * np.maximum(counts, 1))) if balance == "weights" else None
        try:  # a --grid value (or option) the configs refuse is the user's input: one line naming it
            fit_config = FitConfig(epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=float(o["lr"]), patience=patience, class_weights=weights_tuple,
                                   loss=o["loss"], weighted_sampler=bool(o["weighted_sampler"]), freeze_backbone_epochs=int(o["freeze_epochs"]), device=device,
                                   amp=amp, compile=compile_model, num_workers=workers, seed=seed)
            model = ClassifierConfig(backbone=o["backbone"], class_names=names, image_size=int(o["resize"]))
        except ValueError as exc:
            raise InputError(f"{'--grid ' + name if grid else 'options'}: {str(exc).split(': ', 1)[-1]}") from None
        return train_and_evaluate_classifier(train, valid, model=model, fit_config=fit_config, out_dir=out / name if grid else out,
                                             weights=weights, augment=Augment() if o["augment"] else None, resume=resume, pretrained=pretrained)

    if grid:
        rows = run_grid(parse_grid(grid, GRID_KEYS), one, out / "grid.csv")
        typer.echo((out / "grid.md").read_text())
        typer.echo(f"{len(rows)} runs; table in {out / 'grid.csv'}")
    else:
        typer.echo(json.dumps(one({}, "base"), indent=1))

"""Box attributes with the RoI head: train from a `Dataset`, predict onto `Detections`, write the CSV.

`train_roi_head` picks the boxes of one class (e.g. ``person``) and one attribute (e.g.
``safety_rope``), maps the attribute's values to classes (``unknown`` first; boxes without the
attribute are ``unknown``) and runs `sitesight.models.train.fit`. `predict_roi` adds
``<attribute>_probs`` ``(N, K)`` float32 (NaN rows for other classes) and ``<attribute>_pred``
(object array of class names, ``None`` for other classes) to each frame's `Detections`.
`write_attribute_csv` writes one row per box in the layout ``sitesight eval cls`` reads:
``image, box_index, x1, y1, x2, y2, score, label, pred`` and one probability column per class.
Prediction and the CSV live in `sitesight.models.attribute_predict` (re-exported here).

The box expansion fits the attribute (`box_expansion`): a safety rope hangs below a worker, so a
``person`` box grows +1.5 h downwards by default; a helmet sits inside its ``head`` box, so any
other class gets a near-identity expansion (growing a head box by 1.5 h turns it into a torso crop).
`train_and_evaluate_roi` scores the best epoch on a test split the epoch selection never saw (or
says that the validation set did both), next to the majority-class and prior baselines
(`baseline_metrics`) that a head has to beat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sitesight import atomic
from sitesight.dataset import Dataset
from sitesight.errors import InputError
from sitesight.models.attribute_predict import attribute_labels, predict_roi, predict_roi_dataset, write_attribute_csv
from sitesight.models.augment import Augment
from sitesight.models.backbone import describe_init, warn_if_random
from sitesight.models.data import RoiFrameDataset, roi_collate, roi_items_from_dataset
from sitesight.models.roi_head import BoxExpansion, RoIHeadConfig, build_roi_head
from sitesight.models.train import FitConfig, FitResult, fit

__all__ = ["roi_target", "default_frame_wh", "roi_dataset", "train_roi_head", "train_and_evaluate_roi", "predict_roi", "predict_roi_dataset",
           "attribute_labels", "write_attribute_csv", "box_expansion", "baseline_metrics", "PERSON_EXPANSION", "PART_EXPANSION"]

PERSON_EXPANSION = BoxExpansion(x=1.0, top=0.2, bottom=1.5)  # harness and anchor line below the worker
PART_EXPANSION = BoxExpansion(x=1.1, top=0.1, bottom=0.1)  # the attribute lies inside the box (head → helmet)


def box_expansion(text: str, box_class: str) -> BoxExpansion:
    """``--expand``: ``"auto"`` (`PERSON_EXPANSION` for a ``person`` class, else `PART_EXPANSION`) or
    ``"x=1,top=0.2,bottom=1.5"`` (missing keys keep the auto values).

    Raises:
        InputError: an unknown key, a value that is not a number, or a negative one.
    """
    base = PERSON_EXPANSION if "person" in box_class.lower() else PART_EXPANSION
    text = text.strip()
    if text in ("", "auto"):
        return base
    values = {"x": base.x, "top": base.top, "bottom": base.bottom}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in values:
            raise InputError(f"expected x=..., top=..., bottom=... or auto, got {part!r}", where="--expand")
        try:
            values[key] = float(value)
        except ValueError:
            raise InputError(f"{key} must be a number, got {value!r}", where="--expand") from None
        if values[key] < 0 or (key == "x" and values[key] == 0):
            raise InputError(f"{key} must be {'> 0' if key == 'x' else '>= 0'}, got {values[key]:g}", where="--expand")
    return BoxExpansion(**values)


def baseline_metrics(y_eval: np.ndarray, y_train: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, float | str | None]]:
    """What a head must beat on ``y_eval`` (``(N,)`` int class indices), from the training labels alone.

    * ``majority``: every box gets the training set's most frequent class (`classification_metrics`
      of that constant prediction: its accuracy, macro F1 and macro AP);
    * ``prior``: every box gets the training class frequencies as scores (macro AP = the classes'
      prevalence: an uninformative ranking), and the expected accuracy / macro F1 of guessing each
      class at its training frequency (``sum p_k q_k`` and ``mean 2 p_k q_k / (p_k + q_k)``, ``p``
      the evaluation and ``q`` the training frequencies).

    Macro averages run over the classes present in ``y_eval`` (``macro_active``).
    """
    from sitesight.evaluation.classification import classification_metrics

    k = len(class_names)
    y_eval, y_train = np.asarray(y_eval, np.int64), np.asarray(y_train, np.int64)
    q = np.bincount(y_train, minlength=k) / max(1, y_train.size)
    p = np.bincount(y_eval, minlength=k) / max(1, y_eval.size)
    majority = int(np.argmax(q))
    onehot = np.zeros((y_eval.size, k), np.float32)
    onehot[:, majority] = 1
    maj = classification_metrics(y_eval, onehot, class_names).to_dict()
    pri = classification_metrics(y_eval, np.tile(q.astype(np.float32), (y_eval.size, 1)), class_names).to_dict()
    active = p > 0
    f1 = np.where(p + q > 0, 2 * p * q / np.where(p + q > 0, p + q, 1), 0.0)
    return {
        "majority": {"predicts": str(class_names[majority]), "accuracy": maj["accuracy"], "macro_f1": maj["macro_active"]["f1"],
                     "macro_ap": maj["macro_active"]["ap"]},
        "prior": {"predicts": "random at the training frequencies", "accuracy": float((p * q).sum()),
                  "macro_f1": float(f1[active].mean()) if active.any() else None, "macro_ap": pri["macro_active"]["ap"]},
    }


def roi_target(dataset: Dataset, *, box_class: str | None = None, attribute: str | None = None) -> tuple[str, str]:
    """``(box_class, attribute)`` for a RoI head: the given ones, or the only ones the data allows.

    The attribute defaults to the one choice attribute (radio / select; else checkbox; else any)
    some box carries; the box class to the one class whose boxes carry it.

    Raises:
        InputError: none or several candidates (the message lists them and names the option to pass),
            or a given name the data does not have.
    """
    carried: dict[str, set[str]] = {}  # attribute -> classes whose boxes carry it
    for sample in dataset.samples:
        for name, values in sample.gt.attributes.items():
            if values.dtype.kind == "f":
                has = ~np.isnan(values)
            else:
                has = np.array([v is not None and v == v for v in values], bool) if values.dtype == object else np.ones(len(values), bool)
            if has.any():
                classes = carried.setdefault(name, set())
                classes.update(dataset.class_names[int(c)] for c in np.unique(sample.gt.class_id[has]))
    schema = dataset.attribute_schema
    # a choice among values (radio / select) is what a head learns; checkboxes are flags, cvat_* bookkeeping
    categorical = (sorted(n for n in carried if n in schema and schema[n].input_type in ("radio", "select"))
                   or sorted(n for n in carried if n in schema and schema[n].is_categorical)
                   or sorted(n for n in carried if not n.startswith("cvat_")))
    if attribute is None:
        if len(categorical) != 1:
            raise InputError(f"pass --attribute: the boxes carry {categorical or 'no attributes'}", where="--attribute")
        attribute = categorical[0]
    elif attribute not in carried:
        raise InputError(f"no box carries attribute {attribute!r}; the boxes carry {sorted(carried) or 'none'}", where="--attribute")
    if box_class is None:
        classes = sorted(carried[attribute])
        if len(classes) != 1:
            raise InputError(f"pass --box-class: boxes of {classes} carry {attribute!r}", where="--box-class")
        box_class = classes[0]
    elif box_class not in dataset.class_names:
        raise InputError(f"box class {box_class!r} not among {list(dataset.class_names)}", where="--box-class")
    return box_class, attribute


def default_frame_wh(dataset: Dataset, *, max_side: int = 1280, multiple: int = 32) -> tuple[int, int]:
    """A network input ``(width, height)`` for ``dataset``'s frames: their median size, shrunk so the long
    side is at most ``max_side`` (a pretrained ViT-S/16 at 1280 px sees 80x45 patches), rounded to ``multiple``."""
    sizes = np.array([s.image_wh for s in dataset.samples if s.image_wh[0] > 0 and s.image_wh[1] > 0], np.float64).reshape(-1, 2)
    if not len(sizes):
        return (max_side, max_side * 9 // 16 // multiple * multiple)
    w, h = np.median(sizes, axis=0)
    scale = min(1.0, max_side / max(w, h))
    return tuple(max(multiple, int(round(v * scale / multiple)) * multiple) for v in (w, h))  # type: ignore[return-value]


def roi_dataset(
    dataset: Dataset,
    config: RoIHeadConfig,
    *,
    images: Sequence[np.ndarray] | None = None,
    train: bool = False,
    augment: Augment | None = None,
    seed: int = 0,
) -> RoiFrameDataset:
    """The frames of ``dataset`` that hold ``config.box_class`` boxes, as a `RoiFrameDataset`.

    ``images`` (aligned with ``dataset.samples``) replaces reading the files, e.g. for in-memory
    synthetic frames. ``train=True`` switches on box jitter, ``augment`` and the config's
    ``train_crop_wh`` windows.
    """
    indices, boxes, labels = roi_items_from_dataset(
        dataset, box_class=config.box_class, attribute=config.attribute, class_names=config.class_names,
        min_height=config.min_height,
    )
    frames = [images[i] if images is not None else dataset.image_path(dataset.samples[i]) for i in indices]
    return RoiFrameDataset(
        frames,
        boxes,
        labels,
        frame_wh=config.frame_wh,
        expansion=config.expansion,
        jitter=config.jitter if train else None,
        augment=augment if train else None,
        crop_wh=config.train_crop_wh if train else None,
        seed=seed,
    )


def train_roi_head(
    train: Dataset,
    val: Dataset | None,
    *,
    config: RoIHeadConfig,
    fit_config: FitConfig,
    out_dir: Path | str,
    images: tuple[Sequence[np.ndarray] | None, Sequence[np.ndarray] | None] = (None, None),
    augment: Augment | None = None,
    resume: bool = False,
    weights: Path | str | None = None,
    pretrained: bool = False,
) -> FitResult:
    """Train a RoI attribute head; the best epoch (validation macro AP) is ``out_dir/best.safetensors``.

    Args:
        train / val: datasets with ``config.box_class`` boxes carrying ``config.attribute``.
        config: architecture, classes (see `attribute_classes`), input size, expansion, jitter.
        fit_config: optimisation (defaults: AdamW 5e-5, wd 0.01, batch 8 frames, 20 epochs, patience 8).
        images: optional in-memory frames for ``(train, val)``, aligned with their samples.
        augment: photometric / camera / erasing augmentation for training; ``None`` = none.
        weights / pretrained: the backbone's starting weights, a local file or the timm name's
            pretrained weights (`sitesight.models.backbone.build_backbone`); neither = random init,
            which is warned about and recorded as ``backbone_init`` in the checkpoint.
    """
    train_set = roi_dataset(train, config, images=images[0], train=True, augment=augment, seed=fit_config.seed)
    if len(train_set) == 0:
        raise InputError(f"no {config.box_class!r} boxes in the training set")
    val_set = None if val is None else roi_dataset(val, config, images=images[1])
    torch.manual_seed(fit_config.seed)
    init = describe_init(config.backbone, weights=weights, pretrained=pretrained)
    warn_if_random(init, config.backbone)
    model = build_roi_head(config, weights=weights, pretrained=pretrained)
    return fit(model, train_set, val_set, collate=roi_collate, config=fit_config, out_dir=out_dir,
               model_config={**config.to_dict(), "backbone_init": init}, resume=resume)


def train_and_evaluate_roi(
    train: Dataset,
    val: Dataset,
    *,
    config: RoIHeadConfig,
    fit_config: FitConfig,
    out_dir: Path | str,
    test: Dataset | None = None,
    images: tuple[Sequence[np.ndarray] | None, Sequence[np.ndarray] | None] = (None, None),
    augment: Augment | None = None,
    resume: bool = False,
    weights: Path | str | None = None,
    pretrained: bool = False,
) -> dict:
    """Train on ``train`` (``val`` picks the best epoch), then predict ``test`` with the best checkpoint and score it.

    Without ``test`` the validation set is scored, and the metrics say that it also picked the
    epoch (optimistic). Writes into ``out_dir``: ``best.safetensors`` (+ ``.json``),
    ``history.csv/json``, ``predictions.csv`` (the ``sitesight eval cls`` layout, of the scored set)
    and ``metrics.json`` (`classification_metrics` of the best model, ``evaluated_on``, ``selection``,
    the majority-class and prior ``baselines`` (`baseline_metrics`) and ``backbone_init``). Returns a
    summary dict with the same headline numbers.
    """
    import json

    from sitesight.evaluation.classification import classification_metrics
    from sitesight.models.checkpoint import load_checkpoint

    out_dir = Path(out_dir)
    if test is not None and not any((lab >= 0).any() for lab in attribute_labels(test, config)):
        logging.getLogger(__name__).warning("the test split holds no %r box: scoring the validation set instead (optimistic)", config.box_class)
        test = None
    result = train_roi_head(train, val, config=config, fit_config=fit_config, out_dir=out_dir, images=images, augment=augment, resume=resume,
                            weights=weights, pretrained=pretrained)
    model, stored = load_checkpoint(result.checkpoint, device="cpu")
    scored, scored_images = (test, None) if test is not None else (val, images[1])
    frames = scored_images if scored_images is not None else [scored.image_path(s) for s in scored.samples]
    box_class_id = scored.class_index(config.box_class)
    preds = predict_roi(model, frames, [s.gt for s in scored.samples], box_class_id=box_class_id, batch_size=fit_config.batch_size,
                        device=fit_config.device)
    labels = attribute_labels(scored, config)
    names = [str(scored.image_path(s)) for s in scored.samples]
    write_attribute_csv(out_dir / "predictions.csv", names, preds, attribute=config.attribute, class_names=config.class_names, labels=labels)
    keep = [lab >= 0 for lab in labels]
    y = np.concatenate([lab[k] for lab, k in zip(labels, keep, strict=True)])
    probs = np.concatenate([d.attributes[f"{config.attribute}_probs"][k] for d, k in zip(preds, keep, strict=True)])
    metrics = classification_metrics(y, probs.reshape(len(y), len(config.class_names)), config.class_names).to_dict()
    y_train = np.concatenate([lab[lab >= 0] for lab in attribute_labels(train, config)] or [np.zeros(0, np.int64)])
    metrics["evaluated_on"] = "test" if test is not None else "val"
    metrics["selection"] = ("best epoch picked on val; scored on a test split it never saw" if test is not None
                            else "val picked the best epoch AND is scored here: optimistic (give a test split)")
    metrics["baselines"] = baseline_metrics(y, y_train, config.class_names)
    metrics["expansion"] = {"x": config.expansion.x, "top": config.expansion.top, "bottom": config.expansion.bottom}
    metrics["backbone_init"] = stored.get("backbone_init", "unknown")
    atomic.write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    return {
        "checkpoint": str(result.checkpoint),
        "backbone_init": metrics["backbone_init"],
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "evaluated_on": metrics["evaluated_on"],
        "selection": metrics["selection"],
        "boxes": {"train": int(y_train.size), "evaluated": int(len(y))},
        "val_boxes": int(len(y)),  # the scored boxes (test split when given); name kept for callers
        "accuracy": metrics["accuracy"],
        "macro_ap": metrics["macro_active"]["ap"],
        "macro_f1": metrics["macro_active"]["f1"],
        "baselines": metrics["baselines"],
        "expansion": metrics["expansion"],
        "metrics": metrics,
        "history": result.history,
    }

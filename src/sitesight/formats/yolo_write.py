"""Writing one Ultralytics YOLO dataset folder (``images/<split>``, ``labels/<split>``, ``data.yaml``) that
Ultralytics' own checker accepts from any working directory; the reader is `sitesight.formats.yolo`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from sitesight import atomic
from sitesight.boxes import xyxy_to_cxcywh_norm
from sitesight.dataset import Dataset
from sitesight.images import IMAGE_MODES, place_image
from sitesight.pathsafe import output_path, safe_component

__all__ = ["write_yolo"]

logger = logging.getLogger(__name__)

_SPLIT_ALIASES = {"valid": "val", "validation": "val", "eval": "val", "testing": "test", "training": "train"}
_YAML_HEADER = (
    "# Written by sitesight. No 'path:' on purpose: Ultralytics then resolves the folders below from\n"
    "# this file's folder, from any working directory and after the folder is moved.\n"
)


def _split_name(subset: str | None) -> str:
    name = (subset or "train").strip() or "train"
    low = name.lower()
    return _SPLIT_ALIASES.get(low, low if low in ("train", "val", "test") else name)


def _yaml_splits(written: list[str]) -> dict[str, str | list[str]]:
    """``train``/``val``/``test`` entries of ``data.yaml`` for the split folders written.

    Ultralytics requires ``train`` and ``val``: subsets other than val/test train; without a val
    subset, ``val`` points at the training folders (announced), so the yaml loads as written.
    """
    folders = {s: f"images/{s}" for s in written}
    train = [folders[s] for s in written if s not in ("val", "test")]
    val = [folders["val"]] if "val" in folders else []
    test = [folders["test"]] if "test" in folders else []
    if not train:
        train = val or test or ["images/train"]
        logger.warning("no training subset; data.yaml 'train' points at %s", ", ".join(train))
    if not val:
        val = train
        logger.warning("no val subset; data.yaml 'val' points at the training images (%s)", ", ".join(train))
    out: dict[str, str | list[str]] = {"train": train[0] if len(train) == 1 else train,
                                       "val": val[0] if len(val) == 1 else val}  # fmt: skip
    if test:
        out["test"] = test[0]
    return out


def write_yolo(dataset: Dataset, out_dir: Path | str, *, images: str = "copy", allow_outside: bool = False) -> Path:
    """Write one Ultralytics dataset folder: ``images/<split>/``, ``labels/<split>/``, ``data.yaml``.

    ``yolo train data=OUT/data.yaml`` takes the result as written, from any working directory:
    the yaml has ``train`` and ``val`` (``val`` = the training folders when the dataset has no
    val subset, with a warning), ``test`` when present, ``names`` as ``{id: name}`` in class order,
    and no ``path:`` so that the folders resolve against the yaml's own folder.

    Args:
        dataset: samples go to their ``subset`` split (``train`` when unset; ``valid`` → ``val``).
        out_dir: output folder.
        images: ``"copy"``, ``"symlink"``, ``"hardlink"`` or ``"none"`` (labels only; sizes are
            then lost for a reader that takes them from the image headers).
        allow_outside: place images that lie outside the dataset root too (refused by default:
            a label file must not make a converter copy ``/etc/passwd``). Split and image names
            from the data never put a file outside ``out_dir`` (`sitesight.pathsafe`).

    Returns:
        Path of the written ``data.yaml``.
    """
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    out = Path(out_dir)
    missing = 0
    used: set[str] = set()
    splits: dict[str, None] = {}
    for i, sample in enumerate(dataset.samples):
        split = safe_component(_split_name(sample.subset), what="subset")
        splits[split] = None
        name = safe_component(Path(sample.path).name, what="image name")
        if f"{split}/{name}" in used:
            name = f"{Path(name).stem}_{i}{Path(name).suffix}"
        used.add(f"{split}/{name}")
        missing += not place_image(dataset.image_path(sample), output_path(out / "images" / split, name, what="image name"), images,
                                   root=dataset.root, allow_outside=allow_outside)  # fmt: skip
        label = output_path(out / "labels" / split, str(Path(name).with_suffix(".txt")), what="image name")
        label.parent.mkdir(parents=True, exist_ok=True)
        norm = xyxy_to_cxcywh_norm(sample.gt.xyxy, sample.image_wh) if len(sample.gt) else np.zeros((0, 4))
        atomic.write_text(label, "".join(f"{int(c)} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
                                 for c, b in zip(sample.gt.class_id, norm, strict=True)), encoding="utf-8")  # fmt: skip
    order = {"train": 0, "val": 2, "test": 3}
    written = sorted(splits, key=lambda s: order.get(s, 1))
    for split in written or ["train"]:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    doc = {**_yaml_splits(written), "nc": len(dataset.class_names), "names": dict(enumerate(dataset.class_names))}
    if missing and images != "none":
        logger.warning("%d of %d images not found on disk; their labels were written without them", missing, len(dataset))
    data_yaml = out / "data.yaml"
    atomic.write_text(data_yaml, _YAML_HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data_yaml

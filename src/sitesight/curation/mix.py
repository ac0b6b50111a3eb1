"""Mix several labelled sources into one training set with per-source ratios, recorded in a manifest.

The field's recipe is "8,000 base images + the 479-image site set x8": each `MixSource` is first
subsampled to ``count`` images (without replacement, by ``seed``), then repeated ``repeat`` times
(a fractional part adds a random share of extra copies). Classes are united by name in the order
they first appear; attribute schemas are united by key (the first source's spec wins).

Example:
    >>> mixed, manifest = mix_datasets([MixSource("base", base, count=8000), MixSource("site", site, repeat=8)])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitesight import atomic
from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.errors import InputError

__all__ = ["MixSource", "parse_source_spec", "mix_datasets", "write_manifest"]


@dataclass(frozen=True)
class MixSource:
    """One source of a mix.

    Args:
        name: label used in the manifest.
        dataset: its labelled images.
        count: subsample to this many images (``None`` = all; more than available = all).
        repeat: copies of each selected image, e.g. ``8`` for x8; ``1.5`` adds a random half once more.
        origin: where the dataset was read from, for the manifest.
    """

    name: str
    dataset: Dataset
    count: int | None = None
    repeat: float = 1.0
    origin: str = ""


_SPEC = re.compile(r"^(?:(?P<name>[^=:/\\]+)=)?(?P<path>.+?)(?::(?P<opts>(?:n=\d+|x\d+(?:\.\d+)?)(?::(?:n=\d+|x\d+(?:\.\d+)?))*))?$")


def parse_source_spec(text: str) -> tuple[str, Path, int | None, float]:
    """Parse ``[name=]path[:n=COUNT][:xREPEAT]`` (e.g. ``site=labels/site:x8``) into ``(name, path, count, repeat)``."""
    match = _SPEC.match(text.strip())
    if not match:
        raise InputError(f"mix source {text!r}: expected [name=]path[:n=COUNT][:xREPEAT]")
    path = Path(match.group("path"))
    count, repeat = None, 1.0
    for opt in (match.group("opts") or "").split(":"):
        if opt.startswith("n="):
            count = int(opt[2:])
        elif opt.startswith("x"):
            repeat = float(opt[1:])
    return match.group("name") or path.stem, path, count, repeat


def mix_datasets(sources: Sequence[MixSource], *, seed: int = 0, shuffle: bool = True) -> tuple[Dataset, dict[str, Any]]:
    """Build the mixed `Dataset` (absolute image paths, copies as repeated samples) and its manifest.

    Args:
        sources: the sources, in order.
        seed: drives subsampling, fractional repeats and the shuffle.
        shuffle: shuffle the final sample order (otherwise sources stay in order).

    Returns:
        ``(dataset, manifest)``; the manifest is JSON-ready: seed, classes, per-source counts
        (available, selected, repeat, images out, boxes per class) and every selected image with
        its number of copies.
    """
    if not sources:
        raise InputError("mix: no sources given")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise InputError(f"mix: source names must be unique, got {names}")
    rng = np.random.default_rng(seed)
    class_names: list[str] = list(dict.fromkeys(c for s in sources for c in s.dataset.class_names))
    schema: dict[str, AttributeSpec] = {}
    for s in sources:
        for key, spec in s.dataset.attribute_schema.items():
            schema.setdefault(key, spec)
    samples: list[Sample] = []
    source_rows: list[dict[str, Any]] = []
    image_rows: list[dict[str, Any]] = []
    for src in sources:
        if src.repeat < 0 or (src.count is not None and src.count < 0):
            raise InputError(f"mix source {src.name!r}: count and repeat must be >= 0")
        ds = src.dataset
        n = len(ds)
        chosen = np.arange(n) if src.count is None or src.count >= n else np.sort(rng.choice(n, src.count, replace=False))
        copies = np.full(len(chosen), int(np.floor(src.repeat)), np.int64)
        extra = int(round((src.repeat - np.floor(src.repeat)) * len(chosen)))
        if extra:
            copies[rng.choice(len(chosen), extra, replace=False)] += 1
        lut = np.array([class_names.index(c) for c in ds.class_names] + [0], np.int64)
        counts = np.zeros(len(class_names), np.int64)
        for i, k in zip(chosen, copies, strict=True):
            sample = ds.samples[int(i)]
            path = ds.image_path(sample)
            moved = sample.replace(path=path, gt=sample.gt.replace(class_id=lut[sample.gt.class_id]))
            samples.extend([moved] * int(k))
            counts += k * np.bincount(moved.gt.class_id, minlength=len(class_names))
            image_rows.append({"source": src.name, "path": str(path), "copies": int(k)})
        source_rows.append({
            "name": src.name,
            "origin": src.origin,
            "available": n,
            "requested_count": src.count,
            "selected": len(chosen),
            "repeat": src.repeat,
            "images_out": int(copies.sum()),
            "boxes_out": {c: int(v) for c, v in zip(class_names, counts, strict=True)},
        })
    if shuffle:
        samples = [samples[i] for i in rng.permutation(len(samples))]
    manifest = {
        "seed": seed,
        "shuffle": shuffle,
        "class_names": class_names,
        "images_out": len(samples),
        "sources": source_rows,
        "images": image_rows,
    }
    return Dataset(class_names=tuple(class_names), samples=tuple(samples), attribute_schema=schema), manifest


def write_manifest(manifest: dict[str, Any], path: Path | str) -> Path:
    """Write a mix manifest as indented JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(manifest, indent=1))
    return path

"""torch Datasets: RoI frames (frame + person boxes + attribute labels) and folder-per-class images.

Both yield ``(inputs, labels)`` batches through their collate function, the contract of
`sitesight.models.train`: ``model(*inputs) -> logits (R, K)`` and ``labels (R,) int64``.

Frames are letterboxed: scaled by ``min(W / w, H / h)`` into a ``frame_wh = (W, H)`` canvas,
top-left aligned, the rest grey; boxes are multiplied by the same scale. Images are normalised
with ImageNet mean and std (what timm weights expect).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sitesight.dataset import Dataset
from sitesight.errors import InputError
from sitesight.models.augment import Augment
from sitesight.models.backbone import IMAGENET_MEAN, IMAGENET_STD
from sitesight.models.roi_head import BoxExpansion, BoxJitter, expand_person_boxes, jitter_person_boxes

__all__ = [
    "IMAGE_SUFFIXES",
    "read_rgb",
    "letterbox",
    "to_tensor",
    "attribute_classes",
    "roi_items_from_dataset",
    "RoiFrameDataset",
    "roi_collate",
    "letterbox_window",
    "crop_window",
    "clip_rois",
    "scan_image_folder",
    "ImageClassDataset",
    "class_collate",
    "split_images",
    "AUGMENTED_COPY_PATTERN",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FrameSource = Path | str | np.ndarray


def read_rgb(source: FrameSource) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from a path or an array; `InputError` naming the file when unreadable."""
    if isinstance(source, np.ndarray):
        return source
    try:
        from sitesight.images import read_image_rgb
    except ImportError:
        read_image_rgb = None
    if read_image_rgb is not None:
        return read_image_rgb(source)
    try:
        with Image.open(source) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image ({exc})", source) from None


def letterbox(image: np.ndarray, frame_wh: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Scale ``(h, w, 3)`` uint8 into a ``(H, W, 3)`` grey canvas at the top-left; returns it and the scale."""
    w_out, h_out = frame_wh
    h, w = image.shape[:2]
    scale = min(w_out / w, h_out / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((h_out, w_out, 3), 114, np.uint8)
    resized = image if (nw, nh) == (w, h) else np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    canvas[:nh, :nw] = resized[:h_out, :w_out]
    return canvas, scale


def letterbox_window(image: np.ndarray, frame_wh: tuple[int, int], window: tuple[int, int, int, int]) -> np.ndarray:
    """``letterbox(image, frame_wh)[0][y0:y1, x0:x1]`` without building the whole canvas.

    ``window`` is ``(x0, y0, x1, y1)`` integer pixels of the letterboxed frame; returns
    ``(y1 - y0, x1 - x0, 3)`` uint8 (grey where the window leaves the scaled image).
    """
    x0, y0, x1, y1 = window
    h, w = image.shape[:2]
    scale = min(frame_wh[0] / w, frame_wh[1] / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.full((y1 - y0, x1 - x0, 3), 114, np.uint8)
    ox0, oy0, ox1, oy1 = max(x0, 0), max(y0, 0), min(x1, nw, frame_wh[0]), min(y1, nh, frame_wh[1])
    if ox1 <= ox0 or oy1 <= oy0:
        return out
    if (nw, nh) == (w, h):
        part = image[oy0:oy1, ox0:ox1]
    else:
        sx, sy = w / nw, h / nh  # what PIL's full-image resize maps each output pixel to
        box = (ox0 * sx, oy0 * sy, ox1 * sx, oy1 * sy)
        part = np.asarray(Image.fromarray(image).resize((ox1 - ox0, oy1 - oy0), Image.BILINEAR, box=box))
    out[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] = part
    return out


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float32 normalised with ImageNet mean / std."""
    x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def attribute_classes(dataset: Dataset, attribute: str, unknown: str = "unknown") -> tuple[str, ...]:
    """``(unknown, *values)``: the schema's values for ``attribute`` (or those seen), ``unknown`` first."""
    spec = dataset.attribute_schema.get(attribute)
    values: list[str] = list(spec.allowed()) if spec is not None and spec.is_categorical else []
    if not values:
        seen = set()
        for s in dataset.samples:
            arr = s.gt.attributes.get(attribute)
            if arr is not None:
                seen.update(str(v) for v in arr if v is not None)
        values = sorted(seen)
    if not values:
        raise InputError(f"no box carries attribute {attribute!r}; attributes are {sorted(dataset.attribute_schema)}")
    return (unknown, *[v for v in values if v != unknown])


def roi_items_from_dataset(
    dataset: Dataset, *, box_class: str, attribute: str, class_names: Sequence[str], min_height: float = 0.0
) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """Frames holding at least one ``box_class`` box: sample indices, ``(n, 4)`` boxes, ``(n,)`` labels.

    Attribute values map to their index in ``class_names``; a box without the attribute (``None``)
    or with a value not in ``class_names`` is class 0 (``unknown``). Boxes shorter than
    ``min_height`` pixels are left out (a frame with none left is skipped).
    """
    try:
        cls = dataset.class_index(box_class)
    except KeyError as exc:
        raise InputError(str(exc.args[0]), where="box class") from None
    lookup = {name: i for i, name in enumerate(class_names)}
    indices, boxes, labels = [], [], []
    for i, s in enumerate(dataset.samples):
        keep = (s.gt.class_id == cls) & (s.gt.xyxy[:, 3] - s.gt.xyxy[:, 1] >= min_height)
        if not keep.any():
            continue
        values = s.gt.attributes.get(attribute)
        picked = values[keep] if values is not None else np.full(int(keep.sum()), None, object)
        indices.append(i)
        boxes.append(s.gt.xyxy[keep])
        labels.append(np.array([lookup.get(str(v), 0) if v is not None else 0 for v in picked], np.int64))
    return indices, boxes, labels


class RoiFrameDataset(torch.utils.data.Dataset):
    """One item per frame: ``(image (3, H, W) float32, rois (n, 4) float32 expanded, labels (n,) int64)``.

    With ``crop_wh`` (training only) there is one item per box instead: a ``crop_wh`` window of
    the letterboxed frame placed at random around that box's (jittered, expanded) box, holding
    it and every other box whose expanded box lies inside the window; image ``(3, ch, cw)``,
    rois in window pixels. A convolutional backbone computes the same features on the window as
    on the whole frame (away from the window's border), at a fraction of the cost.

    Args:
        frames: image paths or ``(h, w, 3)`` uint8 arrays.
        boxes: per frame ``(n, 4)`` person boxes in that frame's pixels.
        labels: per frame ``(n,)`` class indices; ``None`` for prediction (labels are -1).
        frame_wh: network input size; frames are letterboxed into it.
        expansion: box expansion; with ``jitter`` (training) its factors are jittered too.
        jitter / augment: training noise; ``None`` for evaluation and prediction.
        crop_wh: training windows ``(width, height)`` in network-input pixels; ``None`` = whole frames.
        seed: with `set_epoch`, fixes every random draw (same seed + epoch + index → same item).
    """

    def __init__(
        self,
        frames: Sequence[FrameSource],
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray] | None,
        *,
        frame_wh: tuple[int, int],
        expansion: BoxExpansion,
        jitter: BoxJitter | None = None,
        augment: Augment | None = None,
        crop_wh: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> None:
        if len(frames) != len(boxes) or (labels is not None and len(labels) != len(frames)):
            raise ValueError(f"RoiFrameDataset: {len(frames)} frames, {len(boxes)} box sets, {None if labels is None else len(labels)} label sets")
        self.frames = list(frames)
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        self.labels = None if labels is None else [np.asarray(v, np.int64) for v in labels]
        self.frame_wh = tuple(frame_wh)
        self.expansion, self.jitter, self.augment = expansion, jitter, augment
        self.crop_wh = None if crop_wh is None else (min(int(crop_wh[0]), self.frame_wh[0]), min(int(crop_wh[1]), self.frame_wh[1]))
        # (frame, anchor box) per item; anchor -1 = the whole frame
        self.items = [(f, a) for f, b in enumerate(self.boxes) for a in range(len(b))] if self.crop_wh else [(f, -1) for f in range(len(self.frames))]
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def item_labels(self) -> list[np.ndarray]:
        """Per item, the labels a weighted sampler weighs it by: the frame's, or the anchor box's."""
        if self.labels is None:
            return []
        return [self.labels[f] if a < 0 else self.labels[f][a : a + 1] for f, a in self.items]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frame, anchor = self.items[index]
        source = read_rgb(self.frames[frame])
        h, w = source.shape[:2]
        scale = min(self.frame_wh[0] / w, self.frame_wh[1] / h)
        xyxy = self.boxes[frame] * scale
        if self.jitter is not None:
            rois = jitter_person_boxes(xyxy, self.expansion, self.jitter, self.frame_wh, rng)
        else:
            rois = expand_person_boxes(xyxy, self.expansion, self.frame_wh)
        labels = self.labels[frame] if self.labels is not None else np.full(len(xyxy), -1, np.int64)
        if anchor < 0:
            image, _ = letterbox(source, self.frame_wh)
        else:
            assert self.crop_wh is not None
            x0, y0 = crop_window(rois[anchor], self.crop_wh, self.frame_wh, rng)
            cw, ch = self.crop_wh
            inside = (rois[:, 0] >= x0) & (rois[:, 1] >= y0) & (rois[:, 2] <= x0 + cw) & (rois[:, 3] <= y0 + ch)
            inside[anchor] = True
            image = letterbox_window(source, self.frame_wh, (x0, y0, x0 + cw, y0 + ch))
            rois = clip_rois(rois[inside] - np.array([x0, y0, x0, y0], np.float32), self.crop_wh)
            labels = labels[inside]
        if self.augment is not None:
            image = self.augment.apply(image, rng)
        return to_tensor(image), torch.from_numpy(rois), torch.from_numpy(labels)


def crop_window(
    roi: np.ndarray, crop_wh: tuple[int, int], frame_wh: tuple[int, int], rng: np.random.Generator, *, align: int = 32
) -> tuple[int, int]:
    """Top-left ``(x0, y0)`` of a ``crop_wh`` window inside ``frame_wh`` holding the ``(4,)`` xyxy ``roi``.

    The corner is a multiple of ``align`` (so a backbone of stride 8, 16 or 32 sees the window on
    the frame's own feature grid), drawn uniformly among the aligned places that hold the whole
    roi; else the window touches the frame's far edge when that holds the roi, or sits at the
    aligned place nearest to centring it (the roi is then clipped).
    """
    origin = []
    for lo, hi, size, limit in ((roi[0], roi[2], crop_wh[0], frame_wh[0]), (roi[1], roi[3], crop_wh[1], frame_wh[1])):
        last = max(limit - size, 0) // align * align
        first_ok, last_ok = int(np.ceil(max(hi - size, 0) / align)), int(min(lo, last) // align)
        if first_ok <= last_ok:
            origin.append(int(rng.integers(first_ok, last_ok + 1)) * align)
        elif max(limit - size, 0) <= lo and hi - max(limit - size, 0) <= size:  # at the frame's far edge
            origin.append(int(max(limit - size, 0)))
        else:
            origin.append(int(np.clip(round((lo + hi - size) / 2 / align), 0, last // align)) * align)
    return origin[0], origin[1]


def clip_rois(rois: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """``(n, 4)`` xyxy clipped to ``[0, w] x [0, h]``, at least 1 px wide and tall."""
    w, h = float(image_wh[0]), float(image_wh[1])
    out = rois.astype(np.float32).copy()
    for lo, hi, size in ((0, 2, w), (1, 3, h)):
        out[:, lo] = np.clip(out[:, lo], 0, size - 1)
        out[:, hi] = np.clip(out[:, hi], out[:, lo] + 1, size)
    return out


def roi_collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Frames → ``((images (B, 3, H, W), rois (R, 5) [batch_index, x1, y1, x2, y2]), labels (R,))``."""
    images = torch.stack([b[0] for b in batch])
    rois = torch.cat([torch.cat([torch.full((len(b[1]), 1), float(i)), b[1]], dim=1) for i, b in enumerate(batch)])
    labels = torch.cat([b[2] for b in batch])
    return (images, rois.reshape(-1, 5)), labels


def scan_image_folder(root: Path | str) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Folder-per-class layout ``root/<class>/<image>``: paths, ``(N,)`` int64 labels, sorted class names."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder of class folders", root)
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    paths, labels = [], []
    for k, name in enumerate(classes):
        for p in sorted((root / name).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(k)
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in class folders", root)
    return paths, np.asarray(labels, np.int64), classes


class ImageClassDataset(torch.utils.data.Dataset):
    """One item per image: ``(image (3, S, S) float32, label int)``, resized to ``image_size`` square."""

    def __init__(
        self,
        images: Sequence[FrameSource],
        labels: Sequence[int] | np.ndarray | None,
        *,
        image_size: int,
        augment: Augment | None = None,
        hflip: bool = False,
        seed: int = 0,
    ) -> None:
        self.images = list(images)
        self.labels = None if labels is None else np.asarray(labels, np.int64)
        self.image_size, self.augment, self.hflip = int(image_size), augment, hflip
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image = read_rgb(self.images[index])
        image = np.asarray(Image.fromarray(image).resize((self.image_size, self.image_size), Image.BILINEAR))
        if self.augment is not None:
            image = self.augment.apply(image, rng)
        if self.hflip and rng.random() < 0.5:
            image = image[:, ::-1]
        return to_tensor(image), -1 if self.labels is None else int(self.labels[index])


def class_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[tuple[torch.Tensor], torch.Tensor]:
    """Images → ``((images (B, 3, S, S),), labels (B,))``."""
    return (torch.stack([b[0] for b in batch]),), torch.tensor([b[1] for b in batch], dtype=torch.int64)


AUGMENTED_COPY_PATTERN = r"^(?:(?:hflipped|vflipped|flipped|rotated_\d+|aug\d*|copy)_)*(?P<source>.+?)(?:_(?:aug\d*|flip|copy))*$"


def split_images(
    paths: Sequence[Path],
    labels: np.ndarray,
    *,
    val_fraction: float = 0.25,
    group_pattern: str | None = None,
    seed: int = 0,
) -> tuple[tuple[list[Path], np.ndarray], tuple[list[Path], np.ndarray]]:
    """Split images into train / val so that augmented copies of one original stay on one side.

    Copies are grouped by file stem with ``group_pattern`` (named group ``source``; default strips
    prefixes such as ``hflipped_`` and ``rotated_30_``) and the groups are assigned with
    `sitesight.curation.split.stratified_group_split`, stratified by class.
    """
    from sitesight.curation.split import groups_by_source_stem, stratified_group_split

    groups = groups_by_source_stem(paths, group_pattern or AUGMENTED_COPY_PATTERN)
    one_hot = np.eye(int(labels.max()) + 1)[labels]
    assign = stratified_group_split(one_hot, groups, [1 - val_fraction, val_fraction], seed=seed)
    parts = []
    for k in (0, 1):
        idx = np.flatnonzero(assign == k)
        parts.append(([Path(paths[i]) for i in idx], labels[idx]))
    if not len(parts[0][0]) or not len(parts[1][0]):
        raise InputError(f"split left a side empty ({len(parts[0][0])} train, {len(parts[1][0])} val images); use --val")
    return parts[0], parts[1]

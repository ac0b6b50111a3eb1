"""Procedural screws for anomaly-detection tests and the demo: normal parts and planted defects with masks.

A part is a threaded screw lying roughly horizontally on a dark, slightly textured tray, seen from the
side: a brushed cylindrical head on the left, a threaded shank and a tapered tip. Normal parts vary in
position (a few pixels), angle (a few degrees), length, brightness, thread phase and sensor noise.
Defects are planted on the part and come with a boolean mask of the pixels they changed:

- ``scratch``: a thin straight bright or dark line across the metal;
- ``dent``: a small elliptical depression, dark on one side and bright on the other;
- ``missing_thread``: a stretch of the shank where the thread ridges are worn flat;
- ``contamination``: an irregular, slightly translucent brown stain (oil, rust).

`write_parts_dataset` lays the images out as MVTec AD does (``train/good``, ``test/good``,
``test/<defect>``, ``ground_truth/<defect>/<name>_mask.png``) so that tools written for MVTec read it.

Example:
    >>> import numpy as np
    >>> rgb, mask = render_part(np.random.default_rng(0), image_wh=(96, 96), defect="scratch")
    >>> rgb.shape, rgb.dtype, mask.shape, bool(mask.any())
    ((96, 96, 3), dtype('uint8'), (96, 96), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PART_DEFECTS", "PartsSet", "render_part", "make_parts", "write_parts_dataset"]

PART_DEFECTS: tuple[str, ...] = ("scratch", "dent", "missing_thread", "contamination")


@dataclass(frozen=True)
class _Pose:
    """Screw geometry in pixels: centre, unit axis, lengths and radii."""

    cx: float
    cy: float
    cos: float
    sin: float
    u_head0: float  # left end of the head along the axis (relative to the centre)
    u_head1: float  # head / shank junction
    u_tip: float  # right end of the tip
    head_r: float
    shank_r: float
    pitch: float
    phase: float


def _soft_inside(dist: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance (positive inside), one-pixel ramp."""
    return np.clip(dist + 0.5, 0.0, 1.0)


def _brushed_noise(rng: np.random.Generator, shape: tuple[int, int], length: int) -> np.ndarray:
    """Streaky noise (H, W) float32 with unit-ish spread, smeared along rows (brushed metal)."""
    h, w = shape
    pad = length
    noise = rng.standard_normal((h, w + 2 * pad)).astype(np.float32)
    csum = np.cumsum(noise, axis=1)
    smeared = (csum[:, length:] - csum[:, :-length])[:, :w] / np.sqrt(length)
    return smeared.astype(np.float32)


def _random_pose(rng: np.random.Generator, w: int, h: int) -> _Pose:
    s = min(w, h)
    angle = np.deg2rad(rng.uniform(-4.0, 4.0))
    length = w * rng.uniform(0.74, 0.80)
    head_len = length * rng.uniform(0.20, 0.23)
    return _Pose(
        cx=w / 2 + rng.uniform(-0.03, 0.03) * w,
        cy=h / 2 + rng.uniform(-0.03, 0.03) * h,
        cos=float(np.cos(angle)),
        sin=float(np.sin(angle)),
        u_head0=-length / 2,
        u_head1=-length / 2 + head_len,
        u_tip=length / 2,
        head_r=s * rng.uniform(0.17, 0.185),
        shank_r=s * rng.uniform(0.105, 0.115),
        pitch=s * 0.06,
        phase=rng.uniform(0.0, 1.0),
    )


def _axis_coords(pose: _Pose, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel coordinates (u along the screw axis, v across it), each (H, W) float32."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = x + 0.5 - pose.cx, y + 0.5 - pose.cy
    u = dx * pose.cos + dy * pose.sin
    v = -dx * pose.sin + dy * pose.cos
    return u, v


def _render_normal(
    rng: np.random.Generator, w: int, h: int, pose: _Pose, flat_thread: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grey image (H, W) float32 in [0, 255], part coverage (H, W) in [0, 1], and the (u, v) grids."""
    u, v = _axis_coords(pose, w, h)
    # Thread: helical ridges (phase depends on u and, through the helix angle, on v).
    thread = 0.5 + 0.5 * np.cos(2 * np.pi * ((u + 0.35 * v) / pose.pitch + pose.phase))
    if flat_thread is not None:
        thread = thread * (1 - flat_thread) + 0.5 * flat_thread
    taper_len = 0.16 * (pose.u_tip - pose.u_head1)
    taper = np.clip((pose.u_tip - u) / taper_len, 0.0, 1.0)
    root_r = pose.shank_r * (0.86 + 0.14 * thread)
    if flat_thread is not None:
        root_r = root_r * (1 - flat_thread) + 0.91 * pose.shank_r * flat_thread
    shank_r = root_r * np.sqrt(taper)
    in_shank = _soft_inside(np.minimum(shank_r - np.abs(v), np.minimum(u - pose.u_head1, pose.u_tip - u)))
    in_head = _soft_inside(np.minimum(pose.head_r - np.abs(v), np.minimum(u - pose.u_head0, pose.u_head1 - u)))
    cover = np.maximum(in_shank, in_head)

    brightness = rng.uniform(0.9, 1.1)
    # Cylinder shading across the axis with a specular band above the centre line.
    radius = np.where(in_head > in_shank, pose.head_r, np.maximum(shank_r, 1e-3))
    t = np.clip(v / radius, -1.0, 1.0)
    lambert = np.sqrt(1 - t**2)
    specular = np.exp(-(((t + 0.35) / 0.18) ** 2))
    metal = 95 + 80 * lambert + 55 * specular
    ridge = np.where(in_head > in_shank, 1.0, 0.72 + 0.28 * thread)
    metal = metal * ridge * brightness
    metal += 6.0 * _brushed_noise(rng, (h, w), max(3, w // 12))
    # Head chamfer: the head darkens towards its left face.
    metal *= np.where(in_head > in_shank, np.clip(0.75 + (u - pose.u_head0) / (0.6 * (pose.u_head1 - pose.u_head0)), 0.75, 1.0), 1.0)

    background = 38 + 4 * _brushed_noise(rng, (h, w), 3) + 10 * (v / h)
    image = background * (1 - cover) + metal * cover
    return image.astype(np.float32), cover.astype(np.float32), u, v


def _blob(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, centre: tuple[float, float], size: float) -> np.ndarray:
    """Irregular soft blob (H, W) in [0, 1]: a few overlapping Gaussians, thresholded smoothly."""
    field = np.zeros_like(u)
    for _ in range(4):
        cu = centre[0] + rng.uniform(-0.6, 0.6) * size
        cv = centre[1] + rng.uniform(-0.4, 0.4) * size
        su, sv = size * rng.uniform(0.35, 0.7), size * rng.uniform(0.3, 0.6)
        field += np.exp(-(((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))
    return np.clip((field - 0.5) * 4.0, 0.0, 1.0)


def render_part(
    rng: np.random.Generator,
    *,
    image_wh: tuple[int, int] = (128, 128),
    defect: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one screw.

    Args:
        rng: the source of every random choice.
        image_wh: ``(width, height)`` in pixels; at least 32 each.
        defect: ``None`` for a normal part, else one of `PART_DEFECTS`.

    Returns:
        ``(rgb, mask)``: ``rgb`` uint8 (H, W, 3); ``mask`` bool (H, W), True on the defect's pixels
        (all False for a normal part).
    """
    w, h = (int(x) for x in image_wh)
    if w < 32 or h < 32:
        raise ValueError(f"render_part: image_wh must be at least 32x32, got {image_wh}")
    if defect is not None and defect not in PART_DEFECTS:
        raise ValueError(f"render_part: unknown defect {defect!r}; choose one of {list(PART_DEFECTS)}")
    s = min(w, h)
    pose = _random_pose(rng, w, h)
    flat = None
    if defect == "missing_thread":
        u, _ = _axis_coords(pose, w, h)
        shank_len = pose.u_tip - pose.u_head1
        seg = shank_len * rng.uniform(0.2, 0.3)
        start = pose.u_head1 + rng.uniform(0.1, 0.8 * shank_len - seg)
        flat = np.clip(np.minimum(u - start, start + seg - u) / 1.5 + 0.5, 0.0, 1.0).astype(np.float32)
    image, cover, u, v = _render_normal(rng, w, h, pose, flat)
    rgb = np.repeat(image[..., None], 3, axis=2)
    rgb *= np.array([1.0, 1.0, 1.03], np.float32)  # a faint cool tint of steel under LED light
    mask = np.zeros((h, w), bool)

    if defect == "missing_thread":
        assert flat is not None
        mask = (flat > 0.5) & (cover > 0.5) & (np.abs(v) < pose.shank_r)
    elif defect == "scratch":
        # A straight line segment over the part at a random angle.
        length = s * rng.uniform(0.25, 0.4)
        cu = rng.uniform(pose.u_head0 + 0.1 * s, pose.u_tip - 0.25 * s)
        cv = rng.uniform(-0.5, 0.5) * pose.shank_r
        ang = rng.uniform(-np.pi / 3, np.pi / 3) + (np.pi / 2 if rng.random() < 0.3 else 0.0)
        du, dv = np.cos(ang), np.sin(ang)
        along = (u - cu) * du + (v - cv) * dv
        across = np.abs(-(u - cu) * dv + (v - cv) * du)
        width = max(0.8, s / 110)
        line = _soft_inside(np.minimum(width - across, length / 2 - np.abs(along))) * cover
        sign = 1.0 if rng.random() < 0.6 else -1.0
        rgb += (sign * rng.uniform(60, 90) * line)[..., None]
        mask = line > 0.25
    elif defect == "dent":
        r = s * rng.uniform(0.05, 0.075)
        cu = rng.uniform(pose.u_head0 + r, pose.u_tip - 0.2 * s)
        cv = rng.uniform(-0.4, 0.4) * pose.shank_r
        du, dv = (u - cu) / r, (v - cv) / (0.75 * r)
        d2 = du**2 + dv**2
        inside = np.clip((1 - d2) * 3, 0.0, 1.0) * cover
        # A depression lit from above: its upper rim is in shadow, its lower rim catches the light.
        shade = 1 - 0.4 * inside + 0.5 * inside * np.clip(dv, -1, 1)
        rgb *= shade[..., None]
        mask = inside > 0.2
    elif defect == "contamination":
        size = s * rng.uniform(0.07, 0.11)
        cu = rng.uniform(pose.u_head0 + size, pose.u_tip - 0.2 * s)
        cv = rng.uniform(-0.3, 0.3) * pose.shank_r
        blob = _blob(rng, u, v, (cu, cv), size) * np.maximum(cover, 0.0)
        stain = np.array([92, 60, 34], np.float32) + 10 * rng.standard_normal((h, w, 1)).astype(np.float32)
        alpha = (0.75 * blob)[..., None]
        rgb = rgb * (1 - alpha) + stain * alpha
        mask = blob > 0.2

    rgb += rng.normal(0.0, 2.5, size=rgb.shape).astype(np.float32)  # sensor noise
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


@dataclass(frozen=True)
class PartsSet:
    """Rendered parts in memory.

    Args:
        images: uint8 (H, W, 3) arrays.
        masks: bool (H, W) arrays, all False for normal parts.
        defects: the defect type per image, ``None`` for normal parts.
    """

    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    defects: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> np.ndarray:
        """(N,) bool, True for anomalous (defective) parts."""
        return np.array([d is not None for d in self.defects], bool)


def make_parts(
    n_normal: int,
    n_defect: int = 0,
    *,
    seed: int = 0,
    image_wh: tuple[int, int] = (128, 128),
    defects: Sequence[str] = PART_DEFECTS,
) -> PartsSet:
    """Render ``n_normal`` normal parts followed by ``n_defect`` defective ones (types in turn).

    Returns:
        A `PartsSet`; image ``i`` is the same for the same ``seed`` whatever the counts after it.
    """
    if n_normal < 0 or n_defect < 0:
        raise ValueError(f"make_parts: counts must be non-negative, got {n_normal}, {n_defect}")
    kinds: list[str | None] = [None] * n_normal + [defects[i % len(defects)] for i in range(n_defect)]
    seeds = np.random.SeedSequence(seed).spawn(len(kinds))
    images, masks = [], []
    for kind, ss in zip(kinds, seeds, strict=True):
        rgb, mask = render_part(np.random.default_rng(ss), image_wh=image_wh, defect=kind)
        images.append(rgb)
        masks.append(mask)
    return PartsSet(images=tuple(images), masks=tuple(masks), defects=tuple(kinds))


def write_parts_dataset(
    out_dir: Path | str,
    *,
    n_train: int = 40,
    n_test_normal: int = 20,
    n_test_defect: int = 20,
    seed: int = 0,
    image_wh: tuple[int, int] = (128, 128),
) -> Path:
    """Write parts as PNGs in the MVTec AD layout and return ``out_dir``.

    Layout: ``train/good/NNN.png`` (normal only), ``test/good/NNN.png``, ``test/<defect>/NNN.png`` and
    ``ground_truth/<defect>/NNN_mask.png`` (0 / 255 single channel).
    """
    from PIL import Image

    out = Path(out_dir)
    train = make_parts(n_train, 0, seed=seed, image_wh=image_wh)
    test = make_parts(n_test_normal, n_test_defect, seed=seed + 1, image_wh=image_wh)
    (out / "train" / "good").mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(train.images):
        Image.fromarray(rgb).save(out / "train" / "good" / f"{i:03d}.png")
    for i, (rgb, mask, kind) in enumerate(zip(test.images, test.masks, test.defects, strict=True)):
        folder = out / "test" / (kind or "good")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / f"{i:03d}.png")
        if kind is not None:
            gt = out / "ground_truth" / kind
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(gt / f"{i:03d}_mask.png")
    return out

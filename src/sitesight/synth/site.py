"""Procedural construction-site CCTV frames with exact ground truth.

A frame is composed from three plain values: the camera's `SiteLayout` (ground, scaffolds,
clutter), the `Worker` figures in it, and the `Conditions` (light, blur, sensor noise). Every shape
is drawn with a label as well as a colour (see `sitesight.synth.canvas`), so each box is the tight
extent of the pixels of that object that are still visible after everything in front was drawn.

Ground truth, per worker (classes `SITE_CLASSES`):

- ``person``: every visible pixel of the figure (body, arms, legs, head, helmet; not the rope).
- ``head``: the visible head, *including* the helmet when one is worn (as a head detector sees it).
- ``helmet``: the visible helmet shell and brim only, so it lies inside the head box.
- A part is kept when at least 25 % of its pixels are visible (20 % for a person); a box is the
  continuous extent of its pixels: pixel column ``c`` spans ``[c, c + 1)``.
- ``attributes["safety_rope"]`` (persons; ``None`` on other boxes): ``correct`` (rope up to an
  anchor above the head), ``wrong`` (dangling or anchored at foot level), or ``unknown`` when there
  is no harness, the figure is under `ROPE_MIN_HEIGHT` pixels tall, less than 60 % of it or less
  than half of its rope is visible.
- ``attributes["occluded"]``: ``"true"`` when more than 15 % of that box's pixels are hidden
  (for a person, also when half of its head is hidden).

Example:
    >>> import numpy as np
    >>> from sitesight.synth import render_site_frame
    >>> rgb, gt = render_site_frame(np.random.default_rng(0), (640, 360), n_workers=5)
    >>> rgb.shape, rgb.dtype.name, sorted(gt.attributes)
    ((360, 640, 3), 'uint8', ['occluded', 'safety_rope'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sitesight.dataset import AttributeSpec, Dataset, Sample
from sitesight.detections import Detections
from sitesight.errors import InputError
from sitesight.synth.canvas import PART_BODY, PART_HELMET, PART_ROPE, Canvas, worker_code
from sitesight.synth.layout import (
    SiteLayout,
    draw_clutter,
    draw_scaffold,
    render_ground,
    sample_layout,
    standard_noise,
)
from sitesight.synth.workers import Worker, draw_worker, jitter_workers, sample_workers

__all__ = [
    "SITE_CLASSES",
    "ROPE_VALUES",
    "ROPE_MIN_HEIGHT",
    "SITE_ATTRIBUTE_SCHEMA",
    "Conditions",
    "sample_conditions",
    "compose_frame",
    "render_site_frame",
    "iter_site_frames",
    "make_site_dataset",
    "site_dataset",
    "write_site_dataset",
]

SITE_CLASSES = ("person", "helmet", "head")
ROPE_VALUES = ("correct", "wrong", "unknown")
ROPE_MIN_HEIGHT = 32.0
SITE_ATTRIBUTE_SCHEMA = {
    "safety_rope": AttributeSpec("safety_rope", ROPE_VALUES, "radio", "unknown", labels=("person",)),
    "occluded": AttributeSpec("occluded", ("false",), "checkbox", "false"),
}
_PERSON, _HELMET, _HEAD = 0, 1, 2
_ROPE_LABEL = {"none": "unknown", "correct": "correct", "dangling": "wrong", "anchored_low": "wrong"}
_EPOCH = datetime(2024, 5, 6, tzinfo=timezone.utc).timestamp()


@dataclass(frozen=True)
class Conditions:
    """Capture conditions of one frame.

    Args:
        darkness: 0 (bright day) to 1 (night); scales the light down and the sensor noise up.
        tint: per-channel RGB gain (warm sodium lamps, cold dusk, neutral day).
        light_xy: centre of a floodlight's pool, as fractions of the frame, used when dark.
        blur_sigma: Gaussian blur in pixels (focus, compression, haze).
        noise_sigma: sensor noise standard deviation in grey levels.
        noise_seed: seed of the noise pattern.
    """

    darkness: float
    tint: tuple[float, float, float]
    light_xy: tuple[float, float]
    blur_sigma: float
    noise_sigma: float
    noise_seed: int


def sample_conditions(rng: np.random.Generator, darkness: float | None = None) -> Conditions:
    """Random conditions; about 30 % of frames are dark (darkness 0.55–0.85) unless ``darkness`` is given."""
    if darkness is None:
        darkness = rng.uniform(0.55, 0.85) if rng.random() < 0.3 else rng.uniform(0.0, 0.35)
    darkness = float(np.clip(darkness, 0.0, 1.0))
    if darkness > 0.45:
        tint = ((1.08, 0.92, 0.7), (0.8, 0.9, 1.1))[int(rng.integers(2))]
    else:
        gain = rng.uniform(0.9, 1.2)
        tint = (gain, gain, gain * rng.uniform(0.95, 1.05))
    return Conditions(
        darkness=darkness, tint=tuple(float(t) for t in tint),
        light_xy=(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.2, 0.9))),
        blur_sigma=float(rng.choice([0.0, rng.uniform(0.4, 1.4)], p=[0.3, 0.7])),
        noise_sigma=float(1.5 + 9.0 * darkness + rng.uniform(0, 2)), noise_seed=int(rng.integers(2**31)),
    )


def _apply_conditions(rgb: np.ndarray, cond: Conditions) -> np.ndarray:
    """Light (vignette, floodlight pool, darkness, tint), then blur, then sensor noise; uint8 in and out."""
    h, w = rgb.shape[:2]
    gh, gw = max(2, h // 16), max(2, w // 16)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    yy, xx = yy / (gh - 1), xx / (gw - 1)
    vignette = 1.0 - 0.35 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    pool = np.exp(-((xx - cond.light_xy[0]) ** 2 * 3 + (yy - cond.light_xy[1]) ** 2 * 5))
    gain = vignette * ((1.0 - 0.9 * cond.darkness) + 0.45 * cond.darkness * pool)
    gain = cv2.resize(gain.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.merge([cv2.multiply(ch, gain, scale=t, dtype=cv2.CV_8U) for ch, t in zip(cv2.split(rgb), cond.tint, strict=True)])
    if cond.blur_sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), cond.blur_sigma)
    # Luminance noise, added and subtracted with uint8 saturation (each pixel gets one of the two).
    noise = np.rint(standard_noise(np.random.default_rng(cond.noise_seed), (h, w)) * cond.noise_sigma)
    up = np.clip(noise, 0, 255).astype(np.uint8)
    down = np.clip(-noise, 0, 255).astype(np.uint8)
    return cv2.subtract(cv2.add(out, cv2.merge([up, up, up])), cv2.merge([down, down, down]))


def _caption(image_wh: tuple[int, int], text: str) -> tuple[Image.Image, tuple[int, int]]:
    """A CCTV-style caption for the top-left corner: small RGBA image (white text, black outline)
    and where its top-left corner goes in the frame."""
    size = max(10, int(round(image_wh[1] * 0.026)))
    font, stroke = ImageFont.load_default(size=size), max(1, size // 12)
    x1, y1, x2, y2 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font, stroke_width=stroke)
    layer = Image.new("RGBA", (x2 - x1 + 2, y2 - y1 + 2), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((1 - x1, 1 - y1), text, fill=(235, 235, 235, 255), font=font, stroke_width=stroke,
                               stroke_fill=(0, 0, 0, 255))
    w, h = image_wh
    x, y = size, int(size * 0.6)
    return layer.crop((0, 0, max(0, min(layer.width, w - x)), max(0, min(layer.height, h - y)))), (x, y)


def _box_of(mask: np.ndarray, x0: int, y0: int) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1)]


def _part_counts(canvas: Canvas, wk: Worker, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Label crop around the worker, pixel counts of (person, head, helmet, rope), crop origin."""
    x1, y1, x2, y2 = wk.approx_xyxy()
    x1, y1 = int(max(0, np.floor(x1 - 2))), int(max(0, np.floor(y1 - 0.3 * wk.height - 2)))
    crop = canvas.label_crop((x1, y1, int(np.ceil(x2 + 2)), int(np.ceil(y2 + 0.4 * wk.height))))
    base = worker_code(index, PART_BODY)
    counts = np.array([np.count_nonzero((crop >= base) & (crop <= base + PART_HELMET)),
                       np.count_nonzero((crop > base) & (crop <= base + PART_HELMET)),
                       np.count_nonzero(crop == base + PART_HELMET), np.count_nonzero(crop == base + PART_ROPE)])
    return crop, counts, (x1, y1)


def compose_frame(layout: SiteLayout, workers: tuple[Worker, ...], conditions: Conditions, *,
                  overlay_text: str | None = None) -> tuple[np.ndarray, Detections]:
    """Draw one frame and measure its ground truth.

    Returns:
        ``(H, W, 3)`` uint8 RGB image and `Detections` (class ids into `SITE_CLASSES`, score 1,
        attributes ``safety_rope`` and ``occluded`` as object arrays of str / None).
    """
    canvas = Canvas(render_ground(layout))
    on_scaffold: dict[int, list[int]] = {}
    entities: list[tuple[float, int, int]] = []  # (depth row, kind, index): far first, then by kind
    for i, wk in enumerate(workers):
        if wk.scaffold >= 0:
            on_scaffold.setdefault(wk.scaffold, []).append(i)
        else:
            entities.append((wk.depth_y, 2, i))
    entities += [(s.base_y, 0, i) for i, s in enumerate(layout.scaffolds)]
    entities += [(c.base_y, 1, i) for i, c in enumerate(layout.clutter)]
    drawn = np.zeros((len(workers), 4), np.int64)
    for _, kind, i in sorted(entities):
        if kind == 1:
            draw_clutter(canvas, layout.clutter[i])
            continue
        group = [i] if kind == 2 else on_scaffold.get(i, [])
        if kind == 0:
            draw_scaffold(canvas, layout.scaffolds[i], front=False)
        for j in group:
            draw_worker(canvas, workers[j], j)
            drawn[j] = _part_counts(canvas, workers[j], j)[1]
        if kind == 0:
            draw_scaffold(canvas, layout.scaffolds[i], front=True)
    caption = _caption(canvas.image_wh, overlay_text) if overlay_text else None
    if caption is not None:  # the burned-in caption hides what is under it
        canvas.hide(caption[0].getchannel("A"), caption[1])
    xyxy, class_id, rope, occluded = [], [], [], []
    for j, wk in enumerate(workers):
        crop, visible, (x0, y0) = _part_counts(canvas, wk, j)
        frac = visible / np.maximum(drawn[j], 1)
        if visible[0] < 4 or frac[0] < 0.2:
            continue
        base = worker_code(j, PART_BODY)
        state = _ROPE_LABEL[wk.rope]
        if wk.height < ROPE_MIN_HEIGHT or frac[0] < 0.6 or (wk.rope != "none" and frac[3] < 0.5):
            state = "unknown"
        # a person whose head is mostly hidden counts as occluded however few pixels that is
        person_frac = frac[0] if frac[1] >= 0.5 else min(frac[0], 0.5)
        parts = [(_PERSON, (crop >= base) & (crop <= base + PART_HELMET), person_frac, state)]
        if visible[1] >= 2 and frac[1] >= 0.25:
            parts.append((_HEAD, (crop > base) & (crop <= base + PART_HELMET), frac[1], None))
        if visible[2] >= 2 and frac[2] >= 0.25:
            parts.append((_HELMET, crop == base + PART_HELMET, frac[2], None))
        for cls, mask, f, value in parts:
            xyxy.append(_box_of(mask, x0, y0))
            class_id.append(cls)
            rope.append(value)
            occluded.append("true" if f < 0.85 else "false")
    gt = Detections(
        xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4), class_id=np.asarray(class_id, np.int64),
        attributes={"safety_rope": np.asarray(rope, dtype=object), "occluded": np.asarray(occluded, dtype=object)},
    )
    rgb = _apply_conditions(canvas.rgb(), conditions)
    if caption is not None:
        layer, (x, y) = caption
        region = Image.fromarray(rgb[y:y + layer.height, x:x + layer.width]).convert("RGBA")
        rgb[y:y + layer.height, x:x + layer.width] = np.asarray(Image.alpha_composite(region, layer).convert("RGB"))
    return rgb, gt


def _check_wh(image_wh: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in image_wh)
    if w < 64 or h < 64:
        raise InputError(f"image_wh must be at least 64x64, got {tuple(image_wh)}", where="image_wh")
    return w, h


def render_site_frame(rng: np.random.Generator, image_wh: tuple[int, int] = (1920, 1080), *,
                      n_workers: int | None = None, darkness: float | None = None,
                      overlay_text: str | None = None) -> tuple[np.ndarray, Detections]:
    """A random site frame: new layout, 5–40 workers (or ``n_workers``), random or given ``darkness``.

    Returns ``(H, W, 3)`` uint8 RGB and ground truth `Detections` (see the module docstring).
    Same generator state → identical pixels and boxes.
    """
    w, h = _check_wh(image_wh)
    layout = sample_layout(rng, (w, h))
    n = int(rng.integers(5, 41)) if n_workers is None else int(n_workers)
    workers = sample_workers(rng, layout, n)
    return compose_frame(layout, workers, sample_conditions(rng, darkness), overlay_text=overlay_text)


def site_dataset(samples: list[Sample] | tuple[Sample, ...], root: Path | None = None) -> Dataset:
    """A `Dataset` with the synthetic classes and attribute schema over ``samples``."""
    return Dataset(class_names=SITE_CLASSES, samples=tuple(samples), attribute_schema=SITE_ATTRIBUTE_SCHEMA, root=root)


def iter_site_frames(n_frames: int, *, seed: int = 0, image_wh: tuple[int, int] = (1920, 1080), n_cameras: int = 4,
                     timestamp_overlay: bool = True) -> Iterator[tuple[np.ndarray, Sample]]:
    """Yield ``(rgb, Sample)`` for frames from ``n_cameras`` fixed cameras, round robin.

    Each camera keeps its layout. Its frames come in bursts: the next frame is either the same
    workers a few seconds later (2–6 s, moved a little: near duplicates) or a new scene 30–300 s
    later. Sample paths are ``frame_{index:06d}.jpg`` (relative), ``image_id`` is the index,
    ``camera_id`` is ``cam{c}``, ``timestamp`` is UTC seconds. The first ``k`` frames of a longer
    run with the same seed and cameras are the same ``k`` frames.
    """
    if n_frames < 0 or n_cameras < 1:
        raise InputError(f"need n_frames >= 0 and n_cameras >= 1, got {n_frames} and {n_cameras}", where="n_frames")
    image_wh = _check_wh(image_wh)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_cameras)]
    layouts = [sample_layout(r, image_wh) for r in rngs]
    clocks = [_EPOCH + r.integers(0, 30) * 86400 + r.uniform(6, 18) * 3600 for r in rngs]
    scenes: list[tuple[tuple[Worker, ...], Conditions] | None] = [None] * n_cameras
    for i in range(n_frames):
        c, rng = i % n_cameras, rngs[i % n_cameras]
        scene = scenes[c]
        if scene is None or rng.random() < 0.5:
            workers = sample_workers(rng, layouts[c], int(rng.integers(5, 41)))
            cond = sample_conditions(rng)
            clocks[c] += 0.0 if scene is None else rng.uniform(30, 300)
        else:
            workers = jitter_workers(rng, layouts[c], scene[0])
            cond = replace(scene[1], noise_seed=int(rng.integers(2**31)))
            clocks[c] += rng.uniform(2, 6)
        scenes[c] = (workers, cond)
        stamp = round(float(clocks[c]), 3)
        text = None
        if timestamp_overlay:
            text = f"{datetime.fromtimestamp(stamp, tz=timezone.utc):%Y-%m-%d %H:%M:%S}  CAM{c:02d}"
        rgb, gt = compose_frame(layouts[c], workers, cond, overlay_text=text)
        yield rgb, Sample(path=f"frame_{i:06d}.jpg", image_wh=image_wh, gt=gt, image_id=i, camera_id=f"cam{c}",
                          timestamp=stamp)


def make_site_dataset(n_frames: int, *, seed: int = 0, image_wh: tuple[int, int] = (1920, 1080), n_cameras: int = 4,
                      timestamp_overlay: bool = True) -> tuple[list[np.ndarray], Dataset]:
    """``n_frames`` frames in memory (list of ``(H, W, 3)`` uint8 RGB) and their `Dataset`.

    Sample paths are relative names (``frame_000000.jpg``…) that `write_site_dataset` would use.
    """
    images, samples = [], []
    for rgb, sample in iter_site_frames(n_frames, seed=seed, image_wh=image_wh, n_cameras=n_cameras,
                                        timestamp_overlay=timestamp_overlay):
        images.append(rgb)
        samples.append(sample)
    return images, site_dataset(samples)


def write_site_dataset(out_dir: Path | str, *, n_frames: int = 24, seed: int = 0, image_wh: tuple[int, int] = (1920, 1080),
                       n_cameras: int = 4, timestamp_overlay: bool = True, jpeg_quality: int = 92,
                       progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Write ``n_frames`` JPEGs (``frame_000000.jpg``…) into ``out_dir``; returns their `Dataset`.

    Sample paths are absolute; ``root`` is ``out_dir`` (absolute). Frames are written one at a time,
    so memory stays flat for long runs. ``progress(done, total)`` is called after each frame.
    """
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for rgb, sample in iter_site_frames(n_frames, seed=seed, image_wh=image_wh, n_cameras=n_cameras,
                                        timestamp_overlay=timestamp_overlay):
        path = out / str(sample.path)
        Image.fromarray(rgb).save(path, quality=jpeg_quality)
        samples.append(sample.replace(path=str(path)))
        if progress is not None:
            progress(len(samples), n_frames)
    return site_dataset(samples, root=out)

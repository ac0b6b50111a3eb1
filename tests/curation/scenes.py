"""Tiny textured test images built in code (no synth dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def scene(seed: int, image_wh: tuple[int, int] = (640, 360)) -> Image.Image:
    """A smooth random scene with a few rectangles: phash-distinct for different seeds."""
    rng = np.random.default_rng(seed)
    w, h = image_wh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(0.005, 0.03, size=4)
    base = 120 + 70 * np.sin(xx * f[0] + yy * f[1] + rng.uniform(0, 6)) * np.cos(yy * f[2] - xx * f[3])
    rgb = np.stack([base, base * 0.9 + 15, base * 0.7 + 40], axis=-1) + rng.normal(0, 3, (h, w, 3))
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
        draw.rectangle([x, y, x + int(rng.integers(20, 80)), y + int(rng.integers(20, 80))],
                       fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def with_clock(image: Image.Image, text: str, box: tuple[int, int, int, int] = (0, 0, 200, 40)) -> Image.Image:
    """A copy with a burned-in clock overlay in ``box`` (px)."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle(box, fill=(0, 0, 0))
    draw.text((box[0] + 6, box[1] + 8), text, fill=(255, 255, 255))
    return out


def save(image: Image.Image, path: Path, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=quality)
    return path

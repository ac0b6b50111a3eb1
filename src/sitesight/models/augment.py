"""Image augmentations on uint8 ``(H, W, 3)`` RGB arrays, driven by a ``np.random.Generator``.

Photometric (brightness, contrast, saturation), camera (Gaussian blur, sensor noise, JPEG
re-encoding, gamma) and random erasing. Geometry never changes, so boxes stay valid (box noise
lives in `sitesight.models.roi_head.jitter_person_boxes`). The same generator state gives the same
output, so training is reproducible under a seed.

Example:
    >>> import numpy as np
    >>> from sitesight.models.augment import Augment
    >>> img = np.full((8, 8, 3), 128, np.uint8)
    >>> out = Augment().apply(img, np.random.default_rng(0))
    >>> out.shape, out.dtype.name
    ((8, 8, 3), 'uint8')
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["Augment", "NO_AUGMENT", "photometric", "random_erase", "camera"]


@dataclass(frozen=True)
class Augment:
    """Probabilities and strengths of each augmentation (0 probability switches it off).

    Args:
        p_photometric: chance of brightness/contrast/saturation jitter.
        brightness / contrast / saturation: max relative change (±).
        p_blur: chance of a Gaussian blur with radius in ``(0.3, blur_max)`` pixels.
        p_noise: chance of additive Gaussian noise with sigma up to ``noise_max`` (0–255 scale).
        p_jpeg: chance of re-encoding as JPEG with quality in ``jpeg_quality``.
        p_gamma: chance of a gamma curve with gamma in ``gamma``.
        p_erase: chance of erasing one rectangle (2–20 % of the area) with noise.
    """

    p_photometric: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    p_blur: float = 0.2
    blur_max: float = 1.5
    p_noise: float = 0.2
    noise_max: float = 8.0
    p_jpeg: float = 0.2
    jpeg_quality: tuple[int, int] = (30, 90)
    p_gamma: float = 0.2
    gamma: tuple[float, float] = (0.7, 1.5)
    p_erase: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A new augmented ``(H, W, 3)`` uint8 image; the input is not modified."""
        out = image
        if rng.random() < self.p_photometric:
            out = photometric(out, rng, brightness=self.brightness, contrast=self.contrast, saturation=self.saturation)
        out = camera(out, rng, self)
        if rng.random() < self.p_erase:
            out = random_erase(out, rng)
        return out


NO_AUGMENT = Augment(p_photometric=0, p_blur=0, p_noise=0, p_jpeg=0, p_gamma=0, p_erase=0)


def photometric(
    image: np.ndarray, rng: np.random.Generator, *, brightness: float, contrast: float, saturation: float
) -> np.ndarray:
    """Random brightness, contrast and saturation factors in ``1 ± strength``."""
    x = image.astype(np.float32)
    x = x * rng.uniform(1 - brightness, 1 + brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(1 - saturation, 1 + saturation) + grey
    return np.clip(x, 0, 255).astype(np.uint8)


def camera(image: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """What cheap CCTV cameras do: blur, sensor noise, JPEG artefacts, a different gamma."""
    out = image
    if rng.random() < aug.p_blur:
        radius = float(rng.uniform(0.3, aug.blur_max))
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(radius)))
    if rng.random() < aug.p_noise:
        sigma = float(rng.uniform(0, aug.noise_max))
        out = np.clip(out.astype(np.float32) + rng.normal(0, sigma, out.shape), 0, 255).astype(np.uint8)
    if rng.random() < aug.p_jpeg:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if rng.random() < aug.p_gamma:
        g = float(rng.uniform(*aug.gamma))
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
        out = lut[out]
    return out


def random_erase(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.2)) -> np.ndarray:
    """One rectangle of ``area`` fraction (aspect 0.3–3.3) filled with uniform noise."""
    h, w = image.shape[:2]
    target = rng.uniform(*area) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    eh = int(min(h, max(1, round(np.sqrt(target * aspect)))))
    ew = int(min(w, max(1, round(np.sqrt(target / aspect)))))
    y0 = int(rng.integers(0, h - eh + 1))
    x0 = int(rng.integers(0, w - ew + 1))
    out = image.copy()
    out[y0 : y0 + eh, x0 : x0 + ew] = rng.integers(0, 256, (eh, ew, image.shape[2]), dtype=np.uint8)
    return out

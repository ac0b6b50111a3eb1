"""The fixed part of a camera's view: ground, horizon, scaffolds and site clutter.

A `SiteLayout` is a plain value sampled once per camera; frames of the same camera reuse it, as a
fixed CCTV camera sees the same site. Perspective is a ground plane seen from above: a person whose
feet touch the ground at image row ``y`` is ``layout.person_height(y)`` pixels tall, smaller further
up the frame. Everything here is scenery (label 0 on the `Canvas`).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np
from PIL import Image, ImageDraw

from sitesight.synth.canvas import Canvas

__all__ = [
    "Scaffold",
    "Clutter",
    "SiteLayout",
    "sample_layout",
    "render_ground",
    "draw_scaffold",
    "draw_clutter",
    "standard_noise",
]

GROUND_KINDS = {"dirt": (118, 98, 74), "gravel": (120, 116, 108), "concrete": (150, 148, 142)}
CLUTTER_KINDS = ("pallets", "barrel", "cone", "rebar", "blocks", "vest_post", "fence", "container", "spoil")
TUBE_RGB = ((150, 152, 156), (120, 124, 128), (176, 150, 60))
PLANK_RGB = ((150, 118, 72), (128, 100, 62), (168, 140, 96))


@dataclass(frozen=True)
class Scaffold:
    """A scaffold face: ``n_bays`` bays side by side, ``n_levels`` lifts high, standing on row ``base_y``.

    ``bay_w`` and ``level_h`` are pixels at this depth (a lift is a little taller than a person).
    Level ``L`` (0 = ground) has its deck at row ``base_y - L * level_h``.
    """

    base_y: float
    x1: float
    n_bays: int
    n_levels: int
    bay_w: float
    level_h: float
    braced_bays: tuple[int, ...]
    ladder_bay: int
    tube_rgb: tuple[int, int, int]
    plank_rgb: tuple[int, int, int]

    def deck_y(self, level: int) -> float:
        return self.base_y - level * self.level_h

    @property
    def x2(self) -> float:
        return self.x1 + self.n_bays * self.bay_w

    @property
    def tube_w(self) -> float:
        return max(1.0, 0.035 * self.level_h)


@dataclass(frozen=True)
class Clutter:
    """One piece of site clutter of ``kind`` centred at column ``x``, standing on row ``base_y``.

    ``size`` is the height of a person at that depth (pixels); ``variant`` picks colours and counts.
    """

    kind: str
    x: float
    base_y: float
    size: float
    variant: int


@dataclass(frozen=True)
class SiteLayout:
    """What a fixed camera always sees.

    Args:
        image_wh: frame ``(width, height)``.
        horizon_y: image row of the horizon (negative when above the frame).
        person_scale: person height in pixels per pixel below the horizon.
        ground: ``"dirt"``, ``"gravel"`` or ``"concrete"``.
        texture_seed: seed of the ground texture (same seed, same pixels).
        scaffolds: scaffold faces, any order.
        clutter: clutter items, any order.
    """

    image_wh: tuple[int, int]
    horizon_y: float
    person_scale: float
    ground: str
    texture_seed: int
    scaffolds: tuple[Scaffold, ...]
    clutter: tuple[Clutter, ...]

    def person_height(self, base_y: float) -> float:
        """Height in pixels of a person whose feet are at image row ``base_y``."""
        return self.person_scale * (base_y - self.horizon_y)

    def base_y_for_height(self, height: float) -> float:
        """The image row where a person ``height`` pixels tall stands."""
        return self.horizon_y + height / self.person_scale


def _px(image_wh: tuple[int, int]) -> float:
    """Pixels per 1080p pixel: sizes are specified for 1080p and scale with the frame height."""
    return image_wh[1] / 1080.0


def sample_layout(rng: np.random.Generator, image_wh: tuple[int, int] = (1920, 1080)) -> SiteLayout:
    """A random site seen by one camera: horizon, ground, 0–3 scaffolds and 8–24 clutter items."""
    w, h = image_wh
    horizon_y = h * rng.uniform(-0.12, 0.26)
    bottom_height = rng.uniform(170, 215) * _px(image_wh)
    scale = bottom_height / (h - horizon_y)
    layout = SiteLayout(image_wh, float(horizon_y), float(scale), str(rng.choice(list(GROUND_KINDS))),
                        int(rng.integers(2**31)), (), ())
    scaffolds = []
    for _ in range(int(rng.choice([0, 1, 1, 2, 2, 3]))):
        base_y = rng.uniform(max(horizon_y, 0) + 0.25 * (h - max(horizon_y, 0)), h * 0.8)
        person_h = layout.person_height(base_y)
        bay_w = person_h * rng.uniform(0.95, 1.35)
        n_bays = int(rng.integers(2, 7))
        n_levels = int(rng.integers(2, 6))
        x1 = rng.uniform(-0.3 * n_bays * bay_w, w - 0.7 * n_bays * bay_w)
        scaffolds.append(Scaffold(
            base_y=float(base_y), x1=float(x1), n_bays=n_bays, n_levels=n_levels, bay_w=float(bay_w),
            level_h=float(person_h * rng.uniform(1.1, 1.16)),
            braced_bays=tuple(int(b) for b in np.flatnonzero(rng.random(n_bays) < 0.35)),
            ladder_bay=int(rng.integers(n_bays)), tube_rgb=TUBE_RGB[rng.integers(len(TUBE_RGB))],
            plank_rgb=PLANK_RGB[rng.integers(len(PLANK_RGB))],
        ))
    clutter = []
    y_top = layout.base_y_for_height(14 * _px(image_wh))
    for _ in range(int(rng.integers(8, 25))):
        base_y = rng.uniform(max(y_top, 0), h * 1.02)
        clutter.append(Clutter(str(rng.choice(CLUTTER_KINDS)), float(rng.uniform(-0.02, 1.02) * w), float(base_y),
                               float(layout.person_height(base_y)), int(rng.integers(1 << 16))))
    return SiteLayout(image_wh, layout.horizon_y, layout.person_scale, layout.ground, layout.texture_seed,
                      tuple(scaffolds), tuple(clutter))


_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)


def standard_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` float32 noise, standard normal quantised to 256 levels (random bytes through a
    quantile table: several times faster than ``rng.standard_normal`` for full frames)."""
    raw = np.frombuffer(rng.bytes(shape[0] * shape[1]), np.uint8).reshape(shape)
    return cv2.LUT(raw, _NORMAL_QUANTILES)


def _smooth_noise(rng: np.random.Generator, image_wh: tuple[int, int], cell: int) -> np.ndarray:
    """``(H, W)`` float32 noise of unit-ish amplitude, smooth over ``cell`` pixels."""
    w, h = image_wh
    small = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def render_ground(layout: SiteLayout) -> np.ndarray:
    """``(H, W, 3)`` uint8 textured ground (and sky/skyline above the horizon), from ``texture_seed``."""
    w, h = layout.image_wh
    rng = np.random.default_rng(layout.texture_seed)
    base = np.array(GROUND_KINDS[layout.ground], np.float32) * rng.uniform(0.85, 1.15)
    grain = {"dirt": 9.0, "gravel": 15.0, "concrete": 5.0}[layout.ground]
    lum = cv2.addWeighted(_smooth_noise(rng, layout.image_wh, 120), 9.0, _smooth_noise(rng, layout.image_wh, 10), 6.0, 0.0)
    lum = cv2.scaleAdd(standard_noise(rng, (h, w)), grain, lum)
    # Patches that keep the texture: slabs, puddles and tyre tracks multiply the ground brightness.
    # drawn at 1/4 resolution: bilinear upsampling gives the patches soft edges for free
    q = 4
    shade = Image.new("L", (w // q + 1, h // q + 1), 128)
    draw = ImageDraw.Draw(shade)
    top = max(layout.horizon_y, 0)
    for _ in range(int(rng.integers(3, 9))):
        cy = rng.uniform(top, h)
        s = max(layout.person_height(cy), 4)
        cx, rx, ry = rng.uniform(0, w), s * rng.uniform(0.8, 4), s * rng.uniform(0.2, 0.9)
        kind = rng.integers(3)
        if kind == 0:  # a concrete slab or a gravel bed: lighter quadrilateral
            pts = [(cx - rx, cy - ry), (cx + rx, cy - ry * rng.uniform(0.5, 1.5)), (cx + rx * 1.1, cy + ry), (cx - rx * 0.9, cy + ry)]
            draw.polygon([(x / q, y / q) for x, y in pts], fill=int(rng.integers(140, 175)))
        elif kind == 1:  # a puddle or wet patch: darker ellipse
            draw.ellipse([(cx - rx) / q, (cy - ry * 0.5) / q, (cx + rx) / q, (cy + ry * 0.5) / q], fill=int(rng.integers(70, 105)))
        else:  # tyre tracks: two darker bands towards the camera
            for off in (-0.4, 0.4):
                draw.line([((cx + off * s) / q, top / q), ((cx + off * s * 3 + rx) / q, h / q)], fill=110,
                          width=max(1, int(s * 0.15 / q)))
    factor = cv2.resize(np.asarray(shade, np.float32) * (1 / 128.0), (w, h), interpolation=cv2.INTER_LINEAR)
    lum_factor = cv2.multiply(lum, factor)
    # channel c = (base_c + tint_c * lum) * factor, saturated to uint8 by OpenCV in one pass
    out = cv2.merge([cv2.addWeighted(factor, float(base[c]), lum_factor, t, 0.0, dtype=cv2.CV_8U)
                     for c, t in enumerate((1.0, 0.95, 0.85))])
    if layout.horizon_y > 0:
        hz = int(layout.horizon_y)
        ramp = np.linspace(0.0, 1.0, hz, dtype=np.float32)[:, None, None]
        sky = np.array([170, 185, 205], np.float32) * (1 - 0.25 * ramp) + np.array([30, 28, 20], np.float32) * ramp
        out[:hz] = np.clip(sky + lum[:hz, :, None] * 0.15, 0, 255).astype(np.uint8)
    if layout.horizon_y > 0:  # a skyline of distant buildings and trees along the horizon
        sky_img = Image.fromarray(out)
        draw = ImageDraw.Draw(sky_img)
        x = -rng.uniform(0, 80)
        while x < w:
            bw, bh = rng.uniform(30, 220), rng.uniform(0.02, 0.12) * h
            grey = int(rng.integers(70, 140))
            draw.rectangle([x, layout.horizon_y - bh, x + bw, layout.horizon_y + 2], fill=(grey, grey, grey + 8))
            x += bw + rng.uniform(-10, 60)
        out = np.asarray(sky_img, np.uint8)
    return out


def draw_scaffold(canvas: Canvas, s: Scaffold, *, front: bool) -> None:
    """Draw the back of a scaffold (ledgers, decks, braces, ladder) or its front (standards, guard rails).

    Workers standing on the scaffold are drawn between the two passes, so standards and guard rails
    occlude them as they would on site.
    """
    tw = s.tube_w
    top = s.deck_y(s.n_levels) - 0.55 * s.level_h
    xs = [s.x1 + j * s.bay_w for j in range(s.n_bays + 1)]
    if not front:
        for level in range(s.n_levels + 1):
            y = s.deck_y(level)
            canvas.line([(xs[0], y), (xs[-1], y)], s.tube_rgb, tw)
            if level == 0:
                continue
            plank_t = max(1.5, 0.07 * s.level_h)
            canvas.rectangle([xs[0], y, xs[-1], y + plank_t], s.plank_rgb)
            for j in range(s.n_bays):  # board joints
                canvas.line([(xs[j] + s.bay_w / 2, y), (xs[j] + s.bay_w / 2, y + plank_t)], _dark(s.plank_rgb), 1)
        for b in s.braced_bays:
            canvas.line([(xs[b], s.deck_y(0)), (xs[b + 1], s.deck_y(min(2, s.n_levels)))], s.tube_rgb, tw * 0.8)
        lx1, lx2 = xs[s.ladder_bay] + s.bay_w * 0.3, xs[s.ladder_bay] + s.bay_w * 0.55
        ladder_top = s.deck_y(s.n_levels) - 0.4 * s.level_h
        rail_rgb = (130, 95, 40)
        canvas.line([(lx1, s.base_y), (lx1, ladder_top)], rail_rgb, tw * 0.8)
        canvas.line([(lx2, s.base_y), (lx2, ladder_top)], rail_rgb, tw * 0.8)
        rung = max(3.0, 0.14 * s.level_h)
        y = s.base_y - rung
        while y > ladder_top:
            canvas.line([(lx1, y), (lx2, y)], rail_rgb, max(1, tw * 0.6))
            y -= rung
        return
    for x in xs:
        canvas.line([(x, s.base_y), (x, top)], s.tube_rgb, tw)
        canvas.rectangle([x - tw * 1.5, s.base_y - tw, x + tw * 1.5, s.base_y], (90, 80, 60))  # base plate
    for level in range(1, s.n_levels + 1):
        y = s.deck_y(level)
        canvas.line([(xs[0], y - 0.55 * s.level_h), (xs[-1], y - 0.55 * s.level_h)], s.tube_rgb, tw)  # guard rail
        canvas.line([(xs[0], y - 0.3 * s.level_h), (xs[-1], y - 0.3 * s.level_h)], s.tube_rgb, tw * 0.8)  # mid rail
        canvas.rectangle([xs[0], y - 0.09 * s.level_h, xs[-1], y], _dark(s.plank_rgb))  # toe board


def _dark(rgb: tuple[int, int, int], f: float = 0.7) -> tuple[int, int, int]:
    return (int(rgb[0] * f), int(rgb[1] * f), int(rgb[2] * f))


def draw_clutter(canvas: Canvas, c: Clutter) -> None:
    """Draw one clutter item; several kinds look a little like workers, vests or helmets on purpose."""
    rng = np.random.default_rng(c.variant)
    s, x, y = c.size, c.x, c.base_y
    if c.kind in ("pallets", "barrel", "cone", "blocks", "container"):
        half = {"container": 0.9, "pallets": 0.5, "blocks": 0.45}.get(c.kind, 0.25) * s
        canvas.shade_ellipse([x - half, y - 0.04 * s, x + half * 1.2, y + 0.05 * s], 0.65)
    if c.kind == "pallets":
        wood = PLANK_RGB[rng.integers(len(PLANK_RGB))]
        ph = max(2.0, 0.08 * s)
        for i in range(int(rng.integers(1, 6))):
            y1 = y - (i + 1) * ph
            canvas.rectangle([x - 0.4 * s, y1, x + 0.4 * s, y1 + ph * 0.45], wood)
            for bx in (-0.4, -0.05, 0.3):
                canvas.rectangle([x + bx * s, y1 + ph * 0.45, x + (bx + 0.1) * s, y1 + ph], _dark(wood))
    elif c.kind == "barrel":
        color = ((30, 70, 150), (220, 100, 30), (160, 40, 30), (40, 40, 40))[rng.integers(4)]
        bw, bh = 0.18 * s, 0.5 * s
        canvas.rectangle([x - bw, y - bh, x + bw, y], color)
        canvas.ellipse([x - bw, y - bh - 0.05 * s, x + bw, y - bh + 0.05 * s], _dark(color, 1.2))
        stripe = (230, 230, 225) if rng.random() < 0.5 else _dark(color)
        for f in (0.3, 0.65):
            canvas.rectangle([x - bw, y - bh * f - 0.03 * s, x + bw, y - bh * f + 0.03 * s], stripe)
    elif c.kind == "cone":
        ch, cw = 0.4 * s, 0.11 * s
        canvas.rectangle([x - cw * 1.4, y - 0.04 * s, x + cw * 1.4, y], (40, 40, 40))
        canvas.polygon([(x - cw, y - 0.04 * s), (x + cw, y - 0.04 * s), (x + cw * 0.15, y - ch), (x - cw * 0.15, y - ch)],
                       (235, 90, 20))
        canvas.polygon([(x - cw * 0.62, y - ch * 0.45), (x + cw * 0.62, y - ch * 0.45), (x + cw * 0.45, y - ch * 0.62),
                        (x - cw * 0.45, y - ch * 0.62)], (235, 235, 230))
    elif c.kind == "rebar":
        canvas.rectangle([x - 0.6 * s, y - 0.05 * s, x - 0.5 * s, y], (90, 70, 50))
        canvas.rectangle([x + 0.5 * s, y - 0.05 * s, x + 0.6 * s, y], (90, 70, 50))
        for _ in range(int(rng.integers(10, 30))):
            yy = y - 0.05 * s - rng.uniform(0, 0.12 * s)
            dx, dy = rng.uniform(-0.8, -0.5) * s, rng.uniform(-0.05, 0.05) * s
            rust = (int(rng.integers(110, 150)), int(rng.integers(60, 80)), int(rng.integers(35, 50)))
            canvas.line([(x + dx, yy + dy), (x - dx, yy - dy)], rust, max(1, 0.015 * s))
    elif c.kind == "blocks":
        grey = int(rng.integers(130, 185))
        bw, bh = 0.2 * s, 0.1 * s
        for row in range(int(rng.integers(1, 5))):
            for col in range(3):
                x1 = x - 0.3 * s + col * bw + (row % 2) * bw * 0.5
                canvas.rectangle([x1, y - (row + 1) * bh, x1 + bw - 1, y - row * bh - 1], (grey, grey, grey - 6))
    elif c.kind == "vest_post":  # a hi-vis vest hung on a post: a classic person false positive
        canvas.line([(x, y), (x, y - 0.95 * s)], (110, 100, 80), max(1, 0.03 * s))
        vest = ((200, 230, 30), (245, 120, 20))[rng.integers(2)]
        canvas.polygon([(x - 0.12 * s, y - 0.85 * s), (x + 0.12 * s, y - 0.85 * s), (x + 0.14 * s, y - 0.5 * s),
                        (x - 0.14 * s, y - 0.5 * s)], vest)
        canvas.rectangle([x - 0.14 * s, y - 0.62 * s, x + 0.14 * s, y - 0.59 * s], (225, 225, 225))
    elif c.kind == "fence":  # a mesh fence panel: occludes without hiding
        fw, fh = 1.3 * s * rng.uniform(0.8, 1.2), 1.05 * s
        frame = (150, 155, 160)
        step = max(3.0, 0.06 * s)
        mesh = (120, 125, 130)
        xx = x - fw / 2
        while xx < x + fw / 2:
            canvas.line([(xx, y - fh), (xx, y)], mesh, 1)
            xx += step
        yy = y - fh
        while yy < y:
            canvas.line([(x - fw / 2, yy), (x + fw / 2, yy)], mesh, 1)
            yy += step * 2
        for fx in (x - fw / 2, x + fw / 2):
            canvas.line([(fx, y - fh), (fx, y)], frame, max(1, 0.03 * s))
        canvas.rectangle([x - fw / 2 - 0.1 * s, y - 0.05 * s, x - fw / 2 + 0.1 * s, y], (60, 60, 60))
    elif c.kind == "container":
        color = ((200, 170, 40), (60, 110, 70), (120, 120, 125), (60, 80, 130))[rng.integers(4)]
        cw, ch = 1.6 * s * rng.uniform(0.7, 1.3), 0.75 * s
        depth = 0.12 * s
        canvas.polygon([(x - cw / 2, y - ch), (x + cw / 2, y - ch), (x + cw / 2 + depth, y - ch - depth),
                        (x - cw / 2 + depth, y - ch - depth)], _dark(color, 1.15))
        canvas.rectangle([x - cw / 2, y - ch, x + cw / 2, y], color)
        step = max(2.0, 0.06 * s)
        xx = x - cw / 2 + step
        while xx < x + cw / 2:
            canvas.line([(xx, y - ch), (xx, y)], _dark(color, 0.8), 1)
            xx += step
    else:  # spoil heap
        color = GROUND_KINDS["dirt"]
        canvas.chord([x - 0.7 * s, y - 0.5 * s, x + 0.7 * s, y + 0.5 * s], 180, 360, _dark(color, rng.uniform(0.6, 0.9)))

"""Workers: where they stand, what they wear, and how they are drawn.

A `Worker` is a plain value; `draw_worker` paints it on a `Canvas` with its body, head, helmet and
rope pixels labelled, so ground-truth boxes are the tight extent of what was drawn. Proportions are
fractions of the worker's height ``h`` (soles to the top of the head, helmet not included): head
``0.14 h``, shoulders at ``0.17 h`` below the top, hips at ``0.52 h``; a helmet adds ``0.02 h`` on top.

Safety rope (drawn so that it is visible in the person box widened to top ``+0.2 h`` and bottom
``+1.5 h``): ``correct`` runs taut from the back D-ring up to an anchor on the scaffold ledger about
``0.1 h`` above the head; ``dangling`` hangs loose beside the legs to below the feet with an open
snap hook; ``anchored_low`` runs down to an anchor at foot level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sitesight.synth.canvas import PART_BODY, PART_HEAD, PART_HELMET, PART_ROPE, Canvas, worker_code
from sitesight.synth.layout import SiteLayout

__all__ = ["Worker", "sample_workers", "jitter_workers", "draw_worker", "ROPE_STATES"]

ROPE_STATES = ("none", "correct", "dangling", "anchored_low")
RGB = tuple[int, int, int]
SKIN = ((236, 196, 160), (200, 150, 110), (160, 110, 75), (110, 75, 50), (90, 60, 40))
SHIRTS = ((40, 60, 110), (70, 70, 70), (150, 40, 35), (200, 200, 195), (50, 90, 60), (170, 120, 60), (25, 25, 30))
TROUSERS = ((35, 45, 80), (55, 55, 60), (110, 95, 70), (30, 30, 30), (70, 80, 90))
VESTS = ((205, 235, 30), (250, 120, 20), (240, 200, 20))
HELMETS = ((240, 240, 235), (245, 210, 20), (245, 120, 20), (200, 35, 30), (30, 80, 170), (40, 140, 60))
HAIR = ((25, 20, 18), (70, 50, 30), (130, 120, 110), (200, 40, 30), (30, 60, 140), (240, 130, 30))
ROPES = ((250, 140, 20), (240, 220, 30), (30, 120, 220), (210, 40, 40))


@dataclass(frozen=True)
class Worker:
    """One worker in a frame.

    ``x, foot_y`` is the point between the feet (pixels); ``height`` the figure height in pixels;
    ``depth_y`` orders drawing (the ground row of the stance: far first). ``scaffold`` indexes
    ``layout.scaffolds`` (-1 on the ground) and ``level`` is the deck. ``rope`` is one of
    `ROPE_STATES`; ``anchor_xy`` is where a ``correct`` or ``anchored_low`` rope is tied.
    """

    x: float
    foot_y: float
    height: float
    depth_y: float
    scaffold: int
    level: int
    skin: RGB
    shirt: RGB
    trousers: RGB
    vest: RGB | None
    helmet: RGB | None
    hair: RGB
    harness: bool
    rope: str
    rope_rgb: RGB
    rope_side: int
    anchor_xy: tuple[float, float]
    facing: float
    arms: tuple[float, float]
    stride: float

    @property
    def top_y(self) -> float:
        return self.foot_y - self.height * (1.02 if self.helmet is not None else 1.0)

    def approx_xyxy(self) -> tuple[float, float, float, float]:
        """A box that surely contains every pixel of the figure (not tight; for placement and crops)."""
        h = self.height
        return (self.x - 0.5 * h, self.foot_y - 1.1 * h, self.x + 0.5 * h, self.foot_y + 0.05 * h + 2)


def _pick(rng: np.random.Generator, options: tuple) -> tuple:
    return options[int(rng.integers(len(options)))]


def _new_worker(rng: np.random.Generator, x: float, foot_y: float, height: float, depth_y: float,
                scaffold: int, level: int, anchor_y: float) -> Worker:
    on_scaffold = scaffold >= 0
    harness = rng.random() < (0.85 if on_scaffold else 0.2)
    if not harness:
        rope = "none"
    elif on_scaffold:
        rope = str(rng.choice(["correct", "dangling", "anchored_low"], p=[0.65, 0.2, 0.15]))
    else:
        rope = str(rng.choice(["dangling", "anchored_low"], p=[0.6, 0.4]))
    side = 1 if rng.random() < 0.5 else -1
    if rope == "correct":
        anchor = (x + side * rng.uniform(0.04, 0.07) * height, anchor_y)
    else:
        anchor = (x + side * rng.uniform(0.03, 0.07) * height, foot_y - 0.01 * height)
    working = rng.random() < 0.3
    return Worker(
        x=float(x), foot_y=float(foot_y), height=float(height), depth_y=float(depth_y), scaffold=scaffold, level=level,
        skin=_pick(rng, SKIN), shirt=_pick(rng, SHIRTS), trousers=_pick(rng, TROUSERS),
        vest=_pick(rng, VESTS) if rng.random() < 0.6 else None,
        helmet=_pick(rng, HELMETS) if rng.random() < 0.65 else None,
        hair=_pick(rng, HAIR), harness=bool(harness), rope=rope, rope_rgb=_pick(rng, ROPES), rope_side=side,
        anchor_xy=(float(anchor[0]), float(anchor[1])), facing=float(rng.uniform(0.7, 1.0)),
        arms=(float(rng.uniform(0.05, 1.9 if working else 0.35)), float(rng.uniform(0.05, 0.5))),
        stride=float(rng.uniform(0.0, 1.0)),
    )


def _overlaps(box: tuple[float, ...], boxes: list[tuple[float, ...]], limit: float) -> bool:
    for b in boxes:
        iw = min(box[2], b[2]) - max(box[0], b[0])
        ih = min(box[3], b[3]) - max(box[1], b[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            union = (box[2] - box[0]) * (box[3] - box[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > limit:
                return True
    return False


def sample_workers(rng: np.random.Generator, layout: SiteLayout, n_workers: int) -> tuple[Worker, ...]:
    """``n_workers`` workers placed on the ground (heights 20–200 px at 1080p, smaller further up
    the frame) and on scaffold decks; fewer when the frame has no room left after 40 tries each."""
    w, h = layout.image_wh
    px = h / 1080.0
    h_min, h_max = max(12.0, 20 * px), 200 * px
    h_max = min(h_max, layout.person_height(h - 1))
    decks = [(i, lv) for i, s in enumerate(layout.scaffolds) for lv in range(1, s.n_levels)]
    placed: list[tuple[float, ...]] = []
    workers: list[Worker] = []
    for _ in range(n_workers):
        for _try in range(40):
            if decks and rng.random() < 0.45:
                si, level = decks[int(rng.integers(len(decks)))]
                s = layout.scaffolds[si]
                height = layout.person_height(s.base_y) * rng.uniform(0.96, 1.04)
                x = rng.uniform(s.x1 + 0.2 * height, s.x2 - 0.2 * height)
                worker = _new_worker(rng, x, s.deck_y(level) - 0.01 * height, height, s.base_y, si, level,
                                     s.deck_y(level + 1))
            else:
                height = h_min + (h_max - h_min) * rng.random() ** 1.3
                foot_y = min(layout.base_y_for_height(height), h - 1.0)
                x = rng.uniform(0.25 * height, w - 0.25 * height)
                worker = _new_worker(rng, x, foot_y, height, foot_y, -1, 0, 0.0)
            box = worker.approx_xyxy()
            if box[0] < 0 or box[2] > w or worker.top_y < 1 or _overlaps(box, placed, 0.35):
                continue
            placed.append(box)
            workers.append(worker)
            break
    return tuple(workers)


def jitter_workers(rng: np.random.Generator, layout: SiteLayout, workers: tuple[Worker, ...]) -> tuple[Worker, ...]:
    """The same workers a few seconds later: each moved a little along the ground or deck, arms moved."""
    w, h = layout.image_wh
    out = []
    for wk in workers:
        dx = rng.normal(0, 0.04 * wk.height)
        if wk.scaffold >= 0:
            s = layout.scaffolds[wk.scaffold]
            x = float(np.clip(wk.x + dx, s.x1 + 0.2 * wk.height, s.x2 - 0.2 * wk.height))
            moved = replace(wk, x=x, anchor_xy=(wk.anchor_xy[0] + x - wk.x, wk.anchor_xy[1]))
        else:
            foot_y = float(np.clip(wk.foot_y + rng.normal(0, 0.015 * wk.height), 1, h - 1))
            height = wk.height * layout.person_height(foot_y) / max(layout.person_height(wk.foot_y), 1e-6)
            x = float(np.clip(wk.x + dx, 0.5 * height, w - 0.5 * height))
            anchor = (wk.anchor_xy[0] + x - wk.x, wk.anchor_xy[1] + foot_y - wk.foot_y)
            moved = replace(wk, x=x, foot_y=foot_y, height=height, depth_y=foot_y, anchor_xy=anchor)
            if moved.top_y < 1:
                moved = wk
        arms = (float(np.clip(wk.arms[0] + rng.normal(0, 0.2), 0.0, 1.9)), float(np.clip(wk.arms[1] + rng.normal(0, 0.1), 0, 0.6)))
        out.append(replace(moved, arms=arms, stride=float(np.clip(wk.stride + rng.normal(0, 0.3), 0, 1))))
    return tuple(out)


def _limb(sx: float, sy: float, length: float, angle: float, side: int) -> list[tuple[float, float]]:
    """Shoulder → elbow → hand for an arm swung ``angle`` radians out from hanging down."""
    ex, ey = sx + side * math.sin(angle) * length * 0.5, sy + math.cos(angle) * length * 0.5
    a2 = angle * 0.7
    return [(sx, sy), (ex, ey), (ex + side * math.sin(a2) * length * 0.5, ey + math.cos(a2) * length * 0.5)]


def draw_worker(canvas: Canvas, wk: Worker, index: int) -> None:
    """Paint worker number ``index``: legs, torso, vest, harness, arms, head, helmet, then the rope."""
    h, cx, fy = wk.height, wk.x, wk.foot_y
    top, wf = fy - h, wk.facing
    body = worker_code(index, PART_BODY)
    if wk.scaffold < 0:
        canvas.shade_ellipse([cx - 0.2 * h, fy - 0.035 * h, cx + 0.25 * h, fy + 0.035 * h], 0.6)
    # legs and boots
    spread = 0.02 + 0.07 * wk.stride
    leg_w = 0.085 * h * (0.8 + 0.2 * wf)
    for side in (-1, 1):
        hip = (cx + side * 0.05 * h * wf, top + 0.5 * h)
        foot = (cx + side * spread * h, fy - 0.05 * h)
        canvas.line([hip, foot], wk.trousers, leg_w, body)
        canvas.rectangle([foot[0] - 0.05 * h, fy - 0.05 * h, foot[0] + 0.05 * h, fy], (40, 34, 28), body)
    # torso
    shoulder, hip_half = 0.125 * h * wf, 0.1 * h * wf
    torso = [(cx - shoulder, top + 0.17 * h), (cx + shoulder, top + 0.17 * h), (cx + hip_half, top + 0.53 * h),
             (cx - hip_half, top + 0.53 * h)]
    canvas.polygon(torso, wk.shirt, body)
    if wk.vest is not None:
        vest = [(cx - shoulder * 0.95, top + 0.18 * h), (cx + shoulder * 0.95, top + 0.18 * h),
                (cx + hip_half * 1.02, top + 0.47 * h), (cx - hip_half * 1.02, top + 0.47 * h)]
        canvas.polygon(vest, wk.vest, body)
        stripe = (225, 228, 220)
        for f in (0.33, 0.41):
            half = shoulder + (hip_half - shoulder) * (f - 0.17) / 0.36
            canvas.rectangle([cx - half, top + f * h, cx + half, top + (f + 0.022) * h], stripe, body)
    if wk.harness:
        strap, sw = (30, 30, 30) if wk.vest is not None else (230, 120, 20), max(1.0, 0.022 * h)
        for side in (-1, 1):
            canvas.line([(cx + side * shoulder * 0.55, top + 0.17 * h), (cx + side * hip_half * 0.5, top + 0.5 * h)], strap, sw, body)
        canvas.line([(cx - hip_half, top + 0.5 * h), (cx + hip_half, top + 0.5 * h)], strap, sw, body)
    # arms and hands
    arm_w = 0.06 * h
    for side, angle in zip((-1, 1), wk.arms, strict=True):
        pts = _limb(cx + side * (shoulder - arm_w * 0.4), top + 0.19 * h, 0.34 * h, angle, side)
        canvas.line(pts, wk.shirt, arm_w, body)
        hx, hy = pts[-1]
        canvas.ellipse([hx - 0.025 * h, hy - 0.025 * h, hx + 0.025 * h, hy + 0.025 * h], wk.skin, body)
    # neck, head, hair or helmet
    canvas.rectangle([cx - 0.025 * h, top + 0.12 * h, cx + 0.025 * h, top + 0.18 * h], wk.skin, body)
    head_box = [cx - 0.055 * h, top, cx + 0.055 * h, top + 0.14 * h]
    canvas.ellipse(head_box, wk.skin, worker_code(index, PART_HEAD))
    if wk.helmet is None:
        canvas.chord(head_box, 180, 360, wk.hair, worker_code(index, PART_HEAD))
    else:
        helmet = worker_code(index, PART_HELMET)
        canvas.chord([cx - 0.065 * h, top - 0.02 * h, cx + 0.065 * h, top + 0.13 * h], 180, 360, wk.helmet, helmet)
        canvas.rectangle([cx - 0.078 * h, top + 0.045 * h, cx + 0.078 * h, top + 0.06 * h], wk.helmet, helmet)
    if wk.rope != "none":
        _draw_rope(canvas, wk, index)


def _draw_rope(canvas: Canvas, wk: Worker, index: int) -> None:
    h, cx, fy, side = wk.height, wk.x, wk.foot_y, wk.rope_side
    top = fy - h
    rope, rw = worker_code(index, PART_ROPE), max(1.0, 0.026 * h)
    ring = max(1.5, 0.025 * h)
    d_ring = (cx + side * 0.05 * h, top + 0.24 * h)
    metal = (90, 90, 95)
    if wk.rope == "correct":
        ax, ay = wk.anchor_xy
        canvas.line([d_ring, (ax, ay)], wk.rope_rgb, rw, rope)
        canvas.ellipse([ax - ring, ay - ring, ax + ring, ay + ring], metal, rope)
    elif wk.rope == "anchored_low":
        ax, ay = wk.anchor_xy
        mid = (cx + side * 0.09 * h, top + 0.6 * h)
        canvas.line([d_ring, mid, (ax, ay)], wk.rope_rgb, rw, rope)
        canvas.rectangle([ax - ring, ay - ring * 0.5, ax + ring, ay + ring * 1.5], metal, rope)
    else:  # dangling: loose beside the legs, past the deck edge (or onto the ground), open hook at the end
        drop = 0.35 * h if wk.scaffold >= 0 else 0.04 * h
        pts = [d_ring, (cx + side * 0.09 * h, top + 0.5 * h), (cx + side * 0.08 * h, fy - 0.1 * h),
               (cx + side * 0.07 * h, fy + drop)]
        canvas.line(pts, wk.rope_rgb, rw, rope)
        ex, ey = pts[-1]
        canvas.rectangle([ex - ring, ey, ex + ring, ey + 2.5 * ring], metal, rope)

"""Synthetic site frame speed: `render_site_frame` at 1080p, by stage, and `write_site_dataset` with JPEG.

There is no peer for procedural site scenes; the number to keep is "well under 0.5 s per 1080p
frame" so that the demo and tests can afford fresh frames. Stages are timed on the same frames:
ground texture, drawing + ground truth, capture conditions (light, blur, noise).
Run: ``.venv/bin/python benchmarks/bench_synth.py --frames 20``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np

import sitesight.synth.site as site
from sitesight.synth import render_site_frame, write_site_dataset
from sitesight.synth.layout import render_ground


def _timed(fn, store: list[float]):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        store.append(time.perf_counter() - t0)
        return out

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    render_site_frame(np.random.default_rng(999))  # warm-up (font, OpenCV)
    ground, light = [], []
    site.render_ground, site._apply_conditions = _timed(render_ground, ground), _timed(site._apply_conditions, light)
    total, persons = [], []
    for seed in range(args.frames):
        t0 = time.perf_counter()
        _, gt = render_site_frame(np.random.default_rng(seed), overlay_text="2024-05-06 10:00:00  CAM00")
        total.append(time.perf_counter() - t0)
        persons.append(int(np.sum(gt.class_id == 0)))
    med = statistics.median
    print(f"machine: {platform.machine()} {platform.processor() or ''}, numpy {np.__version__}")
    print(f"render_site_frame 1920x1080, {args.frames} frames, {min(persons)}-{max(persons)} persons: "
          f"median {med(total) * 1000:.0f} ms (max {max(total) * 1000:.0f} ms)")
    print(f"  ground texture {med(ground) * 1000:.0f} ms, conditions {med(light) * 1000:.0f} ms, "
          f"drawing + ground truth {med([t - g - c for t, g, c in zip(total, ground, light, strict=True)]) * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_site_dataset(tmp, n_frames=args.frames, seed=0)
        dt = time.perf_counter() - t0
    print(f"write_site_dataset (render + JPEG q92): {args.frames / dt:.1f} frames/s")


if __name__ == "__main__":
    main()

"""Frozen-frame dedup speed: sitesight (JPEG draft decode + DCT phash) vs imagehash.phash on full decodes.

Writes ``--frames`` synthetic 1920x1080 CCTV JPEGs (a few cameras, frozen runs whose burned-in clock
still ticks, slow drift, real scene changes), then in the same run times:

* ``sitesight``: `sitesight.curation.dedup.dedup_frames` (hash + decisions), with 1 and 2 threads;
* ``imagehash``: ``imagehash.phash(Image.open(path))`` for every frame (full decode), the peer.

Prints frames/s for each, the speed-up, and how often the two hashes lead to the same keep/drop
decision. Run: ``.venv/bin/python benchmarks/bench_dedup.py --frames 400``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sitesight.curation.dedup import dedup_frames


def write_frames(folder: Path, n_frames: int, seed: int = 0, image_wh: tuple[int, int] = (1920, 1080)) -> list[Path]:
    """Synthetic CCTV frames named ``cam<k>_<YYYYmmddTHHMMSS>.jpg``; every 10th frame is a new scene."""
    rng = np.random.default_rng(seed)
    w, h = image_wh
    paths: list[Path] = []
    cameras = 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    scenes: dict[int, Image.Image] = {}
    for i in range(n_frames):
        cam = i % cameras
        if i % (cameras * 10) < cameras:  # a new scene for this camera every 10 of its frames
            freq = rng.uniform(0.002, 0.01, size=4)
            base = 110 + 60 * np.sin(xx * freq[0] + yy * freq[1]) * np.cos(yy * freq[2] - xx * freq[3])
            rgb = np.stack([base, base * 0.9 + 20, base * 0.8 + 30], axis=-1)
            rgb += rng.normal(0, 3, size=rgb.shape).astype(np.float32)
            scene = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(scene)
            for _ in range(12):
                x, y = int(rng.integers(0, w - 200)), int(rng.integers(0, h - 200))
                draw.rectangle([x, y, x + int(rng.integers(40, 200)), y + int(rng.integers(40, 200))],
                               fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            scenes[cam] = scene
        frame = scenes[cam].copy()
        draw = ImageDraw.Draw(frame)
        draw.rectangle([20, 20, 420, 60], fill=(0, 0, 0))
        draw.text((30, 30), f"CAM{cam} 2024-05-12 08:{i // 60 % 60:02d}:{i % 60:02d}", fill=(255, 255, 255))
        path = folder / f"cam{cam}_20240512T08{i // 60 % 60:02d}{i % 60:02d}.jpg"
        frame.save(path, quality=90)
        paths.append(path)
    return paths


def run_imagehash(paths: list[Path], max_distance: int) -> tuple[float, float, dict[str, bool]]:
    """(wall seconds, process CPU seconds, keep decision per path) of imagehash on full decodes."""
    import imagehash

    from sitesight.curation.captures import capture_from_path

    t0, c0 = time.perf_counter(), time.process_time()
    hashes = {p: imagehash.phash(Image.open(p)) for p in paths}
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    caps = sorted((capture_from_path(p) for p in paths), key=lambda c: (c.camera_id, c.timestamp, str(c.path)))
    last: dict[str, imagehash.ImageHash] = {}
    kept: dict[str, bool] = {}
    for c in caps:
        h = hashes[c.path]
        keep = c.camera_id not in last or (h - last[c.camera_id]) > max_distance
        if keep:
            last[c.camera_id] = h
        kept[str(c.path)] = keep
    return elapsed, cpu, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-distance", type=int, default=4)
    args = parser.parse_args()
    region = (0.0, 0.0, 0.25, 0.07)  # the burned-in clock, as fractions of the frame
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_frames(Path(tmp), args.frames)
        dedup_frames(paths[:20])  # warm the page cache and imports
        names = ("sitesight_2_threads", "sitesight_1_thread", "imagehash_full_decode")
        times: dict[str, list[float]] = {k: [] for k in names}
        cpus: dict[str, list[float]] = {k: [] for k in names}  # process CPU time, all threads
        result = None
        ref: dict[str, bool] = {}
        for _ in range(args.repeats):
            for name, workers in (("sitesight_2_threads", 2), ("sitesight_1_thread", 1)):
                t0, c0 = time.perf_counter(), time.process_time()
                result = dedup_frames(paths, max_distance=args.max_distance, ignore_regions=[region], workers=workers)
                times[name].append(time.perf_counter() - t0)
                cpus[name].append(time.process_time() - c0)
            elapsed, cpu, ref = run_imagehash(paths, args.max_distance)
            times["imagehash_full_decode"].append(elapsed)
            cpus["imagehash_full_decode"].append(cpu)
        assert result is not None
        fps = {k: args.frames / statistics.median(v) for k, v in times.items()}
        cpu_ms = {k: 1000 * statistics.median(v) / args.frames for k, v in cpus.items()}
        ours = {d.path: d.kept for d in result.decisions}
        agree = sum(ours[p] == ref[p] for p in ours) / len(ours)
        kib = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        print(f"{args.frames} frames 1920x1080 JPEG q90 ({kib:.0f} KiB each on average), median of {args.repeats} runs")
        for k in names:
            print(f"  {k:24s} {fps[k]:8.1f} frames/s wall  {cpu_ms[k]:6.2f} ms CPU/frame")
        ih = "imagehash_full_decode"
        print(f"  speed-up (2 threads vs imagehash): {fps['sitesight_2_threads'] / fps[ih]:.1f}x wall")
        print(f"  speed-up (1 thread  vs imagehash): {fps['sitesight_1_thread'] / fps[ih]:.1f}x wall, "
              f"{cpu_ms[ih] / cpu_ms['sitesight_1_thread']:.1f}x CPU per frame")
        print(f"  os.getloadavg() = {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"  kept: sitesight {result.summary()['kept']}, imagehash {sum(ref.values())}; decisions agree on {agree:.1%}")


if __name__ == "__main__":
    main()

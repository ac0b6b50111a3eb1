"""Time MAD discrepancy scoring of two stored runs over a large pool, against a per-frame baseline.

Two stand-in "models" over ``--frames`` 1080p frames with about ``--boxes`` boxes each (the second
is the first jittered, with 10 % of the boxes dropped, 5 % class flips and faint clutter; both carry
3-class attribute probabilities) are written as sitesight runs (Parquet shards), then:

* **load**: `sitesight.mining.pool.load_pool` reads both runs into flat arrays;
* **score**: `sitesight.mining.discrepancy.pair_discrepancy` (detection + classification +
  cross-task terms) over every frame;
* **select**: `sitesight.mining.select.select_top` picks 300 frames under the diversity rules.

The peer is the obvious per-frame implementation (one `Detections` per frame from
`sitesight.sliced.store.load_run`, `sitesight.boxes.pairwise_iou`, a Python greedy loop), timed on the
first ``--baseline-frames`` frames and extrapolated linearly; its detection term is compared with
sitesight's on those frames, so the speed never comes from a different answer.

Run:
    .venv/bin/python benchmarks/bench_mad.py [--frames 100000] [--boxes 20] [--baseline-frames 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import sitesight
from sitesight import Detections
from sitesight.boxes import pairwise_iou
from sitesight.mining.discrepancy import pair_discrepancy
from sitesight.mining.pool import load_pool
from sitesight.mining.select import select_top
from sitesight.sliced.store import load_run, write_run


def make_runs(root: Path, n_frames: int, boxes: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(boxes, n_frames)
    n = int(counts.sum())
    xy = rng.uniform(0, 1800, (n, 2))
    h = rng.uniform(16, 260, n)
    xyxy = np.c_[xy, xy + np.c_[0.4 * h, h]].astype(np.float32)
    cls = rng.integers(0, 3, n)
    score = rng.uniform(0.3, 0.98, n).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    keep = rng.random(n) > 0.1
    jit = xyxy + rng.normal(0, 3, xyxy.shape).astype(np.float32)
    cls_b = np.where(rng.random(n) < 0.05, (cls + 1) % 3, cls)
    score_b = np.clip(score + rng.normal(0, 0.1, n), 0.05, 1).astype(np.float32)
    bounds = np.r_[0, np.cumsum(counts)]
    frames = [(f"/pool/cam{i % 50}_{1700000000 + 60 * i}.jpg", (1920, 1080)) for i in range(n_frames)]
    det_a, det_b = [], []
    for i in range(n_frames):
        s, e = bounds[i], bounds[i + 1]
        det_a.append(Detections(xyxy=xyxy[s:e], score=score[s:e], class_id=cls[s:e], attributes={"safety_rope_probs": probs[s:e]}))
        k = keep[s:e]
        det_b.append(Detections(xyxy=jit[s:e][k], score=score_b[s:e][k], class_id=cls_b[s:e][k],
                                attributes={"safety_rope_probs": probs[s:e][k][:, ::-1].copy()}))
    runs = {}
    for name, dets in (("A", det_a), ("B", det_b)):
        write_run(root / name, frames, dets, model=f"bench {name}", parameters={}, frames_per_shard=10_000)
        runs[name] = root / name
    return runs


def baseline_det(raw_a: tuple[Detections, ...], raw_b: tuple[Detections, ...], iou: float = 0.5) -> np.ndarray:
    """The per-frame way: pairwise IoU per frame, sequential greedy, the same detection term."""
    out = np.zeros(len(raw_a))
    for f, (a, b) in enumerate(zip(raw_a, raw_b, strict=True)):
        a, b = a[a.score >= 0.05], b[b.score >= 0.05]
        m = pairwise_iou(a.xyxy, b.xyxy)
        ia, ib = np.nonzero(m >= iou)
        w = m[ia, ib] + (a.class_id[ia] == b.class_id[ib])
        match_a, used_b = {}, set()
        for k in sorted(range(ia.size), key=lambda k: (-w[k], ia[k], ib[k])):
            if ia[k] not in match_a and ib[k] not in used_b:
                match_a[ia[k]] = ib[k]
                used_b.add(ib[k])
        total = 0.0
        for i in range(len(a)):
            sa = float(a.score[i])
            if i not in match_a:
                total += sa
                continue
            j = match_a[i]
            sb, lo = float(b.score[j]), min(sa, float(b.score[j]))
            total += abs(sa - sb)
            if a.class_id[i] != b.class_id[j]:
                total += lo
            else:
                total += 0.5 * lo * (1 - float(pairwise_iou(a.xyxy[i : i + 1], b.xyxy[j : j + 1])[0, 0]))
        total += float(b.score[[j for j in range(len(b)) if j not in used_b]].sum())
        out[f] = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--baseline-frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"sitesight {sitesight.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        runs = make_runs(Path(tmp), args.frames, args.boxes, args.seed)
        print(f"wrote 2 runs x {args.frames} frames in {time.perf_counter() - t:.1f} s (not timed below)")
        t0 = time.perf_counter()
        pool = load_pool(runs)
        t1 = time.perf_counter()
        pd = pair_discrepancy(pool, "A", "B")
        t2 = time.perf_counter()
        sel = select_top(pd.total, budget=300, camera=pool.camera, timestamp=pool.timestamp, eligible=pd.confident > 0)
        t3 = time.perf_counter()
        boxes = len(pool.runs["A"]) + len(pool.runs["B"])
        print(f"pool: {pool.n_frames} frames, {boxes} boxes in 2 runs")
        print(f"| step | sitesight s |\n|---|---:|\n| load 2 runs (flat) | {t1 - t0:.2f} |\n| score (det+cls+cross) | {t2 - t1:.2f} |"
              f"\n| select 300 (diversity) | {t3 - t2:.2f} |\n| **total** | **{t3 - t0:.2f}** |")
        nb = min(args.baseline_frames, args.frames)
        tb = time.perf_counter()
        run_a, run_b = load_run(runs["A"]), load_run(runs["B"])
        tl = time.perf_counter()
        det = baseline_det(run_a.raw[:nb], run_b.raw[:nb])
        te = time.perf_counter()
        per_frame = (te - tl) / nb
        print(f"baseline (per-frame Python): load_run of both runs {tl - tb:.2f} s; scoring {nb} frames {te - tl:.2f} s "
              f"→ {per_frame * args.frames:.0f} s extrapolated to {args.frames} frames (detection term only)")
        pd_det = pair_discrepancy(pool.take(np.arange(nb)), "A", "B", rules=None).det
        print(f"detection term agrees with the baseline on {nb} frames: max |diff| = {np.abs(det - pd_det).max():.2e}")
        print(f"speed-up of scoring: {per_frame * args.frames / (t2 - t1):.0f}x (baseline computes the detection term only)")
        print(f"selected {sel.frames.size} frames; skipped: {sel.skipped}")


if __name__ == "__main__":
    main()

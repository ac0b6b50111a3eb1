"""Paired bootstrap speed: 10,000 resamples over 5,000 frames (ΔAP, ΔAP50, ΔF1, precision, recall,
overall and per COCO size), against the naive way — re-evaluating both models with pycocotools-parity
`evaluate_coco` on every resampled frame list — timed on a few resamples and scaled.

Frames and both models' detections are simulated (`tests/compare/simulate.py`: ~3 workers per frame,
every size bucket, shared frame difficulty). Table building (matching each model once) is timed
apart from the resampling.

    .venv/bin/python benchmarks/bench_compare.py [--frames 5000] [--resamples 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.compare import simulate as sim  # noqa: E402

from sitesight.compare.bootstrap import paired_bootstrap  # noqa: E402
from sitesight.compare.detection_table import detection_table  # noqa: E402
from sitesight.evaluation.coco import evaluate_coco  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--naive", type=int, default=3, help="resamples timed for the naive re-evaluation")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    fr = sim.frames(rng, args.frames)
    pa = sim.detect(rng, fr["gts"], fr["difficulty"], skill=1.0)
    pb = sim.detect(rng, fr["gts"], fr["difficulty"], skill=1.2)
    n_gt = sum(len(g) for g in fr["gts"])
    n_pred = sum(len(p) for p in pa) + sum(len(p) for p in pb)
    print(f"{args.frames} frames, {n_gt} workers, {n_pred} predictions (both models)")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    configs = (("headline: AP, AP50, F1, precision, recall", {"all": (0.0, 1e10)}),
               ("full: + per COCO size (small, medium, large)", None))
    for label, ranges in configs:
        kw = {} if ranges is None else {"area_ranges": ranges}
        t0 = time.perf_counter()
        ta = detection_table(fr["gts"], pa, class_names=("person",), conf=0.5, **kw)
        tb = detection_table(fr["gts"], pb, class_names=("person",), conf=0.5, **kw)
        build = time.perf_counter() - t0
        print(f"[{label}] tables (match each model once): {build:.2f} s, {ta.counts.shape[1]} columns per model")
        times, cpu = [], []
        for r in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, deltas = paired_bootstrap(ta.counts, tb.counts, ta.statistic, tb.statistic, n_resamples=args.resamples, seed=r)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            print(f"  run {r + 1}: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU (load {os.getloadavg()[0]:.1f})")
        boot = statistics.median(times)
        lo, hi = np.percentile(deltas[:, 0], [2.5, 97.5])
        print(f"  bootstrap: {args.resamples:,} resamples x {args.frames:,} frames: median {boot:.2f} s wall, "
              f"{statistics.median(cpu):.2f} s CPU ({boot / args.resamples * 1e3:.3f} ms per resample); ΔAP interval [{lo:+.4f}, {hi:+.4f}]")
    naive = []
    for _ in range(args.naive):
        pick = rng.integers(0, args.frames, args.frames)
        gts = [fr["gts"][i] for i in pick]
        t0 = time.perf_counter()
        evaluate_coco(gts, [pa[i] for i in pick], class_names=("person",))
        evaluate_coco(gts, [pb[i] for i in pick], class_names=("person",))
        naive.append(time.perf_counter() - t0)
    per = statistics.median(naive)
    print(f"naive re-evaluation (evaluate_coco on both models per resample): {per:.2f} s per resample "
          f"-> {per * args.resamples / 60:.0f} min for {args.resamples:,}; the full table bootstrap is {per * args.resamples / (boot + build):.0f}x faster "
          "(tables included)")


if __name__ == "__main__":
    main()

"""The 40-combination sweep (10 merge settings x 4 confidences) over 600 stored 1080p frames.

Builds a stored run of 600 synthetic 1920x1080 frames (ground truth from `sitesight.synth`, raw
sliced boxes from the clearly labelled stand-in detector `sitesight.sliced.standin`), then times
`sitesight.sliced.sweep.sweep_run` (load + 40 combinations: merge, border rule, gate, evaluation) — the
work that SAHI would need 40 full inference passes for. Wall clock and the process's CPU time
(the machine is shared), medians of ``--repeats``; imports are warmed up before timing.

    .venv/bin/python benchmarks/bench_sweep.py [--frames 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sitesight.sliced.border import MergeSpec
from sitesight.sliced.gate import GateParams
from sitesight.sliced.predict import run_parameters
from sitesight.sliced.standin import standin_raw
from sitesight.sliced.store import load_run, write_run
from sitesight.sliced.sweep import sweep_run
from sitesight.synth import iter_site_frames
from sitesight.synth.site import SITE_CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    dataset = _ground_truth(args.frames)
    rng = np.random.default_rng(0)
    raws = [standin_raw(s.gt, s.image_wh, rng=rng) for s in dataset]
    with tempfile.TemporaryDirectory() as tmp:
        write_run(Path(tmp) / "run", [(f"frame{i:05d}.jpg", s.image_wh) for i, s in enumerate(dataset)], raws,
                  model="stand-in", parameters=run_parameters((640, 640), (0.2, 0.2), True),
                  class_names=SITE_CLASSES)
        print(f"prepared {args.frames} frames, {sum(map(len, raws))} raw boxes in {time.perf_counter() - t0:.1f} s")
        merges = [MergeSpec(m, k, t) for m, k, t in [
            ("nms", "iou", 0.5), ("nms", "ios", 0.5), ("greedy_nmm", "iou", 0.5), ("greedy_nmm", "ios", 0.5),
            ("nmm", "iou", 0.5), ("nmm", "ios", 0.5), ("nms", "iou", 0.3), ("greedy_nmm", "ios", 0.3),
            ("nms", "iou", 0.4), ("greedy_nmm", "ios", 0.4)]]
        confs = [0.2, 0.3, 0.4, 0.5]
        load_run(Path(tmp) / "run")  # warm-up: pyarrow's dataset imports are not the sweep's cost
        gts = [s.gt for s in dataset]
        for gates in ([None], [GateParams(40, 0.2)]):
            walls, cpus = [], []
            for _ in range(args.repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                run = load_run(Path(tmp) / "run")
                result = sweep_run(run, gts, merges=merges, confs=confs, gates=gates, class_names=SITE_CLASSES)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            best = result.rows[result.best]
            label = "with gate" if gates[0] else "no gate"
            print(f"sweep ({label}): {len(result.rows)} combinations x {result.frames} frames: wall "
                  f"{statistics.median(walls):.2f} s (min {min(walls):.2f}), CPU {statistics.median(cpus):.2f} s "
                  f"(min {min(cpus):.2f}), load included, median of {args.repeats}; best F1 {best.f1:.3f} "
                  f"({best.method}/{best.metric}@{best.threshold} conf {best.conf})")


def _ground_truth(n: int) -> list:
    """Samples only: the rendered pixels are dropped as they come (600 frames would be 3.7 GB)."""
    return [sample for _, sample in iter_site_frames(n, seed=0)]


if __name__ == "__main__":
    main()

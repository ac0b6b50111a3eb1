"""Time `sitesight.sliced.merge` against SAHI's postprocess classes on the same boxes, in one run.

The boxes imitate raw sliced-detection output on a 4K frame: each object is seen by one to
several overlapping slices plus the full-frame pass, so it comes back as a cluster of jittered,
sometimes border-cut copies with different scores (and now and then another class), plus
scattered false positives; three classes (person, helmet, head sizes).

SAHI's classes take a list of ``ObjectPrediction``, so that list is built once per size outside
the timed region (and copied before each call, since SAHI writes merged boxes back into it);
sitesight takes one `Detections`. Each cell is the median of ``--repeats`` calls (wall clock; the CPU-time ratio is shown too). The outputs
are compared too, so a speed-up never comes from a different answer.

Run:
    .venv/bin/python benchmarks/bench_merge.py [--sizes 1000,5000,20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from functools import partial

import numpy as np

import sitesight
from sitesight import Detections, merge

SETTINGS = [
    ("greedy_nmm", "ios", 0.5),
    ("greedy_nmm", "iou", 0.5),
    ("nmm", "ios", 0.5),
    ("nmm", "iou", 0.5),
    ("nms", "ios", 0.5),
    ("nms", "iou", 0.5),
]


def clustered_boxes(n_boxes: int, *, seed: int = 0, image_wh: tuple[int, int] = (3840, 2160)) -> Detections:
    """``n_boxes`` boxes like sliced-detection output on one frame (see the module docstring)."""
    rng = np.random.default_rng(seed)
    w, h = image_wh
    n_objects = max(1, n_boxes // 4)
    cls = rng.choice(3, n_objects, p=[0.5, 0.25, 0.25])
    height = np.where(cls == 0, np.exp(rng.uniform(np.log(20), np.log(200), n_objects)), rng.uniform(6, 30, n_objects))
    width = height * np.where(cls == 0, rng.uniform(0.3, 0.6, n_objects), rng.uniform(0.8, 1.2, n_objects))
    x0 = rng.uniform(0, w - width)
    y0 = rng.uniform(0, h - height)
    objects = np.stack([x0, y0, x0 + width, y0 + height], 1)
    copies = 1 + rng.poisson(3.0, n_objects)
    parent = np.repeat(np.arange(n_objects), copies)[:n_boxes]
    n_false = max(0, n_boxes - len(parent))
    size = np.stack([width, height, width, height], 1)[parent]
    boxes = objects[parent] + rng.normal(0, 0.06, (len(parent), 4)) * size
    # About one copy in five is cut by a slice border: one side pulled in by 20-60 %.
    cut = rng.random(len(parent)) < 0.2
    side = rng.integers(0, 4, len(parent))
    frac = rng.uniform(0.2, 0.6, len(parent))
    for s in range(4):
        sel = cut & (side == s)
        opposite = (s + 2) % 4
        boxes[sel, s] += (boxes[sel, opposite] - boxes[sel, s]) * frac[sel]
    box_cls = cls[parent].copy()
    flip = rng.random(len(parent)) < 0.05
    box_cls[flip] = rng.integers(0, 3, int(flip.sum()))
    fw, fh = rng.uniform(8, 120, n_false), rng.uniform(8, 160, n_false)
    fx, fy = rng.uniform(0, w - fw), rng.uniform(0, h - fh)
    boxes = np.concatenate([boxes, np.stack([fx, fy, fx + fw, fy + fh], 1)])
    box_cls = np.concatenate([box_cls, rng.integers(0, 3, n_false)])
    score = np.concatenate([rng.beta(5, 2, len(parent)), rng.beta(2, 5, n_false)])
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    perm = rng.permutation(len(boxes))
    return Detections(xyxy=boxes[perm], score=score[perm], class_id=box_cls[perm])


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of ``repeats`` calls.

    On a shared machine the wall clock includes time spent waiting for a core; CPU time does not,
    so the two ratios together show what is speed and what is load.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _call_on_next(peer, copies: list) -> None:
    """SAHI writes merged boxes back into its input list, so every call gets a fresh copy."""
    peer(copies.pop())


def _sahi_arrays(predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xyxy = np.array([p.bbox.to_xyxy() for p in predictions], np.float64).reshape(-1, 4)
    score = np.array([p.score.value for p in predictions], np.float64)
    cls = np.array([p.category.id for p in predictions], np.int64)
    order = np.lexsort((cls, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))
    return xyxy[order], score[order], cls[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="comma-separated box counts")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median reported)")
    parser.add_argument("--class-agnostic", action="store_true", help="merge across classes")
    args = parser.parse_args()

    import sahi
    from sahi.postprocess.backends import resolve_backend
    from sahi.postprocess.combine import GreedyNMMPostprocess, NMMPostprocess, NMSPostprocess
    from sahi.prediction import ObjectPrediction

    peers = {"nms": NMSPostprocess, "nmm": NMMPostprocess, "greedy_nmm": GreedyNMMPostprocess}
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"sitesight {sitesight.__version__} | sahi {sahi.__version__} (postprocess backend: {resolve_backend()}) | "
        f"numpy {np.__version__} | python {platform.python_version()} | {platform.machine()} "
        f"{platform.processor() or ''} | class_agnostic={args.class_agnostic} | median of {args.repeats}"
    )
    print("| boxes | method | metric | thr | kept | sitesight ms | sahi ms | speed-up (wall) | speed-up (CPU) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(v) for v in args.sizes.split(",")):
        d = clustered_boxes(n, seed=n)
        predictions = [
            ObjectPrediction(bbox=box, category_id=c, score=s)
            for box, c, s in zip(d.xyxy.tolist(), d.class_id.tolist(), d.score.tolist(), strict=True)
        ]
        for method, metric, thr in SETTINGS:
            peer = peers[method](match_threshold=thr, match_metric=metric.upper(), class_agnostic=args.class_agnostic)
            ours = merge(d, method=method, metric=metric, threshold=thr, class_agnostic=args.class_agnostic)
            theirs = _sahi_arrays(peer(list(predictions)))
            mine = _sahi_arrays_from(ours)
            same = len(mine[0]) == len(theirs[0]) and np.allclose(mine[0], theirs[0], atol=1e-4)
            same = same and np.allclose(mine[1], theirs[1], atol=1e-6) and np.array_equal(mine[2], theirs[2])
            ours_call = partial(merge, d, method=method, metric=metric, threshold=thr, class_agnostic=args.class_agnostic)
            t_ours = _median_seconds(ours_call, args.repeats)
            copies = [list(predictions) for _ in range(args.repeats)]
            t_sahi = _median_seconds(partial(_call_on_next, peer, copies), args.repeats)
            flag = "" if same else " (OUTPUTS DIFFER)"
            print(
                f"| {n} | {method} | {metric} | {thr} | {len(ours)} | {t_ours[0] * 1e3:.1f} | {t_sahi[0] * 1e3:.1f} | "
                f"{t_sahi[0] / t_ours[0]:.1f}x{flag} | {t_sahi[1] / max(t_ours[1], 1e-9):.1f}x |",
                flush=True,
            )


def _sahi_arrays_from(d: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xyxy, score, cls = d.xyxy.astype(np.float64), d.score.astype(np.float64), d.class_id
    order = np.lexsort((cls, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))
    return xyxy[order], score[order], cls[order]


if __name__ == "__main__":
    main()

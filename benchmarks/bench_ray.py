"""`detect` on Ray (1 and 2 detector actors) against the local engine, and the per-frame stage costs.

The model is a STAND-IN of fixed cost: it sleeps ``--model-ms`` per frame (spread over the frame's
slices and its full-frame pass) and returns 10 boxes per image, so frames/s measure the engines,
not a model. A sleep stands for a GPU-bound model: the CPU is free while the accelerator works,
which is what an actor holding a GPU looks like to Ray.

Each engine runs over ``--frames`` synthetic 1920x1080 JPEG frames (8 per shard). The local
engine's cost per frame is its wall time / frames (it starts at once). Ray's steady cost per frame
is read off the times its shards finish (first to last), its start-up is the time before the
first shard less one shard at that cost (planning the dataset, starting the actors; ``ray.init``
and a warm-up run that starts Ray's worker processes are timed apart). Ray's overhead per frame
= Ray's steady cost at 1 actor - the local one.

Then the stages of one frame, timed in this process with the functions both engines call:
decode (`sitesight.sliced.frames.read_frame`), slice (`predict_sliced` around a detector that
costs nothing), post-process (`sitesight.sliced.border.postprocess_frame`, greedy NMM + border rule,
on stand-in raw boxes), write (`sitesight.sliced.store.write_shard`, 8 frames per shard).
docs/scale.md turns these numbers into the 10 M-frame plan.

    .venv/bin/python benchmarks/bench_ray.py [--frames 48] [--model-ms 100] [--cpus 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sitesight.detections import Detections
from sitesight.sliced.border import postprocess_frame, slices_of
from sitesight.sliced.frames import list_frames, read_frame
from sitesight.sliced.predict import detect_to_run, predict_sliced, run_parameters
from sitesight.sliced.standin import standin_raw
from sitesight.sliced.store import FrameRecord, open_run, write_shard
from sitesight.synth import iter_site_frames

SLICE = {"slice_wh": (640, 640), "overlap_ratio": (0.2, 0.2), "full_frame": True, "batch_size": 8}
IMAGES_PER_FRAME = 8 + 1  # a 1080p frame: 8 slices of 640 + the full-frame pass


class FixedCostDetector:
    """Stand-in model: ``seconds_per_image`` of sleep per image, 10 deterministic boxes per image."""

    def __init__(self, seconds_per_image: float) -> None:
        self.seconds_per_image = seconds_per_image

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        time.sleep(self.seconds_per_image * len(images))
        out = []
        for image in images:
            h, w = image.shape[:2]
            rng = np.random.default_rng(int(image[::97, ::89].sum()))
            xy = rng.uniform(0, 1, (10, 2)) * [w - 40, h - 80]
            out.append(Detections(xyxy=np.hstack([xy, xy + [30, 70]]), score=rng.uniform(0.05, 1, 10), class_id=rng.integers(0, 3, 10)))
        return out


def fixed_cost_factory(seconds_per_image: float) -> FixedCostDetector:
    return FixedCostDetector(seconds_per_image)


def _write_frames(folder: Path, n: int) -> list:
    folder.mkdir(parents=True)
    samples = []
    for i, (rgb, sample) in enumerate(iter_site_frames(n, seed=1)):
        Image.fromarray(rgb).save(folder / f"frame_{i:04d}.jpg", quality=90)
        samples.append(sample)
    return samples


def _engine_times(refs: list, tmp: Path, seconds_per_image: float, cpus: int) -> dict[str, tuple[float, float]]:
    """``{engine: (steady seconds per frame, start-up seconds)}`` from the times chunks finish.

    Steady cost = time between the first and the last finished chunk / frames in between;
    start-up = time to the first finished chunk - one chunk at the steady cost.
    """
    from functools import partial

    import ray

    from sitesight.engines.ray import RayOptions, detect_to_run_ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (once per session, not counted below)")
    factory = partial(fixed_cost_factory, seconds_per_image)
    # decode tasks get other resources than the detector actors, so Ray does not fuse them into the
    # actors: decoding overlaps the (sleeping, i.e. accelerator-bound) model as with GPU actors
    options = {w: RayOptions(workers=w, cpus_per_worker=0.5, decode_cpus=0.25) for w in (1, 2)}
    engines = {
        "local": lambda r, d, p: detect_to_run(r, FixedCostDetector(seconds_per_image), d, model="fixed", on_progress=p, **SLICE),
        **{f"ray x{w}": lambda r, d, p, w=w: detect_to_run_ray(r, factory, d, model="fixed", options=options[w],
                                                             on_progress=p, **SLICE) for w in (1, 2)},
    }
    out = {}
    for name, run in engines.items():
        run(refs[:8], tmp / f"{name.replace(' ', '')}-warm", None)  # worker processes started, imports done
        ticks: list[tuple[float, int]] = []
        t = time.perf_counter()
        summary = run(refs, tmp / name.replace(" ", ""), lambda n, t=t, ticks=ticks: ticks.append((time.perf_counter() - t, n)))
        wall = time.perf_counter() - t
        assert summary.processed == len(refs) and len(ticks) > 2, (summary, ticks)
        if name == "local":  # no start-up to speak of; its progress granularity is its own business
            steady, startup = wall / len(refs), 0.0
        else:
            steady = (ticks[-1][0] - ticks[0][0]) / (len(refs) - ticks[0][1])
            startup = ticks[0][0] - steady * ticks[0][1]
        print(f"  {name:7s} {len(refs)} frames: {wall:6.2f} s wall = {len(refs) / wall:5.2f} frames/s; "
              f"first chunk after {ticks[0][0]:.2f} s")
        out[name] = (steady, startup)
    ray.shutdown()
    return out


def _stage_costs(refs: list, samples: list, tmp: Path) -> dict[str, float]:
    """Milliseconds per 1080p frame of decode, slice, post-process and write (medians over frames)."""
    decode, cut, post, write = [], [], [], []
    free = FixedCostDetector(0.0)
    params = run_parameters(SLICE["slice_wh"], SLICE["overlap_ratio"], True)
    open_run(tmp / "stages", [r.key for r in refs], model="stand-in", parameters=params)
    rng = np.random.default_rng(0)
    pending = []
    for i, (ref, sample) in enumerate(zip(refs, samples, strict=True)):
        t = time.perf_counter()
        rgb = read_frame(ref)
        decode.append(time.perf_counter() - t)
        t = time.perf_counter()
        predict_sliced([rgb], free, **SLICE)
        cut.append(time.perf_counter() - t)
        raw = standin_raw(sample.gt, sample.image_wh, rng=rng)
        t = time.perf_counter()
        postprocess_frame(raw, slices_of(sample.image_wh, params), sample.image_wh, conf=0.25)
        post.append(time.perf_counter() - t)
        pending.append((FrameRecord(i, ref.key, sample.image_wh), raw))
        if len(pending) == 8:
            t = time.perf_counter()
            write_shard(tmp / "stages", pending)
            write.append((time.perf_counter() - t) / len(pending))
            pending = []
    # the free detector still draws 10 boxes per image: take that off the slice stage
    t = time.perf_counter()
    for _ in range(20):
        free([rgb] * IMAGES_PER_FRAME)
    boxes = (time.perf_counter() - t) / 20
    ms = {name: 1000 * float(np.median(v)) for name, v in (("decode", decode), ("post-process", post), ("write", write))}
    ms["slice"] = 1000 * max(float(np.median(cut)) - boxes, 0.0)
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--model-ms", type=float, default=100.0, help="stand-in model cost per frame (ms)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    args = parser.parse_args()
    if args.frames < 64:  # Ray hands finished shards back in bunches: the first-to-last slope needs many
        parser.error("--frames must be >= 64 (8 shards) for a steady cost per frame")
    seconds_per_image = args.model_ms / 1000 / IMAGES_PER_FRAME
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        samples = _write_frames(tmp / "frames", args.frames)
        refs = list_frames([tmp / "frames"])
        print(f"{args.frames} synthetic 1920x1080 JPEG frames in {time.perf_counter() - t:.1f} s; "
              f"stand-in model {args.model_ms:g} ms/frame ({IMAGES_PER_FRAME} images/frame)")
        stages = _stage_costs(refs, samples, tmp)
        print("stage costs per 1080p frame (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
        times = _engine_times(refs, tmp, seconds_per_image, args.cpus)
    local = times["local"][0]
    print(f"\n{'engine':8s} {'ms/frame':>9s} {'frames/s':>9s} {'vs local':>9s} {'start-up s':>10s}")
    for name, (steady, startup) in times.items():
        print(f"{name:8s} {1000 * steady:9.1f} {1 / steady:9.2f} {local / steady:8.2f}x {startup:10.1f}")
    print(f"Ray overhead per frame (1 actor - local): {1000 * (times['ray x1'][0] - local):+.1f} ms; "
          f"model {args.model_ms:g} ms/frame")


if __name__ == "__main__":
    main()

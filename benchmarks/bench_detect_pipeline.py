"""`sitesight detect` on the CPU: the background pipeline (#15) against the loop it replaced, same run.

Both sides run the same model callable on the same JPEG frames on disk and write the same
resumable run (Parquet shards), 640x640 slices with 0.2 overlap plus a full-frame pass:

* ``before``: the loop `detect_to_run` had before #15 — one thread decodes frames ahead, the
  calling thread cuts the slices of a shard's frames, runs the model on them, puts the boxes
  back into frame pixels and writes the shard; the model waits while that happens.
* ``pipeline``: `sitesight.sliced.predict.detect_to_run` now — decoder threads, a slicer thread
  forming batches across frames, the calling thread running only the model, a writer thread
  assembling boxes, writing shards and reporting progress.

The machine's load average is printed: on a CPU that other work already saturates, overlapping
decode and writes with the model cannot shorten the wall time (every thread takes its cycles
from the model's), only move the waiting out of the model's thread.

Model: `bench_sliced.build_box_generator` (a MobileNetV3-Small trunk, random weights, a fixed
dense box head: real convolution work and 50-100 boxes per slice). Reported per side, medians
of ``--repeats`` interleaved runs: frames/s, wall, time inside the model callable, and the share
of wall time outside it (decode, slicing, box bookkeeping, Parquet writes, waiting).

    .venv/bin/python benchmarks/bench_detect_pipeline.py [--frames 16] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def before_detect_to_run(refs, detector, run_dir, *, model, batch_size, slice_wh=(640, 640), frames_per_shard=8):  # noqa: ANN001, ANN201
    """The pre-#15 `detect_to_run` (one decode thread, slicing + bookkeeping + writes in the model's thread)."""
    import queue

    from sitesight.sliced.frames import iter_frames
    from sitesight.sliced.predict import predict_sliced, run_parameters
    from sitesight.sliced.store import FrameRecord, SkippedFrame, open_run, write_shard

    done = open_run(run_dir, [r.key for r in refs], model=model, parameters=run_parameters(slice_wh, (0.2, 0.2), True))
    todo = [(i, r) for i, r in enumerate(refs) if i not in done]
    q: queue.Queue = queue.Queue(maxsize=2 * frames_per_shard)
    end = object()

    def work() -> None:
        for item in iter_frames([r for _, r in todo]):
            q.put(item)
        q.put(end)

    threading.Thread(target=work, daemon=True).start()
    index_of = {r.key: i for i, r in todo}
    pending, pending_skipped, timer = [], [], [0.0]

    def flush() -> None:
        raw = predict_sliced([img for _, img in pending], detector, slice_wh=slice_wh, batch_size=batch_size, timer=timer)
        write_shard(run_dir, [(rec, det) for (rec, _), det in zip(pending, raw, strict=True)], pending_skipped)
        pending.clear()
        pending_skipped.clear()

    while (item := q.get()) is not end:
        ref, rgb, error = item
        if error is not None:
            pending_skipped.append(SkippedFrame(index_of[ref.key], ref.key, str(error)))
        else:
            pending.append((FrameRecord(index_of[ref.key], ref.key, (rgb.shape[1], rgb.shape[0])), rgb))
        if len(pending) + len(pending_skipped) >= frames_per_shard:
            flush()
    if pending or pending_skipped:
        flush()
    return timer[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import torch
    from bench_sliced import build_box_generator

    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import default_decode_workers, detect_to_run
    from sitesight.sliced.store import load_run
    from sitesight.synth import write_site_dataset

    torch.set_num_threads(args.threads)
    inner = build_box_generator(seed=0)
    model_seconds = [0.0]

    def detector(images):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        out = inner(images)
        model_seconds[0] += time.perf_counter() - t
        return out

    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_site_dataset(Path(tmp) / "frames", n_frames=args.frames, seed=0)
        refs = list_frames([str(dataset.image_path(s)) for s in dataset])
        detector([np.zeros((640, 640, 3), np.uint8)] * args.batch)  # warm-up
        rows: dict[str, list[dict[str, float]]] = {"before": [], "pipeline": []}
        boxes: dict[str, int] = {}
        for repeat in range(args.repeats):  # interleaved: drifting load on a shared machine hits both sides
            for side in ("before", "pipeline"):
                run_dir = Path(tmp) / f"{side}{repeat}"
                model_seconds[0] = 0.0
                t0, c0 = time.perf_counter(), time.process_time()
                if side == "before":
                    before_detect_to_run(refs, detector, run_dir, model="bench", batch_size=args.batch)
                else:
                    detect_to_run(refs, detector, run_dir, model="bench", batch_size=args.batch)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                rows[side].append({"wall": wall, "model": model_seconds[0], "cpu": cpu})
                boxes[side] = sum(len(d) for d in load_run(run_dir).raw)
    assert boxes["before"] == boxes["pipeline"], boxes  # the same raw boxes, whatever the schedule
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch {torch.__version__}, {torch.get_num_threads()} torch threads, {args.frames} synthetic 1920x1080 JPEGs, "
          f"8 slices 640x640 + full frame each, batch {args.batch}, {boxes['pipeline']} raw boxes per run, "
          f"pipeline decode workers {default_decode_workers()}, medians of {args.repeats}")
    labels = {"before": "before #15 (decode thread, rest in the model's thread)",
              "pipeline": "detect_to_run pipeline (decode + slice + write threads)"}
    med = {}
    for side, runs in rows.items():
        m = {k: statistics.median(r[k] for r in runs) for k in ("wall", "model", "cpu")}
        m["outside"] = statistics.median(1 - r["model"] / r["wall"] for r in runs)
        med[side] = m
        print(f"{labels[side]:<58} {args.frames / m['wall']:.3f} frames/s, wall {m['wall']:.2f} s, model {m['model']:.2f} s, "
              f"process CPU {m['cpu']:.2f} s, outside the model {100 * m['outside']:.1f}% of wall")
    print(f"pipeline vs before: {med['before']['wall'] / med['pipeline']['wall']:.2f}x wall")


if __name__ == "__main__":
    main()

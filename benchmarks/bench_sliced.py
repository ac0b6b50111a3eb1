"""End-to-end sliced detection, sitesight vs SAHI 0.12.8 get_sliced_prediction, same model, CPU.

Model (the same callable for every side): a dense, anchor-free box generator on real conv
features. A torchvision MobileNetV3-Small trunk (random weights, seed 0, output stride 16) runs on
the batch; a fixed 1x1 conv head reads objectness, 3 class logits and log box size from every
cell; the 100 highest local maxima per image become boxes (worker-sized, 16-px cells). Like a real
dense detector its boxes follow the pixels, so overlapping slices see the same boxes and the
merge has real duplicates to fold. The whole frame is resized to 640 px on its long side first
(as torchvision's detection transform does). Objectness is standardised per image and mapped to
scores by fixed constants so that 50-100 of the 100 boxes per slice clear the 0.3 confidence
threshold: both merges work on hundreds of boxes per frame.

Frames: synthetic 1920x1080 JPEGs (`sitesight.synth`) read from disk by both. Both use 640x640
slices, 0.2 overlap (8 slices) plus a full-frame pass, confidence 0.3 and GREEDYNMM/IOS@0.5.
SAHI gets the callable through a minimal ``DetectionModel`` subclass (what a SAHI user writes for a
custom model), once with its default ``batch_size=1`` and once with ``batch_size=8`` and native
batching. sitesight runs `sitesight.sliced.predict.detect_to_run` (background decode, slices of
consecutive frames batched, Parquet shards) and then merges the stored run.

Reported per side: frames/s, wall and process CPU time, time inside the model callable, and the
share of wall time outside it. Medians of ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_sliced.py [--frames 12] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CONF = 0.3
TOP_K = 100
STRIDE = 16


def _standardise(obj: Any) -> Any:
    """Objectness ``(B, H, W)`` per image to zero mean, unit variance (a random head's raw scale varies)."""
    flat = obj.flatten(1)
    return (obj - flat.mean(1)[:, None, None]) / flat.std(1)[:, None, None].clamp_min(1e-6)


def build_box_generator(seed: int = 0) -> Any:
    """The benchmark's model: ``Callable[[list[np.ndarray]], list[Detections]]`` (see the module doc)."""
    import torch
    import torch.nn.functional as F
    from torchvision.models import mobilenet_v3_small

    from sitesight.detections import Detections

    torch.manual_seed(seed)
    trunk = mobilenet_v3_small(weights=None).features[:9].eval()  # stride 16, 48 channels
    head = torch.nn.Conv2d(48, 6, 1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        head.weight.copy_(torch.randn(head.weight.shape, generator=g))
        head.bias.zero_()

    def run(batch: torch.Tensor) -> list[Detections]:
        out = head(trunk(batch))
        obj, cls, size = _standardise(out[:, 0]), out[:, 1:4], out[:, 4:6]
        # standardised objectness 0.4 -> score 0.3, 3.0 -> 0.9: on these frames 50-100 of the
        # 100 peaks per slice clear 0.3, as a trained detector's raw output at a low threshold does
        score = torch.sigmoid(1.17 * (obj - 0.4) - 0.85)
        peak = score == F.max_pool2d(score[:, None], 3, 1, 1)[:, 0]
        flat = torch.where(peak, score, torch.zeros_like(score)).flatten(1)
        top, idx = flat.topk(min(TOP_K, flat.shape[1]), dim=1)
        w = score.shape[2]
        dets = []
        for b in range(batch.shape[0]):
            keep = top[b] > 0
            i = idx[b][keep]
            cy, cx = (i // w).float() * STRIDE + STRIDE / 2, (i % w).float() * STRIDE + STRIDE / 2
            s = size[b].flatten(1)[:, i].clamp(-1, 1).exp()
            bw, bh = 24 * s[0], 56 * s[1]
            xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=1)
            dets.append(Detections(xyxy=xyxy.numpy(), score=top[b][keep].numpy(),
                                   class_id=cls[b].flatten(1)[:, i].argmax(0).numpy().astype(np.int64)))
        return dets

    def detect(images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for k, im in enumerate(images):
            by_shape.setdefault(im.shape, []).append(k)
        with torch.inference_mode():
            for shape, ks in by_shape.items():
                x = torch.from_numpy(np.stack([images[k] for k in ks])).permute(0, 3, 1, 2).float().div_(255)
                scale = 640.0 / max(shape[0], shape[1])
                if scale != 1.0:
                    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
                for k, det in zip(ks, run(x), strict=True):
                    out[k] = det if scale == 1.0 else det.replace(xyxy=det.xyxy / scale)
        return out  # type: ignore[return-value]

    return detect


def _sahi_model(detector: Any, batched: bool) -> Any:
    """A SAHI ``DetectionModel`` around the callable, as a SAHI user writes one for a custom model."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list

    class CallableModel(DetectionModel):
        def load_model(self) -> None:
            self.model = detector
            self.category_mapping = {str(i): str(i) for i in range(3)}

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self.model([image])

        if batched:
            def perform_batch_inference(self, images: list[np.ndarray]) -> None:
                self._original_predictions = self.model(images)

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]], full_shape_list=None):  # noqa: B006
            shifts = fix_shift_amount_list(shift_amount_list) if shift_amount_list else [[0, 0]]
            fulls = fix_full_shape_list(full_shape_list) if full_shape_list else None
            per_image = []
            for k, det in enumerate(self._original_predictions):
                keep = np.flatnonzero(det.score >= self.confidence_threshold)
                per_image.append([
                    ObjectPrediction(bbox=det.xyxy[i].tolist(), category_id=int(det.class_id[i]),
                                     category_name=str(det.class_id[i]), score=float(det.score[i]),
                                     shift_amount=shifts[k], full_shape=None if fulls is None else fulls[k])
                    for i in keep])
            self._object_prediction_list_per_image = per_image

    return CallableModel(confidence_threshold=CONF, load_at_init=True)


def _timed(fn: Any, model_seconds: list[float]) -> dict[str, float]:
    model_seconds[0] = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    boxes = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "model": model_seconds[0], "boxes": boxes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import sahi
    import torch
    import torchvision
    from sahi.predict import get_sliced_prediction

    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.postprocess import postprocess
    from sitesight.sliced.predict import detect_to_run
    from sitesight.sliced.spec import PostprocessSpec
    from sitesight.sliced.store import load_run
    from sitesight.synth import write_site_dataset

    torch.set_num_threads(args.threads)
    model_seconds = [0.0]

    def detector(images):  # the same callable for every side; times the model alone
        t = time.perf_counter()
        out = inner(images)
        model_seconds[0] += time.perf_counter() - t
        return out

    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_site_dataset(Path(tmp) / "frames", n_frames=args.frames, seed=0)
        paths = [str(dataset.image_path(s)) for s in dataset]
        inner = build_box_generator(seed=0)
        detector([np.zeros((640, 640, 3), np.uint8)] * args.batch)  # warm-up (and objectness calibration)
        detector([np.zeros((1080, 1920, 3), np.uint8)])

        def sahi_side(batch_size: int):
            model = _sahi_model(detector, batched=batch_size > 1)

            def go() -> int:
                n = 0
                for path in paths:
                    result = get_sliced_prediction(
                        path, model, slice_height=640, slice_width=640, overlap_height_ratio=0.2,
                        overlap_width_ratio=0.2, perform_standard_pred=True, postprocess_type="GREEDYNMM",
                        postprocess_match_metric="IOS", postprocess_match_threshold=0.5, verbose=0,
                        batch_size=batch_size)
                    n += len(result.object_prediction_list)
                return n
            return go

        raw_boxes = [0]

        def ours(repeat: int):
            def go() -> int:
                run_dir = Path(tmp) / f"run{repeat}"
                summary = detect_to_run(list_frames(paths), detector, run_dir, model="bench", batch_size=args.batch)
                run = load_run(run_dir)
                merged = postprocess(run, PostprocessSpec(conf=CONF, method="greedy_nmm", metric="ios", threshold=0.5,
                                                          border=False)).detections()
                raw_boxes[0] = summary.boxes
                return sum(map(len, merged))
            return go

        sides: dict[str, list[dict[str, float]]] = {"sahi1": [], "sahi8": [], "ours": []}
        for repeat in range(args.repeats):  # interleaved, so drifting machine load hits every side
            sides["sahi1"].append(_timed(sahi_side(1), model_seconds))
            sides["sahi8"].append(_timed(sahi_side(args.batch), model_seconds))
            sides["ours"].append(_timed(ours(repeat), model_seconds))
    n = len(paths)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, sahi {sahi.__version__}, "
          f"{torch.get_num_threads()} threads, {n} frames 1920x1080, 8 slices 640x640 + full frame each, "
          f"{raw_boxes[0]} raw boxes stored ({raw_boxes[0] / (9 * n):.0f} per pass, conf 0.3 filter later), "
          f"medians of {args.repeats}")
    labels = {"sahi1": "SAHI get_sliced_prediction, batch 1", "sahi8": f"SAHI get_sliced_prediction, batch {args.batch}",
              "ours": f"sitesight detect_to_run + merge, batch {args.batch}"}
    med: dict[str, dict[str, float]] = {}
    for key, runs in sides.items():
        m = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "model")}
        m["outside"] = statistics.median(1 - r["model"] / r["wall"] for r in runs)
        med[key] = m
        print(f"{labels[key]:<44} {n / m['wall']:.3f} frames/s, wall {m['wall']:.1f} s, CPU {m['cpu']:.1f} s, "
              f"model {m['model']:.1f} s, outside the model {100 * m['outside']:.1f}%, {int(runs[-1]['boxes'])} boxes")
    for key in ("sahi1", "sahi8"):
        print(f"speed-up vs {labels[key]}: {med[key]['wall'] / med['ours']['wall']:.2f}x wall, "
              f"{med[key]['cpu'] / med['ours']['cpu']:.2f}x CPU")


if __name__ == "__main__":
    main()

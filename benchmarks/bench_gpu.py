"""GPU throughput: sliced detection (frames/s, model-busy share) and RoI-head training (images/s).

Two measurements, one script, run on the machine with the GPU (``--device cuda``):

1. Sliced detection with `sitesight.sliced.predict.detect_to_run` on synthetic 1280x704 JPEGs on
   disk (6 slices of 640x640 at 0.2 overlap + a full-frame pass resized to 640, the layout of the
   field report: YOLOv12m, 50 frames, 21 min on a CPU). The model is torchvision's RetinaNet
   ResNet-50 FPN (random weights: nothing can be downloaded on the GPU machine; the compute is the
   trained model's) with its internal resize pinned to 640, float16 autocast with ``--half``. Both
   the pipeline (decoder / slicer / writer threads around the model, batches across frames) and
   the loop it replaced (`bench_detect_pipeline.before_detect_to_run`) run on the same frames; for
   each: frames/s and the model-busy share (time inside the detector callable / wall).
2. RoI attribute head training at the field model card's setting: DINOv3 ViT-S/16 backbone
   (``vit_small_patch16_dinov3``, random weights for the same reason; same FLOPs as the pretrained
   one), 1280x720 frames, batch 8, AdamW, bfloat16 autocast, frames decoded by DataLoader workers
   from JPEGs on disk. Reported: training images/s after a warm-up, and what the card's 16 epochs
   in 1,614 s would take at that rate for a given set size.

``--quick`` shrinks everything (2 small frames, a tiny backbone) to check the script on a CPU.

    .venv/bin/python benchmarks/bench_gpu.py --device cuda [--frames 64] [--batch 32] [--half] [--json out.json]
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_retinanet(device: str, *, half: bool, size: int):  # noqa: ANN201
    """A detector callable: torchvision RetinaNet R50-FPN (random weights), internal resize pinned to ``size``."""
    import torch
    from torchvision.models.detection import retinanet_resnet50_fpn

    from sitesight.predictors.torchvision import wrap_torchvision_model

    torch.manual_seed(0)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=size, max_size=size)
    return wrap_torchvision_model(model, score_threshold=0.05, device=device, half=half)


def bench_detection(tmp: Path, args: argparse.Namespace) -> dict:
    import torch
    from bench_detect_pipeline import before_detect_to_run

    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import detect_to_run
    from sitesight.synth import write_site_dataset

    wh = (640, 352) if args.quick else (1280, 704)
    slice_side = 320 if args.quick else 640
    ds = write_site_dataset(tmp / "frames", n_frames=args.frames, seed=0, image_wh=wh)
    refs = list_frames([str(ds.image_path(s)) for s in ds])
    inner = build_retinanet(args.device, half=args.half, size=slice_side)
    busy = [0.0]

    def detector(images):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        out = inner(images)
        busy[0] += time.perf_counter() - t
        return out

    detector([np.zeros((slice_side, slice_side, 3), np.uint8)] * args.batch)  # warm-up: cuDNN autotune, allocator
    results = {}
    for side in ("before", "pipeline"):
        busy[0] = 0.0
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        kwargs = {"model": "bench", "batch_size": args.batch}
        if side == "before":  # the full frame went to the model as it was (its own resize to 640 applies)
            before_detect_to_run(refs, detector, tmp / side, slice_wh=(slice_side, slice_side), **kwargs)
        else:
            detect_to_run(refs, detector, tmp / side, slice_wh=(slice_side, slice_side), full_imgsz=slice_side, **kwargs)
        wall = time.perf_counter() - t0
        results[side] = {"frames_per_s": round(len(refs) / wall, 3), "wall_s": round(wall, 3),
                         "model_busy": round(busy[0] / wall, 4)}
    results["frames"], results["frame_wh"], results["batch"], results["half"] = len(refs), list(wh), args.batch, args.half
    return results


def bench_roi_training(tmp: Path, args: argparse.Namespace) -> dict:
    import torch

    from sitesight.models.attribute import roi_dataset
    from sitesight.models.data import attribute_classes, roi_collate
    from sitesight.models.roi_head import RoIHeadConfig, build_roi_head
    from sitesight.models.train import amp_dtype, loss_fn, resolve_device, train_one_epoch
    from sitesight.synth import write_site_dataset

    wh = (320, 180) if args.quick else (1280, 720)
    ds = write_site_dataset(tmp / "roi_frames", n_frames=args.train_frames, seed=1, image_wh=wh)
    names = attribute_classes(ds, "safety_rope")
    backbone = "tiny_cnn" if args.quick else "vit_small_patch16_dinov3"
    config = RoIHeadConfig(backbone=backbone, class_names=names, frame_wh=wh)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_roi_head(config).to(device)
    train_set = roi_dataset(ds, config, train=True)
    loader = torch.utils.data.DataLoader(train_set, batch_size=8, shuffle=True, collate_fn=roi_collate, num_workers=args.workers,
                                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    def loss(logits, labels):  # noqa: ANN001, ANN202
        return loss_fn(logits, labels, weight=None, focal_gamma=None)

    train_one_epoch(model, loader, optimizer, None, device=device, loss=loss, amp=dtype, scaler=scaler)  # warm-up epoch
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.train_epochs):
        train_one_epoch(model, loader, optimizer, None, device=device, loss=loss, amp=dtype, scaler=scaler)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    images = len(train_set) * args.train_epochs
    return {"backbone": backbone, "frame_wh": list(wh), "batch": 8, "amp": str(dtype), "workers": args.workers,
            "images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 2),
            "card_16_epochs_s_per_1000_frames": round(16 * 1000 / (images / seconds), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=64, help="sliced detection: frames on disk")
    parser.add_argument("--batch", type=int, default=32, help="sliced detection: crops per detector call")
    parser.add_argument("--half", action="store_true", help="sliced detection: float16 autocast")
    parser.add_argument("--train-frames", type=int, default=64, help="RoI training: frames per epoch")
    parser.add_argument("--train-epochs", type=int, default=2, help="RoI training: timed epochs (after one warm-up epoch)")
    parser.add_argument("--workers", type=int, default=6, help="RoI training: DataLoader workers")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script on a CPU")
    parser.add_argument("--only", choices=("detect", "train"), default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.frames, args.batch, args.train_frames, args.train_epochs, args.workers = 2, 4, 4, 1, 0
    import torch

    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else args.device
    out: dict = {"device": name, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "detect"):
            out["sliced_detection"] = bench_detection(Path(tmp), args)
            d = out["sliced_detection"]
            for side in ("before", "pipeline"):
                r = d[side]
                print(f"sliced detection ({side:>8}): {r['frames_per_s']:.2f} frames/s, model busy {100 * r['model_busy']:.1f}% "
                      f"of {r['wall_s']:.1f} s ({d['frames']} frames {d['frame_wh'][0]}x{d['frame_wh'][1]}, batch {d['batch']}, "
                      f"half {d['half']})")
        if args.only in (None, "train"):
            out["roi_training"] = bench_roi_training(Path(tmp), args)
            r = out["roi_training"]
            print(f"RoI head training: {r['images_per_s']:.1f} images/s ({r['backbone']} at {r['frame_wh'][0]}x{r['frame_wh'][1]}, "
                  f"batch 8, {r['amp']}, {r['workers']} workers); 16 epochs of 1,000 frames: {r['card_16_epochs_s_per_1000_frames']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Throughput of the DINOv3 ViT-S/16 RoI attribute head at 1280x720 (random init; nothing downloaded).

Measures, for the backbone-once-per-frame design:
  * inference frames/s and persons/s at several persons per frame (cost should grow with frames,
    not persons: the backbone runs once per frame, RoIAlign + MLP per person are cheap);
  * training steps (forward + backward + AdamW) frames/s and persons/s at batch 8 frames.

Run:  .venv/bin/python benchmarks/bench_roi_head.py [--device cpu|cuda] [--frames 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sitesight.models.roi_head import RoIHeadConfig, build_roi_head


def _rois(batch: int, persons: int, frame_wh: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    w, h = frame_wh
    xy = torch.rand(batch * persons, 2, generator=gen) * torch.tensor([w - 80, h - 200])
    wh = torch.tensor([40.0, 160.0]).expand(batch * persons, 2)
    idx = torch.arange(batch).repeat_interleave(persons).float()[:, None]
    return torch.cat([idx, xy, xy + wh], dim=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(device: str, frames: int, repeats: int, persons_list: list[int], train_batch: int) -> dict:
    dev = torch.device(device)
    cfg = RoIHeadConfig(backbone="vit_small_patch16_dinov3", frame_wh=(1280, 720))
    torch.manual_seed(0)
    model = build_roi_head(cfg).to(dev)
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    amp = dev.type == "cuda"
    result = {"device": torch.cuda.get_device_name(dev) if amp else "cpu", "threads": torch.get_num_threads(),
              "params_millions": round(params / 1e6, 2), "frame_wh": [1280, 720], "inference": [], "train": {}}
    model.eval()
    images = torch.randn(frames, 3, 720, 1280, device=dev)
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        model(images[:1], _rois(1, 1, cfg.frame_wh, gen).to(dev))  # warm-up
        for persons in persons_list:
            rois = _rois(frames, persons, cfg.frame_wh, gen).to(dev)
            times = []
            for _ in range(repeats):
                _sync(dev)
                t0 = time.perf_counter()
                model(images, rois)
                _sync(dev)
                times.append(time.perf_counter() - t0)
            best = min(times)
            result["inference"].append({"persons_per_frame": persons, "frames_per_s": round(frames / best, 3),
                                        "persons_per_s": round(frames * persons / best, 2), "seconds_per_batch": round(best, 3)})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    persons = 8
    images = torch.randn(train_batch, 3, 720, 1280, device=dev)
    rois = _rois(train_batch, persons, cfg.frame_wh, gen).to(dev)
    labels = torch.randint(0, 3, (len(rois),), generator=gen).to(dev)
    times = []
    for i in range(repeats + 1):
        _sync(dev)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(images, rois)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(dev)
        if i:  # first step is warm-up
            times.append(time.perf_counter() - t0)
    best = min(times)
    result["train"] = {"batch_frames": train_batch, "persons_per_frame": persons, "frames_per_s": round(train_batch / best, 3),
                       "persons_per_s": round(train_batch * persons / best, 2), "seconds_per_step": round(best, 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=2, help="frames per inference batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--persons", default="1,10,50", help="persons per frame to compare")
    parser.add_argument("--train-batch", type=int, default=2, help="frames per training step (the recipe uses 8)")
    args = parser.parse_args()
    print(json.dumps(bench(args.device, args.frames, args.repeats, [int(p) for p in args.persons.split(",")], args.train_batch), indent=1))


if __name__ == "__main__":
    main()

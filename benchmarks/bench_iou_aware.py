"""Training throughput of the IoU-aware RetinaNet vs plain torchvision RetinaNet (same backbone, anchors, weights).

Each configuration is timed over ``--steps`` training steps (forward + losses + backward + AdamW
step) after one warm-up step, on random images with 8 boxes each, the two models interleaved step by
step and the median step time reported (robust to the load of a shared machine); the peer is torchvision's own
`RetinaNet` with the same backbone and head (no IoU branch), so the ratio is the cost of the
branch and its loss. Configurations:

  * ``tiny_pyramid`` at 320x320 input, FPN 32, 2 head convs (the demo's detector);
  * ``resnet18`` + FPN (P3–P7, 256 channels, 4 head convs: torchvision's RetinaNet layout) at 512x512.

Run:  .venv/bin/python benchmarks/bench_iou_aware.py [--device cpu|cuda] [--steps 5] [--batch 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import torch
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.retinanet import RetinaNetHead

from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet

CONFIGS = {
    "tiny_pyramid@320": DetectorConfig(backbone="tiny_pyramid", class_names=("person", "helmet", "head"), out_indices=(2, 3, 4),
                                       extra_levels=0, fpn_channels=32, head_convs=2, anchor_sizes=(16, 32, 64),
                                       anchor_scales=(1.0, 1.5), aspect_ratios=(0.7, 1.4, 2.8), min_size=320, max_size=320),
    "resnet18_fpn@512": DetectorConfig(backbone="resnet18", class_names=("person", "helmet", "head"), min_size=512, max_size=512),
}


def _plain(model: torch.nn.Module, config: DetectorConfig) -> RetinaNet:
    head = RetinaNetHead(model.backbone.out_channels, model.anchor_generator.num_anchors_per_location()[0], len(config.class_names))
    for tower in (head.classification_head, head.regression_head):
        tower.conv = tower.conv[: config.head_convs]
    plain = RetinaNet(copy.deepcopy(model.backbone), len(config.class_names), min_size=config.min_size, max_size=config.max_size,
                      anchor_generator=model.anchor_generator, head=head)
    plain.load_state_dict(model.state_dict(), strict=False)
    return plain


def _batch(n: int, size: int, device: torch.device, gen: torch.Generator) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images = [torch.rand(3, size, size, generator=gen).to(device) for _ in range(n)]
    targets = []
    for _ in range(n):
        xy = torch.rand(8, 2, generator=gen) * (size * 0.8)
        wh = 8 + torch.rand(8, 2, generator=gen) * (size * 0.15)
        targets.append({"boxes": torch.cat([xy, xy + wh], 1).to(device), "labels": torch.randint(0, 3, (8,), generator=gen).to(device)})
    return images, targets


def _steps(models: list[torch.nn.Module], batch: tuple, steps: int, device: torch.device) -> list[list[float]]:
    """Per-step seconds of each model, the models interleaved step by step (so load changes hit both alike)."""
    opts = [torch.optim.AdamW(m.train().to(device).parameters(), lr=1e-4) for m in models]
    times: list[list[float]] = [[] for _ in models]
    for i in range(steps + 1):
        for k, (model, opt) in enumerate(zip(models, opts, strict=True)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = sum(model(*batch).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # step 0 warms up
                times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name in args.configs.split(","):
        config = CONFIGS[name]
        torch.manual_seed(0)
        model = build_iou_aware_retinanet(config)
        plain = _plain(model, config)
        batch = _batch(args.batch, config.min_size, device, torch.Generator().manual_seed(0))
        t_iou, t_plain = (statistics.median(t) for t in _steps([model, plain], batch, args.steps, device))
        rows.append({"config": name, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                     "iou_aware_img_s": round(args.batch / t_iou, 2), "plain_retinanet_img_s": round(args.batch / t_plain, 2),
                     "iou_branch_overhead": round(t_iou / t_plain - 1, 3)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"device": str(device), "threads": args.threads, "batch": args.batch, "steps": args.steps,
                      "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()

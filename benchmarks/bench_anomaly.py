"""Anomaly detectors on synthetic screws: quality side by side, and the memory detector's search vs its peers.

1. Quality: for each seed, 40 normal 64x64 parts to fit on and a fresh test set of 40 normal + 40
   defective parts (10 per defect type); image AUROC, pixel AUROC (sitesight.evaluation, itself
   checked against scikit-learn in the tests), AUROC per defect type, fit seconds and scoring speed.
   Detectors: the conv autoencoder (L2 and SSIM error maps) and the feature-memory detector
   (random-init resnet18: weights are never downloaded) with its greedy coreset, with a random
   subset of the same size instead (the peer of the coreset), and with the full bank.
2. Nearest-neighbour search (the memory detector's inner loop): `nearest_distances` (matrix product
   + exact re-measure of 4 candidates) vs ``torch.cdist`` without the matrix-product shortcut (exact)
   and scikit-learn ``NearestNeighbors(algorithm="brute")``, interleaved, median of repeats, and the
   largest disagreement with scikit-learn.
3. Coreset: greedy k-center vs a random subset of the same size: covering radius (the largest distance
   from a bank patch to its nearest kept patch) and seconds.

Run:  .venv/bin/python benchmarks/bench_anomaly.py [--seeds 0 1 2] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import numpy as np
import torch

from sitesight.evaluation.anomaly import anomaly_metrics, pixel_auroc
from sitesight.models.anomaly.autoencoder import AutoencoderConfig, fit_autoencoder
from sitesight.models.anomaly.memory import MemoryConfig, MemoryDetector, fit_memory, greedy_coreset, nearest_distances
from sitesight.synth.parts import PART_DEFECTS, make_parts


def _memory_variant(det: MemoryDetector, ratio: float, how: str, seed: int) -> MemoryDetector:
    """The full-bank detector cut down to ``ratio`` of its patches by coreset or at random."""
    n = max(1, int(round(ratio * det.memory.shape[0])))
    if how == "coreset":
        idx = greedy_coreset(det.memory, n, projection_dim=det.config.projection_dim, seed=seed)
    else:
        idx = torch.from_numpy(np.random.default_rng(seed).choice(det.memory.shape[0], n, replace=False))
    return dataclasses.replace(det, memory=det.memory[idx].contiguous(), config=dataclasses.replace(det.config, coreset_ratio=ratio))


def quality(seeds: list[int]) -> None:
    print("\n## quality (40 normal 64x64 parts to fit on; test 40 normal + 40 defective)")
    header = "| detector | image AUROC | pixel AUROC | " + " | ".join(PART_DEFECTS) + " | fit s | score img/s |"
    rows: dict[str, list[tuple]] = {}
    for seed in seeds:
        train = make_parts(40, 0, seed=100 * seed, image_wh=(64, 64))
        test = make_parts(40, 40, seed=100 * seed + 1, image_wh=(64, 64))
        images, masks, y = list(test.images), np.stack(test.masks), test.labels
        kinds = np.array([d or "" for d in test.defects])
        detectors = {}
        for name, config in (("ae l2 (base 16)", AutoencoderConfig(image_size=64, base_channels=16)),
                             ("ae l2 (base 32)", AutoencoderConfig(image_size=64, base_channels=32)),
                             ("ae ssim (base 32)", AutoencoderConfig(image_size=64, base_channels=32, error="ssim", ssim_weight=1.0))):
            t0 = time.perf_counter()
            detectors[name] = (fit_autoencoder(list(train.images), config=config, epochs=30, seed=seed, device="cpu"), time.perf_counter() - t0)
        for label, cfg in (("layer1+2 @96", MemoryConfig(image_size=96, layers=(1, 2), coreset_ratio=1.0)),
                           ("layer1 @64", MemoryConfig(image_size=64, layers=(1,), coreset_ratio=1.0))):
            t0 = time.perf_counter()
            full = fit_memory(list(train.images), config=cfg, seed=seed, device="cpu")
            t_full = time.perf_counter() - t0
            detectors[f"memory {label}, full bank"] = (full, t_full)
            for how in ("coreset", "random"):
                t0 = time.perf_counter()
                det = _memory_variant(full, 0.1, how, seed)
                detectors[f"memory {label}, 10% {how}"] = (det, t_full + time.perf_counter() - t0)
        for name, (det, fit_s) in detectors.items():
            t0 = time.perf_counter()
            pred = det.predict(images)
            speed = len(images) / (time.perf_counter() - t0)
            s = pred.scores
            per_type = [anomaly_metrics(y[(kinds == k) | ~y], s[(kinds == k) | ~y]).auroc for k in PART_DEFECTS]
            rows.setdefault(name, []).append((anomaly_metrics(y, s).auroc, pixel_auroc(masks, pred.stacked_maps()), *per_type, fit_s, speed))
    print(f"seeds {seeds}; mean (min–max over seeds)\n")
    print(header)
    print("|---|" + "---:|" * (len(PART_DEFECTS) + 4))
    for name, values in rows.items():
        a = np.array(values)
        cells = [f"{a[:, j].mean():.3f} ({a[:, j].min():.3f}–{a[:, j].max():.3f})" for j in range(2)]
        cells += [f"{a[:, j].mean():.3f}" for j in range(2, 2 + len(PART_DEFECTS))]
        cells += [f"{a[:, -2].mean():.1f}", f"{a[:, -1].mean():.0f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def search(repeats: int) -> None:
    from sklearn.neighbors import NearestNeighbors

    print("\n## nearest-neighbour search: 20,000 query patches x 2,000 memory patches, 192 dims (float32)")
    gen = torch.Generator().manual_seed(0)
    memory = torch.randn(2000, 192, generator=gen)
    queries = torch.randn(20000, 192, generator=gen) * 1.1
    nn_index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(memory.numpy())
    funcs = {
        "sitesight nearest_distances": lambda: nearest_distances(queries, memory).numpy(),
        "torch.cdist (exact, no mm)": lambda: torch.cdist(queries, memory, compute_mode="donot_use_mm_for_euclid_dist").amin(1).numpy(),
        "sklearn NearestNeighbors brute": lambda: nn_index.kneighbors(queries.numpy())[0][:, 0],
    }
    times: dict[str, list[float]] = {k: [] for k in funcs}
    out = {}
    for _ in range(repeats):
        for name, f in funcs.items():  # interleaved so that load changes hit all alike
            t0 = time.perf_counter()
            out[name] = f()
            times[name].append(time.perf_counter() - t0)
    ref = out["sklearn NearestNeighbors brute"].astype(np.float64)
    print("\n| method | median s | queries/s | max abs diff vs sklearn |\n|---|---:|---:|---:|")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"| {name} | {med:.3f} | {queries.shape[0] / med:,.0f} | {np.abs(out[name] - ref).max():.2e} |")


def coreset(repeats: int) -> None:
    print("\n## coreset: 10% of the layer1+2 patch bank of 40 parts at 96 px (23,040 x 192)")
    parts = make_parts(40, 0, seed=0, image_wh=(64, 64))
    bank = fit_memory(list(parts.images), config=MemoryConfig(image_size=96, layers=(1, 2), coreset_ratio=1.0), device="cpu").memory
    n = bank.shape[0] // 10
    print("\n| selection | median s | covering radius | mean distance to nearest kept |\n|---|---:|---:|---:|")
    for name, pick in (("greedy k-center (projection 128)", lambda s: greedy_coreset(bank, n, projection_dim=128, seed=s)),
                       ("random subset", lambda s: torch.from_numpy(np.random.default_rng(s).choice(bank.shape[0], n, replace=False)))):
        t, radius, mean = [], [], []
        for s in range(repeats):
            t0 = time.perf_counter()
            idx = pick(s)
            t.append(time.perf_counter() - t0)
            d = nearest_distances(bank, bank[idx])
            radius.append(float(d.max()))
            mean.append(float(d.mean()))
        print(f"| {name} | {statistics.median(t):.2f} | {np.mean(radius):.3f} | {np.mean(mean):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a shared machine)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("quality", "search", "coreset"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    if args.only in (None, "search"):
        search(args.repeats)
    if args.only in (None, "coreset"):
        coreset(min(args.repeats, 3))
    if args.only in (None, "quality"):
        quality(args.seeds)


if __name__ == "__main__":
    main()

"""Anomaly thresholds and the coreset on the real MVTec AD screw images of ../shared/data (tiled).

    .venv/bin/python benchmarks/bench_anomaly_real.py --only coreset
    .venv/bin/python benchmarks/bench_anomaly_real.py --only thresholds --seeds 0 1 2

``coreset``: fit the feature memory on 300 real normal 128 px tiles with the defaults (time of the
whole fit), and the greedy coreset's cost per step the old way (128-d projection, all torch threads)
and the new way (64-d projection, one thread), measured on the same bank in the same run.

``thresholds``: 512 px images cut into 16 tiles of 128 px; tiles without a defect pixel are normal.
A third of the source parts (augmented copies grouped with their original) is unseen; the rest fit
the memory bank and set the 5 % threshold, held out either by part (grouped) or tile by tile (the old
random hold-out), with either the plain 95th percentile (the old rule) or the order statistic that
promises 5 % at 95 % confidence (`normal_threshold`). Each row: the observed false-alarm rate on the
unseen parts' normal tiles, and the tile AUROC / pixel AUROC of the memory detector.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sitesight.evaluation.anomaly import anomaly_metrics, normal_threshold, pixel_auroc, read_mask
from sitesight.images import read_image_rgb
from sitesight.models.anomaly.memory import MemoryConfig, _greedy, fit_memory, greedy_coreset
from sitesight.models.anomaly.tiles import tile_images

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "screw" / "defects_mini"
AUGMENTED = r"^(?:rotated_\d+_|hflipped_)?(.+)$"


def _tiles(tmp: Path):
    images = sorted((DATA / "images").glob("*.png"))
    tiles = tile_images(images, [DATA / "masks" / p.name for p in images], tmp, tile=128, group_pattern=AUGMENTED)
    pixels = [read_image_rgb(t.path) for t in tiles]
    masks = []
    for t in tiles:
        m = tmp / "ground_truth" / "defect" / f"{t.path.stem}_mask.png"
        masks.append(read_mask(m) if t.defect else np.zeros((128, 128), bool))
    return tiles, pixels, masks


def coreset(tmp: Path) -> None:
    tiles, pixels, _ = _tiles(tmp)
    normal = [p for t, p in zip(tiles, pixels, strict=True) if not t.defect][:300]
    t0 = time.perf_counter()
    det = fit_memory(normal, config=MemoryConfig(), device="cpu")
    fit_s = time.perf_counter() - t0
    from sitesight.models.anomaly.maps import to_batch
    from sitesight.models.anomaly.memory import build_feature_extractor, patch_features

    model = build_feature_extractor(MemoryConfig())
    bank = torch.cat([patch_features(model, to_batch(normal[i : i + 16], 128, torch.device("cpu")), MemoryConfig()).reshape(-1, 384)
                      for i in range(0, len(normal), 16)])
    steps = 400
    t0 = time.perf_counter()
    _greedy(bank, steps, projection_dim=128, seed=0, on_progress=None)  # the old loop: 128 dims, all threads
    old = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    greedy_coreset(bank, steps, projection_dim=64)
    new = (time.perf_counter() - t0) / steps
    n_select = det.memory.shape[0]
    print(f"fit_memory defaults on {len(normal)} real 128 px tiles: {fit_s:.1f} s ({bank.shape[0]} patches -> {n_select} kept)")
    print(f"greedy step, old (128-d, {torch.get_num_threads()} threads): {1e3 * old:.2f} ms -> {n_select} steps ~ {old * n_select:.0f} s")
    print(f"greedy step, new (64-d, 1 thread): {1e3 * new:.2f} ms -> {n_select} steps ~ {new * n_select:.0f} s ({old / new:.1f}x)")


def thresholds(tmp: Path, seeds: list[int]) -> None:
    tiles, pixels, masks = _tiles(tmp)
    groups = sorted({t.group for t in tiles})
    rows: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    quality = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        unseen = set(rng.permutation(groups)[: len(groups) // 3].tolist())
        train = [i for i, t in enumerate(tiles) if t.group not in unseen and not t.defect]
        test = [i for i, t in enumerate(tiles) if t.group in unseen]
        test_normal = [i for i in test if not tiles[i].defect]
        for holdout in ("by part", "tile by tile"):
            if holdout == "by part":
                parts = sorted({tiles[i].group for i in train})
                held_parts = set(rng.permutation(parts)[: int(round(0.4 * len(parts)))].tolist())
                calib = [i for i in train if tiles[i].group in held_parts]
            else:
                calib = rng.permutation(train)[: int(round(0.4 * len(train)))].tolist()
            fit = sorted(set(train) - set(calib))
            det = fit_memory([pixels[i] for i in fit], config=MemoryConfig(), seed=seed, device="cpu")
            calib_s = det.predict([pixels[i] for i in calib]).scores
            pred = det.predict([pixels[i] for i in test])
            s_test = pred.scores
            normal_s = s_test[[test.index(i) for i in test_normal]]
            for rule in ("95th percentile", "order statistic (5% at 95%)"):
                t = (float(np.percentile(calib_s, 95)) if rule.startswith("95")
                     else normal_threshold(calib_s, false_alarm_rate=0.05, confidence=0.95).value)
                rows.setdefault((holdout, rule), []).append((float(np.mean(normal_s >= t)), int((normal_s >= t).sum()), normal_s.size))
            if holdout == "by part":
                y = np.array([tiles[i].defect for i in test])
                auroc = anomaly_metrics(y, s_test.astype(np.float64), threshold=0.0).auroc
                pix = pixel_auroc(np.stack([masks[i] for i in test]), np.stack(pred.maps))
                quality.append((auroc, pix, len(fit), len(calib), len(test_normal), int(y.sum())))
    print(f"seeds {seeds}; {len(tiles)} tiles from {len(groups)} source parts")
    print("| hold-out for the threshold | rule | false alarms on unseen normals (per seed) | mean |")
    print("|---|---|---|---:|")
    for (holdout, rule), values in rows.items():
        per = ", ".join(f"{100 * r:.1f}% ({k}/{n})" for r, k, n in values)
        print(f"| {holdout} | {rule} | {per} | {100 * np.mean([v[0] for v in values]):.1f}% |")
    for seed, (a, p, nf, nc, nn, nd) in zip(seeds, quality, strict=True):
        print(f"seed {seed}: fit {nf} normal tiles, threshold from {nc}, test {nn} normal + {nd} defect tiles: "
              f"tile AUROC {a:.3f}, pixel AUROC {p:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("coreset", "thresholds"), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "coreset"):
            coreset(Path(tmp) / "c")
        if args.only in (None, "thresholds"):
            thresholds(Path(tmp) / "t", args.seeds)


if __name__ == "__main__":
    main()

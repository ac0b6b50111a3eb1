"""Report size and open time for a 2,000-person attribute run with 8 audit crops per class.

Builds a RoI-attribute run in code (1920x1080 JPEG frames with noise and workers, 2,000 person
boxes, 3 classes, a 20-epoch history), writes the report with `sitesight.report.build_report`,
then opens it in headless Chromium with ``--dump-dom`` (parse, decode every image, lay out) and
subtracts the time Chromium takes for an empty page in the same run.

    .venv/bin/python benchmarks/bench_report.py [--frames 40] [--persons 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.report.browser import chromium, run_chromium  # noqa: E402

from sitesight.report import build_report  # noqa: E402

CLASSES = ("unknown", "correct", "wrong")


def make_run(root: Path, n_frames: int, n_persons: int, seed: int = 0) -> Path:
    """A classification run folder with ``n_persons`` boxes over ``n_frames`` 1080p frames."""
    rng = np.random.default_rng(seed)
    frames = root / "frames"
    frames.mkdir(parents=True)
    paths = []
    for i in range(n_frames):
        img = rng.integers(70, 180, (1080, 1920, 3), dtype=np.uint8)
        for _ in range(30):
            x, y = rng.integers(0, 1880), rng.integers(0, 1000)
            img[y : y + 70, x : x + 28] = rng.integers(0, 255, 3)
        p = frames / f"f{i:04d}.jpg"
        Image.fromarray(img).save(p, quality=85)
        paths.append(p)
    run = root / "run"
    run.mkdir()
    y = rng.integers(0, 3, n_persons)
    logits = rng.normal(0, 1, (n_persons, 3))
    logits[np.arange(n_persons), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    with open(run / "predictions.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image", "box_index", "x1", "y1", "x2", "y2", "score", "label", "pred", *CLASSES])
        for i in range(n_persons):
            x, yy = float(rng.integers(0, 1880)), float(rng.integers(0, 900))
            h = float(rng.integers(30, 160))
            wr.writerow([paths[i % n_frames], i // n_frames, x, yy, x + h * 0.4, yy + h, 1.0, CLASSES[y[i]],
                         CLASSES[int(probs[i].argmax())], *(f"{v:.6f}" for v in probs[i])])
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5 + e / 50, "val_macro_ap": 0.5 + e / 45}
               for e in range(1, 21)]
    (run / "history.json").write_text(json.dumps(history))
    (run / "best.json").write_text(json.dumps({"class_names": list(CLASSES), "expansion": {"x": 1.0, "top": 0.2, "bottom": 1.5}}))
    (run / "metrics.json").write_text("{}")
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, args.frames, args.persons)
        t0 = time.perf_counter()
        out = build_report([run], root / "report.html", audit_per_class=8, samples_per_class=4)
        build_s = time.perf_counter() - t0
        size_mb = out.stat().st_size / 1e6
        n_img = out.read_text().count("<img ")
        print(f"{args.persons} persons, {args.frames} frames: report {size_mb:.2f} MB, {n_img} images, built in {build_s:.2f} s")
        if chromium() is None:
            print("chromium not installed: open time not measured")
            return
        blank = root / "blank.html"
        blank.write_text("<!DOCTYPE html><html><body>x</body></html>")
        opened, empty = [], []
        for _ in range(args.repeat):
            empty.append(run_chromium(blank, "--dump-dom")[1])
            proc, seconds = run_chromium(out, "--dump-dom")
            assert proc.returncode == 0
            opened.append(seconds)
        print(f"chromium --headless --dump-dom: report {statistics.median(opened):.2f} s, empty page {statistics.median(empty):.2f} s "
              f"(median of {args.repeat}) → page load ≈ {statistics.median(opened) - statistics.median(empty):.2f} s")


if __name__ == "__main__":
    main()

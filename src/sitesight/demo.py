"""The main job: every capability sitesight has, end to end, on synthetic site frames.

`run_demo` runs the steps in `STEPS` in order. Each step is a plain function of a `DemoContext`;
it prints what it did and leaves its outputs in ``ctx.out`` and ``ctx.results`` for later steps
(the report at the end reads them). A capability joins the demo by adding one step here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sitesight.dataset import Dataset

__all__ = ["DemoContext", "run_demo", "STEPS"]


@dataclass
class DemoContext:
    """What the demo steps share: the output folder, the settings and every step's results."""

    out: Path
    frames: int
    seed: int
    console: Console
    dataset: Dataset | None = None
    results: dict[str, Any] = field(default_factory=dict)


def step_synth(ctx: DemoContext) -> None:
    """Generate synthetic site frames with ground truth and print dataset statistics."""
    from sitesight.synth import write_site_dataset

    ctx.dataset = write_site_dataset(ctx.out / "frames", n_frames=ctx.frames, seed=ctx.seed)
    counts = ctx.dataset.class_counts()
    ctx.console.print(
        f"  {len(ctx.dataset)} frames {ctx.dataset[0].image_wh[0]}x{ctx.dataset[0].image_wh[1]} in {ctx.out / 'frames'}; "
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
    )
    ctx.results["synth"] = {"frames": len(ctx.dataset), "class_counts": counts}


def step_formats(ctx: DemoContext) -> None:
    """Write the synth frames' ground truth as CVAT XML and COCO, read both back, validate, check equality."""
    import numpy as np

    from sitesight.formats.coco import read_coco, write_coco
    from sitesight.formats.cvat import read_cvat, write_cvat
    from sitesight.validation import validate_dataset

    assert ctx.dataset is not None
    folder = Path(ctx.dataset.image_path(ctx.dataset[0])).parent
    xml = write_cvat(ctx.dataset, folder / "annotations.xml", task_name="sitesight demo")
    back = read_cvat(xml)
    coco = read_coco(write_coco(back, folder / "annotations.json"))
    worst = max((float(np.abs(a.gt.xyxy - b.gt.xyxy).max()) for a, b in zip(ctx.dataset, back, strict=True) if len(a.gt)),
                default=0.0)  # fmt: skip
    same = back.class_counts() == ctx.dataset.class_counts() == coco.class_counts()
    attrs = sorted(back.attribute_schema)
    errors = [i for i in validate_dataset(back) if i.severity == "error"]
    ctx.console.print(
        f"  CVAT XML {xml.name}: {len(back)} frames, {back.box_count()} boxes read back "
        f"(classes {'identical' if same else 'DIFFER'}, worst box error {worst:.3f} px, attributes {attrs}); "
        f"COCO twin agrees: {coco.box_count() == back.box_count()}; validate: {len(errors)} errors"
    )
    ctx.results["formats"] = {"cvat_xml": str(xml), "boxes": back.box_count(), "classes_identical": same,
                              "max_box_error_px": worst, "validation_errors": len(errors)}  # fmt: skip


def step_curation(ctx: DemoContext) -> None:
    """Dedup frozen frames, split by camera without leaks, package the test split as CVAT tasks."""
    import shutil

    from sitesight.curation import captures_from_dataset, dedup_frames, package_cvat_tasks, split_dataset
    from sitesight.curation.captures import Capture

    assert ctx.dataset is not None, "the synth step runs first"
    out = ctx.out / "curation"
    out.mkdir(parents=True, exist_ok=True)
    captures = captures_from_dataset(ctx.dataset)
    # a frozen camera: the first frame again, a second later, with only the clock region differing
    first = captures[0]
    frozen = out / "frozen_repeat.jpg"
    shutil.copyfile(first.path, frozen)
    captures.append(Capture(path=frozen, camera_id=first.camera_id, timestamp=(first.timestamp or 0.0) + 1.0, index=len(captures)))
    dedup = dedup_frames(captures, ignore_regions=[(0.0, 0.0, 0.45, 0.07)])
    dedup.write_report(out / "dedup_report.csv")
    parts = split_dataset(ctx.dataset, fractions={"train": 0.75, "test": 0.25}, group_by=("camera",), seed=ctx.seed)
    tasks = package_cvat_tasks(parts["test"], out / "cvat_tasks", max_images=10)
    cams = {k: sorted({str(s.camera_id) for s in v.samples}) for k, v in parts.items()}
    ctx.console.print(
        f"  dedup: {dedup.summary()['kept']} kept, {dedup.summary()['dropped']} dropped (report {out / 'dedup_report.csv'}); "
        f"split by camera: train {cams['train']}, test {cams['test']}; {len(tasks)} CVAT task(s) in {out / 'cvat_tasks'}"
    )
    ctx.results["curation"] = {"dedup": dedup.summary(), "split_cameras": cams, "cvat_tasks": [str(t) for t in tasks]}


def step_roi_head(ctx: DemoContext) -> None:
    """Train a tiny RoI attribute head on the synth workers' safety_rope, evaluate it, save its outputs."""
    from sitesight.models.attribute import train_and_evaluate_roi
    from sitesight.models.data import attribute_classes, read_rgb
    from sitesight.models.roi_head import BoxJitter, RoIHeadConfig
    from sitesight.models.train import FitConfig
    from sitesight.synth import ROPE_MIN_HEIGHT

    assert ctx.dataset is not None, "the synth step runs first"
    out = ctx.out / "roi_head"
    cut = max(1, int(len(ctx.dataset) * 0.75))
    train, val = ctx.dataset.with_samples(ctx.dataset.samples[:cut]), ctx.dataset.with_samples(ctx.dataset.samples[cut:])
    names = attribute_classes(ctx.dataset, "safety_rope")
    # tiny random-initialised backbone so the step stays within ~40 s on two CPU cores: frames at 2/3 size,
    # training on 128x224 windows around each person (same features as the whole frame for a CNN), only
    # persons >= 32 px tall (the synth labels smaller ones `unknown`: their rope cannot be seen), light jitter
    jitter = BoxJitter(center=0.05, scale=(0.9, 1.1), x=(0.8, 1.2), top=(0.8, 1.2), bottom=(0.9, 1.1))
    config = RoIHeadConfig(backbone="tiny_cnn", class_names=names, frame_wh=(1280, 720), hidden=64, reduce_channels=16,
                           jitter=jitter, min_height=ROPE_MIN_HEIGHT, train_crop_wh=(128, 224))
    fit_config = FitConfig(epochs=12, batch_size=8, lr=5e-3, patience=12, device="cpu", seed=ctx.seed,
                           class_weights=(1.0,) + (1.5,) * (len(names) - 1))
    frames = [read_rgb(ctx.dataset.image_path(s)) for s in ctx.dataset.samples]  # decode once, not every epoch
    summary = train_and_evaluate_roi(train, val, config=config, fit_config=fit_config, out_dir=out,
                                     images=(frames[:cut], frames[cut:]))
    macro_ap = summary["macro_ap"]
    ctx.console.print(
        f"  {summary['val_boxes']} validation persons >= {ROPE_MIN_HEIGHT:g} px, accuracy {summary['accuracy']:.3f}, "
        f"macro AP {'n/a' if macro_ap is None else f'{macro_ap:.3f}'} (best epoch {summary['best_epoch']}/{summary['epochs_run']}); "
        f"checkpoint {summary['checkpoint']}, predictions {out / 'predictions.csv'}"
    )
    ctx.results["roi_head"] = {
        **{k: v for k, v in summary.items() if k != "metrics"},
        "predictions_csv": str(out / "predictions.csv"),
        "history_csv": str(out / "history.csv"),
        "metrics": summary["metrics"],
    }


def step_evaluation(ctx: DemoContext) -> None:
    """Evaluate a STAND-IN predictor (the synth ground truth jittered, 15% dropped, clutter added) against
    the ground truth: COCO stats, operating point, confidence sweep and error breakdown. A later step
    replaces the stand-in with a real detector run."""
    import json

    import numpy as np

    from sitesight.detections import Detections
    from sitesight.evaluation.coco import evaluate_coco
    from sitesight.evaluation.errors import error_breakdown
    from sitesight.evaluation.inputs import detection_report

    assert ctx.dataset is not None
    rng = np.random.default_rng(ctx.seed + 4)
    gts = [s.gt for s in ctx.dataset.samples]
    preds = []
    for s in ctx.dataset.samples:
        g = s.gt
        keep = rng.random(len(g)) > 0.15
        wh = g.xyxy[keep, 2:] - g.xyxy[keep, :2]
        xyxy = g.xyxy[keep] + rng.normal(0, 0.08, (int(keep.sum()), 4)) * np.tile(wh, 2)
        n_fp = int(rng.poisson(2))
        w, h = s.image_wh
        xy = rng.uniform(0, 1, (n_fp, 2)) * (w - 60, h - 60)
        clutter = np.c_[xy, xy + rng.uniform(15, 60, (n_fp, 2))]
        preds.append(Detections(
            xyxy=np.r_[xyxy, clutter],
            score=np.r_[rng.uniform(0.4, 1.0, int(keep.sum())), rng.uniform(0.05, 0.7, n_fp)],
            class_id=np.r_[g.class_id[keep], rng.integers(0, len(ctx.dataset.class_names), n_fp)],
        ))
    names = ctx.dataset.class_names
    coco = evaluate_coco(gts, preds, class_names=names)
    report = detection_report(gts, preds, class_names=names, iou=0.5, conf=0.5, thresholds=np.arange(0.1, 0.95, 0.1))
    errors = error_breakdown(gts, preds, iou=0.5, class_names=names)
    out = ctx.out / "eval"
    out.mkdir(parents=True, exist_ok=True)
    result = {"predictor": "stand-in: jittered/dropped ground truth plus clutter", "coco": coco.to_dict(), "det": report}
    (out / "standin_eval.json").write_text(json.dumps(result, indent=2, default=lambda v: v.tolist()))
    ctx.console.print(
        f"  [yellow]stand-in predictor[/yellow] (jittered ground truth): AP {coco.stats[0]:.3f}, AP50 {coco.stats[1]:.3f}; "
        f"at conf 0.5: P {report['precision']:.3f} R {report['recall']:.3f} F1 {report['f1']:.3f}; "
        f"errors: " + ", ".join(f"{k} {v}" for k, v in errors.counts.items()) + f" → {out / 'standin_eval.json'}"
    )
    ctx.results["evaluation"] = {"predictor": "stand-in", "coco": coco.named, "operating_point": {k: report[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}, "errors": errors.counts}


# The demo's detector is a person detector that sees 512x512 slices of the 1920x1080 frames at half
# resolution (its own resize takes a slice to 256x256): persons 20-200 px tall become 10-100 px, which
# its stride-8/16 anchors cover, and a quarter of the pixels make training fit in about 80 s on one CPU
# thread. The sliced detection step cuts the demo's frames into the same 512x512 slices (the full-frame
# pass is resized to 256 px high by the model's own resize).
DEMO_SLICE = 512
DEMO_CLASSES = ("person",)


def step_detector(ctx: DemoContext) -> None:
    """Train a small IoU-aware person detector on fresh synth frames (not the demo's), cut into 512x512
    slices seen at half resolution; the sliced detection step then runs it on the demo's frames."""
    import torch

    from sitesight.models.detector.iou_aware import DetectorConfig
    from sitesight.models.detector.train import DetTrainConfig, select_classes, train_detector
    from sitesight.synth import make_site_dataset

    assert ctx.dataset is not None
    images, frames = make_site_dataset(18, seed=ctx.seed + 100, image_wh=ctx.dataset[0].image_wh)
    frames = select_classes(frames, DEMO_CLASSES)  # helmets/heads are 3-30 px: out of reach of a 90 s CPU model
    train, val = frames.with_samples(frames.samples[:16]), frames.with_samples(frames.samples[16:])
    half = DEMO_SLICE // 2
    # tiny random-initialised network; anchors in the model's (half-resolution) input pixels for
    # upright persons (height / width about 2.5); the IoU loss at the paper's weight 1
    config = DetectorConfig(backbone="tiny_pyramid", class_names=DEMO_CLASSES, out_indices=(2, 3), extra_levels=0,
                            fpn_channels=24, head_convs=2, anchor_sizes=(10, 28), anchor_scales=(1.0, 1.6), aspect_ratios=(1.0, 2.5),
                            min_size=half, max_size=half * 16 // 9 + 1, alpha=0.5, iou_loss_weight=1.0, detections_per_img=100)
    # measured here: dropping 90 % of the empty slices (most of a sparse scene) and the per-item zoom and
    # photometric augmentation (half the step time on CPU) took held-out person AP50 from 0.02 to 0.56
    fit = DetTrainConfig(epochs=12, batch_size=4, lr=3e-3, warmup_steps=30, patience=12, device="cpu", seed=ctx.seed,
                         scale=(1.0, 1.0), photometric=False, background_fraction=0.1,
                         tile_wh=(DEMO_SLICE, DEMO_SLICE), tile_overlap=(0.0, 0.0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread ran ~8x faster than two that wait on each other
    try:
        result = train_detector(train, val, config=config, train_config=fit, out_dir=ctx.out / "detector", images=(images[:16], images[16:]))
    finally:
        torch.set_num_threads(threads)
    best = result.history[result.best_epoch - 1]
    speed = sum(r["train_images_per_s"] for r in result.history) / len(result.history)
    ctx.console.print(f"  IoU-aware RetinaNet (tiny_pyramid + FPN, IoU branch, random init, classes {list(DEMO_CLASSES)}) on {len(train)} "
                      f"fresh frames as {DEMO_SLICE}x{DEMO_SLICE} slices at half resolution: {len(result.history)} epochs, {speed:.1f} slices/s "
                      f"on CPU; val AP {best['val_AP']:.3f}, AP50 {best['val_AP50']:.3f} (best epoch {result.best_epoch}) → {result.checkpoint}")
    ctx.results["detector"] = {"checkpoint": str(result.checkpoint), "best_epoch": result.best_epoch, "history": result.history,
                               "train_slices_per_s": speed, "config": config.to_dict(), "class_names": list(DEMO_CLASSES)}


def step_sliced(ctx: DemoContext) -> None:
    """Sliced detection stored as a run with the IoU-aware detector trained above (the STAND-IN, synth GT +
    noise, when that step did not run), the merge x gate x conf sweep table, and the IoU-aware alpha sweep."""
    import numpy as np

    from sitesight.border import MergeSpec
    from sitesight.gate import GateParams
    from sitesight.predict import run_parameters
    from sitesight.standin import standin_raw
    from sitesight.store import write_run
    from sitesight.sweep import align_gt, merge_grid, sweep_run

    assert ctx.dataset is not None
    rng = np.random.default_rng(ctx.seed)
    frames = [(str(ctx.dataset.image_path(s)), s.image_wh) for s in ctx.dataset]
    truth = ctx.dataset  # scored against the classes the model knows
    if "detector" in ctx.results:
        import torch

        from sitesight.images import read_image_rgb
        from sitesight.models.detector.callable import load_detector_callable
        from sitesight.models.detector.train import select_classes
        from sitesight.predict import predict_sliced

        truth = select_classes(ctx.dataset, ctx.results["detector"]["class_names"])
        detect = load_detector_callable(ctx.results["detector"]["checkpoint"], score_threshold=0.1, batch_size=16)
        slice_wh = (DEMO_SLICE, DEMO_SLICE)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            raws = [predict_sliced([read_image_rgb(key)], detect, slice_wh=slice_wh, overlap_ratio=(0.2, 0.2), batch_size=16)[0]
                    for key, _ in frames]
        finally:
            torch.set_num_threads(threads)
        model = f"IoU-aware RetinaNet {ctx.results['detector']['checkpoint']}"
    else:
        slice_wh = (640, 640)
        raws = [standin_raw(s.gt, s.image_wh, rng=rng, num_classes=len(ctx.dataset.class_names)) for s in ctx.dataset]
        model = "STAND-IN (synth GT + noise, not a model)"
    run = write_run(ctx.out / "run_sliced", frames, raws, model=model, parameters=run_parameters(slice_wh, (0.2, 0.2), True))
    ctx.console.print(f"  {model}: {sum(map(len, raws))} raw boxes from {slice_wh[0]}x{slice_wh[1]} slices + full frame → {run.run_dir}")
    merges = [*merge_grid(["nms", "greedy_nmm"], ["iou", "ios"], [0.5]), MergeSpec("nmm", "ios", 0.5)]
    if truth is not ctx.dataset:
        ctx.console.print(f"  scored against the ground truth of the detector's classes only: {list(truth.class_names)}")
    result = sweep_run(run, align_gt(run, truth), merges=merges, confs=[0.3, 0.4, 0.5, 0.6],
                       gates=[None, GateParams(r=40, conf=0.2)], num_classes=len(truth.class_names))
    result.save(ctx.out / "run_sliced" / "sweep.csv")
    ctx.console.print("  method      metric thr  conf gate                  P     R     F1    gated")
    for i, r in enumerate(result.rows):
        mark = "*" if i == result.best else " "
        ctx.console.print(f" {mark}{r.method:<11} {r.metric:<6} {r.threshold:<4g} {r.conf:.2f} {r.gate or '-':<21} "
                          f"{r.precision:.3f} {r.recall:.3f} {r.f1:.3f} {r.gate_removed}", highlight=False)
    best = result.rows[result.best]
    ctx.console.print(f"  best (*): F1 {best.f1:.3f}; table in {ctx.out / 'run_sliced' / 'sweep.csv'}")
    ctx.results["sliced"] = {"run": str(run.run_dir), "best": best.__dict__, "rows": len(result.rows), "model": model,
                             "class_names": list(truth.class_names)}
    if "detector" in ctx.results:
        from sitesight.evaluation.iou_aware import alpha_sweep_run

        alphas = alpha_sweep_run(run.run_dir, truth, [0.0, 0.25, 0.5, 0.75, 1.0])  # CLI default: 0:1:0.1
        alphas.save_csv(ctx.out / "run_sliced" / "iou_aware_alpha.csv")
        by = {(r.alpha, r.oracle): r for r in alphas.rows}
        ctx.console.print("  alpha sweep (S = p^a * IoU^(1-a), NMS, COCO AP/AP75; oracle = true IoU): " + "; ".join(
            f"a={a:g} AP {by[a, False].AP:.3f}/{by[a, False].AP75:.3f} (oracle {by[a, True].AP:.3f}/{by[a, True].AP75:.3f})"
            for a in (0.0, 0.5, 1.0)) + f" → {ctx.out / 'run_sliced' / 'iou_aware_alpha.csv'}")
        ctx.results["sliced"]["alpha_sweep"] = alphas.to_dict()


def step_mining(ctx: DemoContext) -> None:
    """MAD mining over the synth pool with two STAND-IN models that have planted weaknesses (plus the
    sliced stand-in run when present), then the verdict against the synth ground truth."""
    import numpy as np
    from PIL import Image

    from sitesight.detections import Detections
    from sitesight.mining.mad import Handoff, mine_runs, verdict_dir
    from sitesight.mining.select import Diversity
    from sitesight.store import write_run

    assert ctx.dataset is not None
    rng = np.random.default_rng(ctx.seed + 8)
    out = ctx.out / "mining"
    frames = [(str(ctx.dataset.image_path(s)), s.image_wh) for s in ctx.dataset]
    grey = []
    for key, _ in frames:
        with Image.open(key) as im:
            im.draft("L", (im.width // 8, im.height // 8))
            grey.append(float(np.asarray(im.convert("L")).mean()))
    dark = np.asarray(grey) < np.percentile(grey, 30)

    def standin(gt: Detections, drop: np.ndarray) -> Detections:
        keep = ~drop & (rng.random(len(gt)) > 0.03)
        wh = np.tile(gt.xyxy[keep, 2:] - gt.xyxy[keep, :2], 2)
        n_fp = int(rng.poisson(1.0))
        xy = rng.uniform(0, 1, (n_fp, 2)) * (1800, 1000)
        return Detections(xyxy=np.r_[gt.xyxy[keep] + rng.normal(0, 0.03, wh.shape) * wh, np.c_[xy, xy + rng.uniform(20, 80, (n_fp, 2))]],
                          score=np.r_[rng.uniform(0.7, 0.97, int(keep.sum())), rng.uniform(0.05, 0.3, n_fp)],
                          class_id=np.r_[gt.class_id[keep], rng.integers(0, 3, n_fp)])

    height = [s.gt.xyxy[:, 3] - s.gt.xyxy[:, 1] for s in ctx.dataset]
    models = {
        "A_blind_dark": [standin(s.gt, np.full(len(s.gt), bool(d))) for s, d in zip(ctx.dataset, dark, strict=True)],
        "B_blind_small": [standin(s.gt, ((s.gt.class_id == 0) & (h < 60)) | ((s.gt.class_id > 0) & (h < 16)))
                          for s, h in zip(ctx.dataset, height, strict=True)],
    }
    runs = {name: write_run(out / f"run_{name}", frames, dets, model=f"STAND-IN {name} (synth GT degraded, not a model)",
                            parameters={}).run_dir for name, dets in models.items()}
    if "sliced" in ctx.results:
        runs["sliced_iou_aware" if "detector" in ctx.results else "sliced_standin"] = Path(ctx.results["sliced"]["run"])
    budget = max(3, min(30, len(ctx.dataset) // 2))
    result = mine_runs(runs, out / "MINED", budget=budget, diversity=Diversity(max_per_window=budget),
                       handoff=Handoff(class_names=ctx.dataset.class_names, preannotate="B_blind_small"))
    verdict = verdict_dir(out / "MINED", ctx.dataset)
    for name, sel in result.pairs.items():
        a, b = name.split("~")
        planted = dark if "A_blind_dark" in (a, b) else np.zeros(len(dark), bool)
        ctx.console.print(f"  {name}: {sel.size} frames mined, {int(planted[sel].sum())} of them dark (planted A failure)")
    ctx.console.print(f"  ranking (Bradley–Terry on labelled mined sets): {' > '.join(verdict.ranking)}; F1 drop mined vs random: "
                      + ", ".join(f"{m} {d:+.3f}" for m, d in verdict.drop.items()) + f" → {out / 'MINED'}")
    ctx.results["mining"] = {
        **result.to_dict(), "report_run": str(out / "MINED"), "verdict_json": str(out / "MINED" / "verdict.json"),
        "why_json": str(out / "MINED" / "why.json"), "ranking": verdict.ranking, "drop": verdict.drop,
        "pairs_verdict": [p.to_dict() for p in verdict.pairs], "dark_frames": int(dark.sum()),
        "models": {k: str(v) for k, v in runs.items()},
    }


def step_anomaly(ctx: DemoContext) -> None:
    """Anomaly detection on synthetic screws (MVTec layout): a conv autoencoder and a PatchCore-style memory
    detector fitted on normal parts only, thresholds from held-out normals next to the best-F1 one."""
    import torch

    from sitesight.models.anomaly.autoencoder import AutoencoderConfig
    from sitesight.models.anomaly.memory import MemoryConfig
    from sitesight.models.anomaly.pipeline import predict_anomaly, train_anomaly
    from sitesight.report import write_run_info
    from sitesight.synth.parts import write_parts_dataset

    out = ctx.out / "anomaly"
    # 240 normal training parts: 40 to fit on, 200 held out to set thresholds (a 5 % false-alarm rate needs
    # ~10 normals above it to be more than a guess); 40 normal + 20 defective test parts.
    parts = write_parts_dataset(out / "parts", n_train=240, n_test_normal=40, n_test_defect=20, seed=ctx.seed, image_wh=(64, 64))
    # Random-init backbone (weights are never downloaded): layer1+layer2 at 96 px keep local texture.
    methods = {"memory": ("feature memory (PatchCore-style, random-init resnet18)", MemoryConfig(image_size=96, layers=(1, 2))),
               "ae": ("conv autoencoder (L2, top-1% pixels)", AutoencoderConfig(image_size=64, base_channels=16))}
    found = {}
    threads = torch.get_num_threads()
    for method, (label, config) in methods.items():
        torch.set_num_threads(1)  # on a shared 2-core machine one thread beats two that wait on each other
        try:
            trained = train_anomaly(parts / "train", out / f"model_{method}", config=config, holdout_fraction=200 / 240,
                                    false_alarm_rate=0.05, epochs=30, seed=ctx.seed)
            pred = out / f"pred_{method}"
            summary = predict_anomaly(trained["checkpoint"], parts / "test", pred, heatmaps=6)
        finally:
            torch.set_num_threads(threads)
        write_run_info(pred, kind="anomaly", name=label,
                       artefacts={"scores": pred / "scores.csv", "summary": pred / "summary.json", "heatmaps": pred / "heatmaps.png"},
                       config={"method": method, "fit_images": trained["fit_images"], "holdout_normals": trained["holdout_images"]})
        m, rows = summary["metrics"], summary["thresholds"]
        ctx.console.print(f"  {method}: image AUROC {m['auroc']:.3f}, pixel AUROC {summary.get('pixel_auroc', float('nan')):.3f} "
                          f"(fit on {trained['fit_images']} normals, thresholds from {trained['holdout_images']} held-out normals) → {pred}")
        for r in rows:
            ctx.console.print(f"    {r['name']:<17} recall {r['recall']:.2f}, false alarms on test normals {100 * r['false_alarm_rate']:.1f}%")
        found[method] = {"report_run": str(pred), "auroc": m["auroc"], "pixel_auroc": summary.get("pixel_auroc"),
                         "thresholds": rows, "checkpoint": trained["checkpoint"]}
    ctx.results["anomaly"] = {**found["memory"], "autoencoder": found["ae"], "parts": str(parts)}
    ctx.results["anomaly_ae"] = {"report_run": found["ae"]["report_run"]}  # second run of the same kind: the report compares them


def step_report(ctx: DemoContext) -> None:
    """One self-contained HTML page over every run the demo made: ``ctx.out/report.html``.

    Runs are found from ``ctx.results``: an entry with ``"report_run"`` (a folder `sitesight.report`
    reads) is used as it is; the RoI head, the stand-in evaluation and the sliced run are wired here.
    """
    from sitesight.formats.coco import write_coco
    from sitesight.report import build_report, write_run_info

    assert ctx.dataset is not None
    folder = ctx.out / "report_inputs"
    folder.mkdir(parents=True, exist_ok=True)
    gt = write_coco(ctx.dataset, folder / "ground_truth_coco.json")
    runs: list[Path] = []
    if "roi_head" in ctx.results:
        runs.append(ctx.out / "roi_head")
    if "evaluation" in ctx.results and (ctx.out / "eval" / "standin_eval.json").is_file():
        runs.append(write_run_info(folder / "standin_eval", kind="detection", name="stand-in evaluation",
                                   artefacts={"evaluation": ctx.out / "eval" / "standin_eval.json", "gt": gt}).parent)
    sliced = ctx.results.get("sliced")
    if sliced:
        best = sliced["best"]
        artefacts = {"predictions": sliced["run"], "gt": gt}
        if (Path(sliced["run"]) / "sweep.csv").is_file():
            artefacts["sweep"] = Path(sliced["run"]) / "sweep.csv"
        runs.append(write_run_info(folder / "sliced", kind="detection", name=f"sliced run ({'IoU-aware detector' if 'detector' in ctx.results else 'stand-in detector'})", artefacts=artefacts,
                                   config={"conf": best["conf"], "iou": 0.5, "merge": {"method": best["method"], "threshold": best["threshold"]},
                                           "note": "predictions merged per frame with the sweep's best merge setting"}).parent)
    runs += [Path(r["report_run"]) for r in ctx.results.values() if isinstance(r, dict) and r.get("report_run")]
    path = build_report(runs, ctx.out / "report.html", title=f"sitesight demo ({ctx.frames} synthetic frames, seed {ctx.seed})")
    ctx.console.print(f"  {len(runs)} runs → {path} ({path.stat().st_size / 1e6:.2f} MB)")
    ctx.results["report"] = {"html": str(path), "runs": [str(r) for r in runs]}


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("synthetic site frames", step_synth),
    ("formats: synth ground truth as CVAT XML and COCO, read back and validated", step_formats),
    ("evaluation: COCO AP, operating point, errors (stand-in predictor)", step_evaluation),
    ("IoU-aware RetinaNet: train a small detector on fresh synth frames (CPU)", step_detector),
    ("sliced detection run (IoU-aware detector) + merge x gate x conf sweep + alpha sweep", step_sliced),
    ("curation: dedup, leak-free split, CVAT tasks", step_curation),
    ("RoI attribute head: safety rope on synth workers", step_roi_head),
    ("mining: MAD hard samples between stand-in models with planted weaknesses, verdict", step_mining),
    ("anomaly detection: autoencoder vs feature memory on synthetic screws, normal-only thresholds", step_anomaly),
    ("report: one HTML page over every run above (keep this step last)", step_report),
]


def run_demo(out: Path, *, frames: int = 24, seed: int = 0, console: Console | None = None) -> dict[str, Any]:
    """Run every demo step into ``out``; returns each step's results by name."""
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, frames=frames, seed=seed, console=console)
    start = time.perf_counter()
    for i, (title, step) in enumerate(STEPS, 1):
        t0 = time.perf_counter()
        console.print(f"[bold]{i}/{len(STEPS)} {title}[/bold]")
        step(ctx)
        console.print(f"  [dim]{time.perf_counter() - t0:.1f} s[/dim]")
    console.print(f"[green]demo finished in {time.perf_counter() - start:.1f} s; outputs in {out}[/green]")
    return ctx.results

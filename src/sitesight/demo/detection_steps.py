"""Demo steps for detection: evaluation, the IoU-aware detector, the sliced run and sweeps, MAD mining."""

from __future__ import annotations

from pathlib import Path

from sitesight import atomic
from sitesight.demo.context import DemoContext


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
    atomic.write_text(out / "standin_eval.json", json.dumps(result, indent=2, default=lambda v: v.tolist()))
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

    from sitesight.sliced.border import MergeSpec
    from sitesight.sliced.gate import GateParams
    from sitesight.sliced.predict import run_parameters
    from sitesight.sliced.standin import standin_raw
    from sitesight.sliced.store import write_run
    from sitesight.sliced.sweep import align_gt, merge_grid, sweep_run

    assert ctx.dataset is not None
    rng = np.random.default_rng(ctx.seed)
    frames = [(str(ctx.dataset.image_path(s)), s.image_wh) for s in ctx.dataset]
    truth = ctx.dataset  # scored against the classes the model knows
    if "detector" in ctx.results:
        import torch

        from sitesight.images import read_image_rgb
        from sitesight.models.detector.callable import load_detector_callable
        from sitesight.models.detector.train import select_classes
        from sitesight.sliced.predict import predict_sliced

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
        class_names = list(ctx.results["detector"]["class_names"])
    else:
        slice_wh = (640, 640)
        raws = [standin_raw(s.gt, s.image_wh, rng=rng, num_classes=len(ctx.dataset.class_names)) for s in ctx.dataset]
        model = "STAND-IN (synth GT + noise, not a model)"
        class_names = list(ctx.dataset.class_names)
    run = write_run(ctx.out / "run_sliced", frames, raws, model=model, parameters=run_parameters(slice_wh, (0.2, 0.2), True),
                    class_names=class_names)
    ctx.console.print(f"  {model}: {sum(map(len, raws))} raw boxes from {slice_wh[0]}x{slice_wh[1]} slices + full frame → {run.run_dir}")
    merges = [*merge_grid(["nms", "greedy_nmm"], ["iou", "ios"], [0.5]), MergeSpec("nmm", "ios", 0.5)]
    if truth is not ctx.dataset:
        ctx.console.print(f"  scored against the ground truth of the detector's classes only: {list(truth.class_names)}")
    result = sweep_run(run, align_gt(run, truth), merges=merges, confs=[0.3, 0.4, 0.5, 0.6],
                       gates=[None, GateParams(r=40, conf=0.2)], class_names=truth.class_names)
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
        from sitesight.sliced.alpha import alpha_sweep_run

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
    from sitesight.sliced.store import write_run

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
    runs = {name: write_run(out / f"run_{name}", frames, dets, model=f"STAND-IN {name} (synth GT degraded, not a model)", class_names=ctx.dataset.class_names,
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

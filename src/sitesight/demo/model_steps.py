"""Demo steps for the torch models: the RoI safety-rope head and anomaly detection on parts."""

from __future__ import annotations

from sitesight.demo.context import DemoContext


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

"""Training the IoU-aware RetinaNet on synth frames: the IoU branch learns to rank boxes by their true IoU,
checkpoints rebuild the model, resume continues, and the detector callable feeds a stored sliced run
that the alpha sweep and the oracle re-rank without the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight import Dataset, Sample  # noqa: E402
from sitesight.evaluation.iou_aware import spearman  # noqa: E402
from sitesight.models.detector.callable import detector_callable, load_detector, load_detector_callable, to_input  # noqa: E402
from sitesight.models.detector.iou_aware import DetectorConfig, positive_anchor_ious  # noqa: E402
from sitesight.models.detector.train import DetTrainConfig, detection_items, train_detector  # noqa: E402
from sitesight.sliced.alpha import alpha_sweep_run  # noqa: E402
from sitesight.synth import render_site_frame  # noqa: E402

WH = (960, 720)
TILE = (192, 192)
CONFIG = DetectorConfig(backbone="tiny_pyramid", class_names=("person",), out_indices=(2, 3), extra_levels=0, fpn_channels=24,
                        head_convs=2, anchor_sizes=(36, 72), anchor_scales=(1.0, 1.5), aspect_ratios=(2.0, 3.0),
                        min_size=192, max_size=192, alpha=0.5, iou_loss_weight=3.0)
FIT = DetTrainConfig(epochs=6, batch_size=4, lr=5e-3, warmup_steps=10, patience=6, device="cpu", seed=0, progress=False,
                     tile_wh=TILE, tile_overlap=(0.0, 0.0))


def _frames(n: int, seed: int) -> tuple[list[np.ndarray], Dataset]:
    rng = np.random.default_rng(seed)
    images, samples = [], []
    for i in range(n):
        rgb, gt = render_site_frame(rng, WH, n_workers=int(rng.integers(8, 16)), darkness=0.0)
        images.append(rgb)
        samples.append(Sample(path=f"frame_{seed}_{i}.png", image_wh=WH, gt=gt[gt.class_id == 0].replace(attributes={})))
    return images, Dataset(("person",), tuple(samples))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    train_images, train = _frames(8, 0)
    val_images, val = _frames(2, 1)
    result = train_detector(train, val, config=CONFIG, train_config=FIT, out_dir=out / "run", images=(train_images, val_images))
    return out, result


def test_iou_branch_ranks_held_out_boxes_by_true_iou(trained) -> None:
    out, result = trained
    assert len(result.history) == FIT.epochs and {"val_AP", "val_AP75", "loss_iou", "train_images_per_s"} <= set(result.history[0])
    assert (out / "run" / "history.csv").is_file()
    model, config = load_detector(result.checkpoint)
    assert config["kind"] == "iou_aware_retinanet" and config["epoch"] == result.best_epoch
    images, held_out = _frames(3, 2)  # frames the model never saw
    items = detection_items(held_out, images=images, tile_wh=TILE, overlap_ratio=(0.0, 0.0), keep_empty=False)
    pred, true = positive_anchor_ious(model, [to_input(im) for im, _ in items],
                                      [{"boxes": torch.from_numpy(g.xyxy), "labels": torch.from_numpy(g.class_id)} for _, g in items])
    assert len(pred) > 100
    rho = spearman(pred.numpy(), true.numpy())
    stats = pytest.importorskip("scipy.stats")
    assert rho == pytest.approx(stats.spearmanr(pred.numpy(), true.numpy()).statistic, abs=1e-9)
    print("held-out positive-anchor Spearman", rho, len(pred))
    assert rho >= 0.5, rho


def test_checkpoint_rebuilds_the_same_detector_and_resume_continues(trained, tmp_path) -> None:
    out, result = trained
    model, _ = load_detector(result.checkpoint)
    images, _ = _frames(1, 3)
    tile = images[0][:192, :192]
    a = detector_callable(model)([tile])[0]
    b = load_detector_callable(result.checkpoint)([tile])[0]
    assert a.equals(b) and {"cls_score", "iou_pred"} <= set(a.attributes)
    np.testing.assert_allclose(a.score, np.sqrt(a.attributes["cls_score"] * a.attributes["iou_pred"]), rtol=1e-5)
    # resume: one more epoch on top of the finished run's last.pt
    more = DetTrainConfig(**{**FIT.__dict__, "epochs": FIT.epochs + 1})
    train_images, train = _frames(2, 0)
    resumed = train_detector(train, None, config=CONFIG, train_config=more, out_dir=out / "run", images=(train_images, None), resume=True)
    assert [r["epoch"] for r in resumed.history] == list(range(1, FIT.epochs + 2))
    assert json.loads((out / "run" / "history.json").read_text())[-1]["epoch"] == FIT.epochs + 1


def test_sliced_run_keeps_both_scores_and_the_alpha_sweep_reranks_it(trained, tmp_path) -> None:
    from PIL import Image

    from sitesight.sliced.predict import predict_sliced, run_parameters
    from sitesight.sliced.store import write_run

    _, result = trained
    images, dataset = _frames(2, 4)
    paths = []
    for im, s in zip(images, dataset.samples, strict=True):
        paths.append(tmp_path / s.path)
        Image.fromarray(im).save(paths[-1])
    dataset = dataset.with_samples([s.replace(path=str(p)) for s, p in zip(dataset.samples, paths, strict=True)])
    detect = load_detector_callable(result.checkpoint, score_threshold=0.05)
    raws = predict_sliced(images, detect, slice_wh=(384, 384), overlap_ratio=(0.2, 0.2), full_frame=False)
    run = write_run(tmp_path / "run", [(str(p), WH) for p in paths], raws, model="iou-aware test",
                    parameters=run_parameters((384, 384), (0.2, 0.2), False))
    assert {"cls_score", "iou_pred", "source"} <= set(run.raw[0].attributes)
    sweep = alpha_sweep_run(run.run_dir, dataset, [0.0, 0.5, 1.0])
    assert [(r.alpha, r.oracle) for r in sweep.rows] == [(0.0, False), (0.5, False), (1.0, False), (0.0, True), (0.5, True), (1.0, True)]
    by = {(r.alpha, r.oracle): r for r in sweep.rows}
    assert by[(1.0, False)].AP == pytest.approx(by[(1.0, True)].AP)  # alpha 1 ignores the IoU, predicted or true
    assert by[(0.0, True)].AP75 >= by[(1.0, False)].AP75  # ranking by the true IoU cannot lose at IoU 0.75

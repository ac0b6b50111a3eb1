from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight import Dataset, Detections, Sample  # noqa: E402
from sitesight.models.attribute import attribute_labels, predict_roi, train_roi_head, write_attribute_csv  # noqa: E402
from sitesight.models.checkpoint import load_checkpoint, read_checkpoint_config  # noqa: E402
from sitesight.models.data import attribute_classes  # noqa: E402
from sitesight.models.roi_head import BoxJitter, RoIHeadConfig  # noqa: E402
from sitesight.models.train import FitConfig, loss_fn  # noqa: E402
from sitesight.synth import ROPE_MIN_HEIGHT, make_site_dataset  # noqa: E402

ROPE = {"correct": (40, 200, 40), "wrong": (220, 40, 40)}


def rope_frames(n_frames: int, seed: int, image_wh=(160, 120)) -> tuple[list[np.ndarray], Dataset]:
    """Workers as dark rectangles, a coloured rope below them: green = correct, red = wrong, none = unknown."""
    rng = np.random.default_rng(seed)
    w, h = image_wh
    images, samples = [], []
    for f in range(n_frames):
        img = rng.integers(90, 150, (h, w, 3), dtype=np.uint8)
        xyxy, values = [], []
        for k in range(3):
            x0 = 10 + 50 * k + int(rng.integers(0, 10))
            y0 = int(rng.integers(5, 30))
            img[y0 : y0 + 40, x0 : x0 + 16] = (30, 30, 90)
            value = ("correct", "wrong", None)[int(rng.integers(0, 3))]
            if value is not None:
                img[y0 + 40 : y0 + 75, x0 + 6 : x0 + 10] = ROPE[value]
            xyxy.append([x0, y0, x0 + 16, y0 + 40])
            values.append(value)
        gt = Detections(xyxy=xyxy, class_id=[0, 0, 0], attributes={"safety_rope": np.array(values, object)})
        samples.append(Sample(path=f"frame_{f}.jpg", image_wh=image_wh, gt=gt))
        images.append(img)
    return images, Dataset(class_names=("person",), samples=tuple(samples))


CFG = RoIHeadConfig(backbone="tiny_cnn", class_names=("unknown", "correct", "wrong"), frame_wh=(160, 120), hidden=64, reduce_channels=16, dropout=0.0)
FAST = FitConfig(epochs=3, batch_size=4, lr=3e-3, progress=False, seed=0)


def test_tiny_head_overfits_small_synth_set(tmp_path):
    """Two 640x360 sitesight.synth frames (one camera); persons under 32 px tall, whose rope the synth
    labels `unknown` by rule, are left out through `min_height`, so all three rope states occur."""
    images, ds = make_site_dataset(2, seed=4, image_wh=(640, 360), n_cameras=1, timestamp_overlay=False)
    assert attribute_classes(ds, "safety_rope") == ("unknown", "correct", "wrong")
    jitter = BoxJitter(center=0.05, scale=(0.95, 1.05), x=(0.9, 1.1), top=(0.9, 1.1), bottom=(0.9, 1.1))
    cfg = RoIHeadConfig(**{**CFG.__dict__, "frame_wh": (640, 360), "min_height": ROPE_MIN_HEIGHT, "jitter": jitter})
    y = np.concatenate(attribute_labels(ds, cfg))
    person = ds.class_index("person")
    heights = np.concatenate([s.gt.xyxy[:, 3] - s.gt.xyxy[:, 1] for s in ds.samples])
    is_person = np.concatenate([s.gt.class_id == person for s in ds.samples])
    np.testing.assert_array_equal(y >= 0, is_person & (heights >= ROPE_MIN_HEIGHT))
    assert np.bincount(y[y >= 0], minlength=3).min() >= 4, np.bincount(y[y >= 0])
    fit_cfg = FitConfig(epochs=12, batch_size=1, lr=3e-3, patience=12, progress=False, class_weights=None)
    result = train_roi_head(ds, ds, config=cfg, fit_config=fit_cfg, out_dir=tmp_path, images=(images, images))
    model, stored = load_checkpoint(result.checkpoint)
    preds = predict_roi(model, images, [s.gt for s in ds.samples], box_class_id=person, device="cpu")
    p = np.concatenate([d.attributes["safety_rope_probs"] for d in preds])
    assert np.isnan(p[y < 0]).all() and not np.isnan(p[y >= 0]).any()
    accuracy = float((p[y >= 0].argmax(1) == y[y >= 0]).mean())
    assert accuracy >= 0.95, (accuracy, result.history[-3:])
    assert stored["epoch"] == result.best_epoch and stored["class_names"] == list(cfg.class_names)
    # the best epoch's validation metrics agree with the reloaded model's predictions
    assert abs(result.best_metrics["accuracy"] - accuracy) < 1e-6


def test_checkpoint_reloads_to_identical_outputs(tmp_path):
    images, ds = rope_frames(4, seed=1)
    result = train_roi_head(ds, ds, config=CFG, fit_config=FitConfig(epochs=1, batch_size=2, lr=1e-3, progress=False), out_dir=tmp_path, images=(images, images))
    cfg = read_checkpoint_config(result.checkpoint)
    assert cfg["kind"] == "roi_head" and cfg["backbone"] == "tiny_cnn" and cfg["frame_wh"] == [160, 120]
    assert json.loads((tmp_path / "best.json").read_text())["expansion"] == {"x": 1.0, "top": 0.2, "bottom": 1.5}
    a, _ = load_checkpoint(result.checkpoint)
    b, _ = load_checkpoint(result.checkpoint)
    x = torch.randn(2, 3, 120, 160)
    rois = torch.tensor([[0, 10, 10, 40, 100], [1, 50, 5, 90, 60]], dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(a(x, rois), b(x, rois))
    # and identical to the trained model saved at that epoch (last.pt holds the final state = best for 1 epoch)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    for k, v in a.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_resume_continues_the_history_and_matches_an_uninterrupted_run(tmp_path):
    images, ds = rope_frames(6, seed=2)
    full = train_roi_head(ds, ds, config=CFG, fit_config=FitConfig(**{**FAST.__dict__, "epochs": 3}), out_dir=tmp_path / "full", images=(images, images))
    part = FitConfig(**{**FAST.__dict__, "epochs": 3})
    assert [r["epoch"] for r in full.history] == [1, 2, 3]
    two = tmp_path / "two"
    _run_two_of_three(ds, images, two)
    resumed = train_roi_head(ds, ds, config=CFG, fit_config=part, out_dir=two, images=(images, images), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(resumed.history, full.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    csv_rows = (two / "history.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 4 and csv_rows[0].startswith("epoch,train_loss")


def _run_two_of_three(ds, images, out_dir):
    """Train 2 epochs of a 3-epoch schedule, as if killed after epoch 2."""
    from sitesight.models import train as train_mod

    calls = {"n": 0}
    original = train_mod.train_one_epoch

    def stop_after_two(*args, **kwargs):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(*args, **kwargs)

    train_mod.train_one_epoch = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            train_roi_head(ds, ds, config=CFG, fit_config=FitConfig(**{**FAST.__dict__, "epochs": 3}), out_dir=out_dir, images=(images, images))
    finally:
        train_mod.train_one_epoch = original
    assert len(json.loads((out_dir / "history.json").read_text())) == 2


def test_prediction_csv_layout(tmp_path):
    images, ds = rope_frames(2, seed=3)
    gts = [s.gt for s in ds.samples]
    gts[1] = Detections.concat([gts[1], Detections(xyxy=[[0, 0, 5, 5]], class_id=[1], attributes={"safety_rope": np.array([None], object)})])
    result = train_roi_head(ds, None, config=CFG, fit_config=FitConfig(epochs=1, batch_size=2, progress=False), out_dir=tmp_path, images=(images, None))
    model, _ = load_checkpoint(result.checkpoint)
    preds = predict_roi(model, images, gts, device="cpu")
    assert np.isnan(preds[1].attributes["safety_rope_probs"][3]).all() and preds[1].attributes["safety_rope_pred"][3] is None
    np.testing.assert_allclose(preds[0].attributes["safety_rope_probs"].sum(1), 1, rtol=1e-5)
    two_classes = ds.replace(class_names=("person", "helmet"))
    labels = attribute_labels(two_classes.with_samples([s.replace(gt=g) for s, g in zip(ds.samples, gts, strict=True)]), CFG)
    n = write_attribute_csv(tmp_path / "p.csv", ["a.jpg", "b.jpg"], preds, attribute="safety_rope", class_names=CFG.class_names, labels=labels)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert n == 6 and len(lines) == 7
    assert lines[0] == "image,box_index,x1,y1,x2,y2,score,label,pred,unknown,correct,wrong"


def test_focal_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    pt = torch.stack([p[0, 0], p[1, 2]])
    expected = ((1 - pt) ** 2 * -torch.log(pt)).mean()
    assert torch.allclose(loss_fn(logits, labels, weight=None, focal_gamma=2.0), expected)
    w = torch.tensor([1.0, 1.5, 1.5])
    ce = torch.nn.functional.cross_entropy(logits, labels, weight=w)
    hand = (1.0 * -torch.log(pt[0]) + 1.5 * -torch.log(pt[1])) / 2.5
    assert torch.allclose(loss_fn(logits, labels, weight=w, focal_gamma=None), hand) and torch.allclose(ce, hand)


@pytest.mark.gpu
def test_roi_head_trains_on_cuda_with_amp_and_compile(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    images, ds = rope_frames(4, seed=4)
    result = train_roi_head(ds, ds, config=CFG, fit_config=FitConfig(epochs=2, batch_size=2, lr=1e-3, progress=False, device="cuda"), out_dir=tmp_path, images=(images, images))
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])

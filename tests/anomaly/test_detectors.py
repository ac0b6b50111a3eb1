"""Both detectors on synthetic screws, scored with sitesight.evaluation (itself checked against scikit-learn)
and cross-checked here against sklearn.metrics directly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from sklearn.metrics import roc_auc_score  # noqa: E402

from sitesight.evaluation.anomaly import anomaly_metrics, pixel_auroc  # noqa: E402


@pytest.fixture(scope="module")
def predictions(memory_detector, ae_detector, parts_test):
    images = list(parts_test.images)
    return {"memory": memory_detector.predict(images), "ae": ae_detector.predict(images)}


def test_both_beat_chance_and_memory_beats_autoencoder(predictions, parts_test):
    y = parts_test.labels
    auroc = {name: anomaly_metrics(y, p.scores).auroc for name, p in predictions.items()}
    for name, p in predictions.items():
        assert auroc[name] == pytest.approx(roc_auc_score(y, p.scores))
    print(f"image AUROC on 40 normal + 40 defective screws: memory {auroc['memory']:.3f}, autoencoder {auroc['ae']:.3f}")
    assert auroc["ae"] > 0.65, auroc
    assert auroc["memory"] > 0.9, auroc
    assert auroc["memory"] > auroc["ae"] + 0.05, auroc


def test_maps_localise_defects(predictions, parts_test):
    masks = np.stack(parts_test.masks)
    mem = predictions["memory"].stacked_maps()
    assert mem.shape == masks.shape and mem.dtype == np.float32
    px = pixel_auroc(masks, mem)
    assert px == pytest.approx(roc_auc_score(masks.ravel(), mem.ravel()), abs=1e-9)
    assert px > 0.9
    # Per defect type, the hottest pixel of the memory map falls on (or next to) the defect most of the time.
    hits = []
    for m, mask in zip(mem[40:], masks[40:], strict=True):
        y, x = np.unravel_index(np.argmax(m), m.shape)
        grown = np.zeros_like(mask)
        ys, xs = np.nonzero(mask)
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                grown[np.clip(ys + dy, 0, 63), np.clip(xs + dx, 0, 63)] = True
        hits.append(grown[y, x])
    assert np.mean(hits) > 0.6


def test_autoencoder_history_and_error_kinds(ae_detector, parts_test):
    h = ae_detector.history
    assert len(h) == 30 and h[-1]["train_loss"] < h[0]["train_loss"] / 2
    assert all(row["val_loss"] is not None for row in h)  # 40 images: 4 held out for validation
    from dataclasses import replace

    from sitesight.models.anomaly.autoencoder import AutoencoderDetector

    ssim = AutoencoderDetector(model=ae_detector.model, config=replace(ae_detector.config, error="ssim"))
    p = ssim.predict(list(parts_test.images[:4]))
    assert p.scores.shape == (4,) and all(0 <= m.min() and m.max() <= 1 for m in p.maps)


def test_autoencoder_shapes_for_depth_and_bottleneck():
    from sitesight.models.anomaly.autoencoder import ConvAutoencoder

    for depth, bottleneck in ((2, 4), (4, 32)):
        model = ConvAutoencoder(depth=depth, base_channels=8, bottleneck=bottleneck)
        x = torch.rand(2, 3, 64, 64)
        code = model.encoder(x)
        assert code.shape == (2, bottleneck, 64 // 2**depth, 64 // 2**depth)
        assert model(x).shape == x.shape


def test_maps_come_back_at_each_image_size(memory_detector):
    images = [np.full((50, 70, 3), 120, np.uint8), np.full((64, 64, 3), 90, np.uint8)]
    p = memory_detector.predict(images)
    assert [m.shape for m in p.maps] == [(50, 70), (64, 64)]
    with pytest.raises(ValueError, match="differ in size"):
        p.stacked_maps()

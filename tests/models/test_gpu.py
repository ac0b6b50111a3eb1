"""GPU paths (#15): they skip themselves without CUDA. The reference is the same model on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")


def test_torchvision_detector_on_cuda_half_matches_cpu():
    from torchvision.models.detection import retinanet_resnet50_fpn

    from sitesight.predictors.torchvision import wrap_torchvision_model

    torch.manual_seed(0)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=320, max_size=320)
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.fill_(0.0)  # p = 0.5: boxes above any low threshold
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (320, 320, 3), dtype=np.uint8) for _ in range(2)]
    cpu = wrap_torchvision_model(model, score_threshold=0.3, device="cpu")(images)
    gpu = wrap_torchvision_model(model, score_threshold=0.3, device="cuda", half=True)(images)
    for a, b in zip(cpu, gpu, strict=True):
        assert abs(len(a) - len(b)) <= max(2, len(a) // 10)
        n = min(len(a), len(b), 10)
        np.testing.assert_allclose(np.sort(a.score)[-n:], np.sort(b.score)[-n:], atol=2e-2)


def test_detect_to_run_on_cuda_equals_cpu(tmp_path):
    from PIL import Image

    from sitesight.models.checkpoint import save_checkpoint
    from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet
    from sitesight.predictors import build_detector
    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import detect_to_run
    from sitesight.sliced.store import load_run

    config = DetectorConfig(backbone="tiny_pyramid", class_names=("person",), out_indices=(2, 3), extra_levels=0, fpn_channels=8,
                            head_convs=1, anchor_sizes=(16, 32), min_size=64, max_size=96, detections_per_img=10)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.safetensors", build_iou_aware_retinanet(config).eval(), config.to_dict())
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(tmp_path / f"f{i}.png")
    refs = list_frames([tmp_path / f"f{i}.png" for i in range(3)])
    for device in ("cpu", "cuda"):
        detect_to_run(refs, build_detector(f"iouaware:{path}", conf=0.0, device=device), tmp_path / device, model="m", slice_wh=(64, 64))
    a, b = load_run(tmp_path / "cpu"), load_run(tmp_path / "cuda")
    for da, db in zip(a.raw, b.raw, strict=True):
        assert len(da) == len(db)
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=1e-2)


def test_fit_with_amp_on_cuda_trains_and_reloads_on_cpu(tmp_path):
    from sitesight.models.attribute import train_and_evaluate_roi
    from sitesight.models.data import attribute_classes
    from sitesight.models.roi_head import RoIHeadConfig
    from sitesight.models.train import FitConfig, amp_dtype, resolve_device
    from sitesight.synth import write_site_dataset

    assert amp_dtype(resolve_device("cuda")) in (torch.bfloat16, torch.float16)
    ds = write_site_dataset(tmp_path / "frames", n_frames=3, seed=4, image_wh=(320, 180), n_cameras=1)
    names = attribute_classes(ds, "safety_rope")
    config = RoIHeadConfig(backbone="tiny_cnn", class_names=names, frame_wh=(320, 180), hidden=16, reduce_channels=8)
    fit = FitConfig(epochs=2, batch_size=2, lr=1e-3, device="cuda", amp=True, num_workers=2, progress=False)
    summary = train_and_evaluate_roi(ds, ds, config=config, fit_config=fit, out_dir=tmp_path / "run")
    assert all(np.isfinite(row["train_loss"]) for row in summary["history"])
    assert summary["backbone_init"] == "random"

"""Post-hoc IoU head: on a synthetic case where class scores say nothing about localisation, rescoring
with the head's predicted IoU raises AP75 (COCO AP by the evaluation engine, which matches pycocotools)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from sitesight import Dataset, Detections, Sample  # noqa: E402
from sitesight.evaluation.coco import evaluate_coco  # noqa: E402
from sitesight.evaluation.iou_aware import true_iou  # noqa: E402
from sitesight.models.detector.iou_head import IoUHeadConfig, load_iou_head  # noqa: E402
from sitesight.models.detector.rescore import rescore_run, train_iou_head_on_run  # noqa: E402
from sitesight.sliced.merge import merge  # noqa: E402
from sitesight.sliced.store import load_run, write_run  # noqa: E402
from sitesight.synth import render_site_frame  # noqa: E402

WH = (480, 360)


def _candidates(gt: Detections, rng: np.random.Generator) -> Detections:
    """Three boxes per person (tight, medium, loose), class scores uniform at random: no localisation signal."""
    parts = []
    for spread in (0.03, 0.12, 0.25):
        wh = gt.xyxy[:, 2:] - gt.xyxy[:, :2]
        xyxy = gt.xyxy + rng.uniform(-spread, spread, (len(gt), 4)) * np.tile(wh, 2)
        parts.append(Detections(xyxy=xyxy, score=rng.uniform(0.3, 1.0, len(gt)), class_id=gt.class_id))
    return Detections.concat(parts)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rescore")
    rng = np.random.default_rng(7)
    samples, raws = [], []
    for i in range(16):
        rgb, gt = render_site_frame(rng, WH, n_workers=int(rng.integers(6, 10)), darkness=0.0)
        gt = gt[gt.class_id == 0].replace(attributes={})
        path = folder / f"frame_{i:03d}.png"
        Image.fromarray(rgb).save(path)
        samples.append(Sample(path=str(path), image_wh=WH, gt=gt))
        raws.append(_candidates(gt, rng))
    dataset = Dataset(("person",), tuple(samples))
    frames = [(s.path, WH) for s in samples]
    train = write_run(folder / "train_run", frames[:12], raws[:12], model="stand-in", parameters={"full_frame": True})
    test = write_run(folder / "test_run", frames[12:], raws[12:], model="stand-in", parameters={"full_frame": True})
    return folder, dataset, train, test


def _ap75(run, dataset: Dataset) -> float:
    gts = {s.path: s.gt for s in dataset.samples}
    preds = [merge(raw, method="nms", metric="iou", threshold=0.5) for raw in run.raw]
    return evaluate_coco([gts[f.key] for f in run.frames], preds, class_names=dataset.class_names).named["AP75"]


def test_rescoring_raises_ap75_when_scores_ignore_localisation(synthetic_run) -> None:
    folder, dataset, train, test = synthetic_run
    config = IoUHeadConfig(backbone="tiny_cnn", class_names=("person",), frame_wh=WH, hidden=64, reduce_channels=16)
    summary = train_iou_head_on_run(train.run_dir, dataset, config=config, out_dir=folder / "head", val_fraction=0.25, epochs=12)
    assert summary["calibration"]["spearman"] > 0.15
    head = load_iou_head(summary["checkpoint"])
    assert head.config.alphas is not None and len(head.config.alphas) == 1
    rescored = rescore_run(test.run_dir, summary["checkpoint"], folder / "rescored", alphas=0.0)
    raw = rescored.raw[0]
    assert {"cls_score", "iou_pred", "source"} <= set(raw.attributes)
    np.testing.assert_array_equal(raw.attributes["cls_score"], test.raw[0].score)
    np.testing.assert_allclose(raw.score, raw.attributes["iou_pred"], rtol=1e-6)  # alpha 0: S = predicted IoU
    before, after = _ap75(test, dataset), _ap75(rescored, dataset)
    print("AP75 before/after", before, after)
    assert after > before + 0.05, (before, after)
    # the predicted IoU follows the true one on frames the head never saw
    gts = {s.path: s.gt for s in dataset.samples}
    from sitesight.evaluation.iou_aware import spearman

    pred = np.concatenate([r.attributes["iou_pred"] for r in rescored.raw])
    true = np.concatenate([true_iou(r, gts[f.key]) for f, r in zip(rescored.frames, rescored.raw, strict=True)])
    assert spearman(pred, true) > 0.15


def test_rescore_skips_unreadable_frames(synthetic_run, tmp_path) -> None:
    folder, dataset, _, test = synthetic_run
    head_path = folder / "head" / "iou_head.safetensors"
    if not head_path.is_file():
        pytest.skip("needs the trained head of the test above")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    frames = [(str(broken), WH), (test.frames[0].key, WH)]
    run = write_run(tmp_path / "run", frames, [test.raw[0], test.raw[0]], model="stand-in", parameters={"full_frame": True})
    out = rescore_run(run.run_dir, head_path, tmp_path / "out")
    assert len(out.frames) == 1 and len(out.skipped) == 1 and "broken.png" in out.skipped[0].key
    assert load_run(tmp_path / "out").pending == 0

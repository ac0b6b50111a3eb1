"""The numpy side: rescoring, Spearman, calibration, the alpha sweep and oracle (hand-computed cases, scipy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sitesight import Dataset, Detections, Sample
from sitesight.errors import InputError
from sitesight.evaluation.iou_aware import iou_calibration, rescore, spearman, true_iou
from sitesight.sliced.alpha import alpha_sweep, alpha_sweep_run, tune_alpha_per_class


def test_rescore_formula_and_alpha_one_is_exact() -> None:
    p = np.array([0.81, 0.3, 0.05], np.float32)
    q = np.array([0.25, 0.9, 1.0], np.float32)
    assert np.array_equal(rescore(p, q, 1.0), p)
    np.testing.assert_allclose(rescore(p, q, 0.5), np.sqrt(p * q), rtol=1e-6)
    np.testing.assert_allclose(rescore(p, q, 0.0), q, rtol=1e-6)
    np.testing.assert_allclose(rescore(p, q, np.array([1.0, 0.0, 0.5])), [0.81, 0.9, np.sqrt(0.05)], rtol=1e-6)


def test_spearman_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 6, 40).astype(float)
        b = a + rng.normal(0, 2, 40)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20])) == pytest.approx(0.5)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_true_iou_is_class_aware() -> None:
    gt = Detections(xyxy=[[0, 0, 10, 10], [20, 0, 30, 10]], class_id=[0, 1])
    pred = Detections(xyxy=[[0, 0, 10, 5], [20, 0, 30, 10], [100, 100, 110, 110]], class_id=[0, 0, 1])
    np.testing.assert_allclose(true_iou(pred, gt), [0.5, 0.0, 0.0])


def test_calibration_bins_by_hand() -> None:
    cal = iou_calibration(np.array([0.05, 0.15, 0.95, 0.99]), np.array([0.1, 0.1, 0.8, 0.9]), bins=2)
    assert cal.count.tolist() == [2, 2]
    np.testing.assert_allclose(cal.mean_pred, [0.1, 0.97])
    np.testing.assert_allclose(cal.mean_true, [0.1, 0.85])
    assert cal.ece == pytest.approx((2 * 0.0 + 2 * 0.12) / 4)
    assert json.dumps(cal.to_dict())


def _two_candidates() -> tuple[Detections, Detections]:
    """One GT; box A fits it (IoU 0.9) with a low class score, box B is loose (IoU 0.6) with a high one."""
    gt = Detections(xyxy=[[0, 0, 100, 100]], class_id=[0])
    a = [0, 0, 100, 90]  # IoU 0.9
    b = [0, 0, 100, 60]  # IoU 0.6; A and B overlap at IoU 0.667 > 0.5: NMS keeps one
    raw = Detections(xyxy=[a, b], score=[0.6, 0.9], class_id=[0, 0],
                     attributes={"cls_score": np.array([0.6, 0.9], np.float32), "iou_pred": np.array([0.9, 0.5], np.float32)})
    return raw, gt


def test_alpha_sweep_by_hand() -> None:
    raw, gt = _two_candidates()
    sweep = alpha_sweep([raw], [gt], [0.0, 0.5, 1.0], class_names=["person"])
    rows = {(r.alpha, r.oracle): r for r in sweep.rows}
    # alpha 1: B (0.9) wins NMS: matched at 0.5 but not at 0.75
    assert rows[(1.0, False)].AP50 == pytest.approx(1.0) and rows[(1.0, False)].AP75 == 0.0
    # alpha 0.5: S_A = sqrt(.6*.9) = .735 > S_B = sqrt(.9*.5) = .671, A wins: AP75 = 1
    assert rows[(0.5, False)].AP75 == pytest.approx(1.0)
    assert rows[(0.0, True)].AP75 == pytest.approx(1.0)  # oracle with true IoU 0.9 vs 0.6
    # AP averages IoU 0.5..0.95: A (0.9) is a hit at 9 of 10 thresholds, B (0.6) at 3 (computed by pycocotools' rule)
    assert rows[(0.5, False)].AP == pytest.approx(0.9) and rows[(1.0, False)].AP == pytest.approx(0.3)
    assert sweep.best().alpha == 0.5


def test_alpha_sweep_run_and_cli(tmp_path) -> None:
    from sitesight.cli.main import main
    from sitesight.formats.coco import write_coco
    from sitesight.sliced.store import write_run

    raw, gt = _two_candidates()
    image = tmp_path / "f.jpg"
    from PIL import Image

    Image.new("RGB", (200, 200)).save(image)
    dataset = Dataset(("person",), (Sample(path=str(image), image_wh=(200, 200), gt=gt),))
    run = write_run(tmp_path / "run", [(str(image), (200, 200))], [raw], model="hand", parameters={"full_frame": True})
    sweep = alpha_sweep_run(run.run_dir, dataset, [0.0, 1.0])
    assert [r.AP75 for r in sweep.rows if not r.oracle] == pytest.approx([1.0, 0.0])
    gt_file = write_coco(dataset, tmp_path / "gt.json")
    code = main(["eval", "iou-aware", str(run.run_dir), "--gt", str(gt_file), "--alpha", "0:1:0.5", "--json", str(tmp_path / "r.json")])
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert len(result["rows"]) == 6 and result["best"]["alpha"] == 0.5


def test_missing_attributes_is_an_input_error() -> None:
    raw, gt = _two_candidates()
    with pytest.raises(InputError, match="iou_pred"):
        alpha_sweep([raw.replace(attributes={})], [gt], [0.5])


def test_tune_alpha_per_class_picks_the_winning_alpha() -> None:
    raw, gt = _two_candidates()
    other = raw.replace(class_id=np.array([1, 1]), attributes={"cls_score": np.array([0.9, 0.6], np.float32),
                                                                "iou_pred": np.array([0.9, 0.5], np.float32)})
    gts = [gt, gt.replace(class_id=np.array([1]))]
    alphas = tune_alpha_per_class([raw, other], gts, [0.0, 0.5, 1.0], num_classes=3)
    # class 0 needs the IoU (alpha < 1; 0.5 is the largest that wins); class 1's class score already ranks right;
    # class 2 has no ground truth and keeps 1
    assert alphas.tolist() == [0.5, 1.0, 1.0]

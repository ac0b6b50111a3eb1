"""The ``iouaware:CKPT`` model spec: `build_detector` and ``sitesight detect`` load a trained IoU-aware RetinaNet.

The reference is the model itself, rebuilt by hand from the same weights and called through torchvision's
own calling convention; and `select_classes` against hand-written ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.cli.main import main  # noqa: E402
from sitesight.dataset import Dataset, Sample  # noqa: E402
from sitesight.detections import Detections  # noqa: E402
from sitesight.errors import InputError  # noqa: E402
from sitesight.models.checkpoint import save_checkpoint  # noqa: E402
from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet  # noqa: E402
from sitesight.models.detector.train import select_classes  # noqa: E402
from sitesight.predictors import BUILDERS, build_detector, parse_spec  # noqa: E402
from sitesight.sliced.store import load_run  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random IoU-aware RetinaNet whose outputs are pushed above any threshold (bias of the class logits)."""
    config = DetectorConfig(backbone="tiny_pyramid", class_names=("person", "head"), out_indices=(2, 3), extra_levels=0,
                            fpn_channels=8, head_convs=1, anchor_sizes=(16, 32), min_size=64, max_size=96, alpha=0.5,
                            detections_per_img=20)
    torch.manual_seed(0)
    model = build_iou_aware_retinanet(config).eval()
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.fill_(1.0)  # p ~ 0.73: boxes survive any low threshold
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.safetensors", model, config.to_dict())
    return path, model


def test_iouaware_spec_is_registered_and_checked(tmp_path, checkpoint) -> None:
    path, _ = checkpoint
    assert "iouaware" in BUILDERS
    assert parse_spec(f"iouaware:{path}") == ("iouaware", [str(path)])
    with pytest.raises(InputError, match="no such file"):
        parse_spec(f"iouaware:{tmp_path / 'missing.safetensors'}")
    with pytest.raises(InputError, match="expected iouaware:CHECKPOINT"):
        parse_spec("iouaware:")
    with pytest.raises(InputError, match="iouaware:CHECKPOINT"):  # the unknown-kind message lists it
        parse_spec("nope:x")


def test_built_detector_equals_the_model_called_directly(checkpoint) -> None:
    path, model = checkpoint
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), rng.integers(0, 256, (72, 64, 3), dtype=np.uint8)]
    detect = build_detector(f"iouaware:{path}", conf=0.3)
    got = detect(images)
    model.score_thresh = 0.3
    with torch.no_grad():
        want = model([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in images])
    assert len(got) == 2
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, Detections) and len(g) == len(w["boxes"]) > 0
        np.testing.assert_allclose(g.xyxy, w["boxes"].numpy(), atol=1e-5)
        np.testing.assert_allclose(g.score, w["scores"].numpy(), atol=1e-6)
        np.testing.assert_array_equal(g.class_id, w["labels"].numpy())
        assert (g.score >= 0.3).all()
        # S = p^0.5 * IoU^0.5 from the stored parts
        np.testing.assert_allclose(g.score, np.sqrt(g.attributes["cls_score"] * g.attributes["iou_pred"]), rtol=1e-5)


def test_not_a_detector_checkpoint_is_an_input_error(tmp_path) -> None:
    other = save_checkpoint(tmp_path / "other.safetensors", torch.nn.Linear(2, 2), {"kind": "roi_head"})
    with pytest.raises(InputError, match="not an 'iou_aware_retinanet'"):
        build_detector(f"iouaware:{other}")


def test_sitesight_detect_cli_with_iouaware_model(tmp_path, checkpoint, capsys) -> None:
    from PIL import Image

    path, _ = checkpoint
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / f"f{i}.png")
    out = tmp_path / "run"
    code = main(["detect", str(tmp_path / "f0.png"), str(tmp_path / "f1.png"), "--model", f"iouaware:{path}", "--out", str(out),
                 "--slice", "64", "--overlap", "0.2", "--conf", "0.3"])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert len(run.frames) == 2
    assert run.manifest["model"] == f"iouaware:{path}"
    assert all(len(r) > 0 for r in run.raw)  # every class logit starts at p ~ 0.73, above --conf
    assert {"cls_score", "iou_pred"} <= set(run.raw[0].attributes)  # stored for the alpha sweep
    missing = main(["detect", str(tmp_path / "f0.png"), "--model", f"iouaware:{tmp_path / 'nope.safetensors'}",
                    "--out", str(tmp_path / "run2")])
    assert missing != 0


def test_select_classes_keeps_and_renumbers_by_hand() -> None:
    gt = Detections(xyxy=np.array([[0, 0, 10, 20], [1, 1, 4, 4], [5, 5, 9, 9], [2, 2, 30, 40]], np.float32),
                    score=np.ones(4, np.float32), class_id=np.array([0, 1, 2, 0]))
    dataset = Dataset(class_names=("person", "helmet", "head"), samples=(Sample(path="a.jpg", image_wh=(64, 64), gt=gt),))
    heads_then_persons = select_classes(dataset, ["head", "person"])
    assert heads_then_persons.class_names == ("head", "person")
    kept = heads_then_persons[0].gt
    np.testing.assert_array_equal(kept.class_id, [1, 0, 1])
    np.testing.assert_array_equal(kept.xyxy, gt.xyxy[[0, 2, 3]])
    assert len(dataset[0].gt) == 4  # input untouched
    with pytest.raises(InputError, match="not among"):
        select_classes(dataset, ["dog"])

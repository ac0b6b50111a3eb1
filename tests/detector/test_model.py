"""IoU-aware RetinaNet: alpha = 1 equals plain torchvision RetinaNet, the S formula, the IoU loss by hand."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from torchvision.models.detection import RetinaNet  # noqa: E402
from torchvision.models.detection.retinanet import RetinaNetHead  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from sitesight.errors import InputError  # noqa: E402
from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet, group_norm  # noqa: E402

CFG = DetectorConfig(backbone="tiny_pyramid", class_names=("person", "helmet"), out_indices=(2, 3), extra_levels=1,
                     fpn_channels=16, head_convs=2, anchor_sizes=(16, 32, 64), aspect_ratios=(1.0, 2.0),
                     anchor_scales=(1.0,), min_size=96, max_size=128, score_thresh=0.05)


def _model(alpha: float, head_norm: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_iou_aware_retinanet(DetectorConfig.from_dict({**CFG.to_dict(), "alpha": alpha, "head_norm": head_norm}))
    with torch.no_grad():  # move the class prior and IoU logits off their init so boxes pass the threshold and S differs from p
        model.head.classification_head.cls_logits.bias.fill_(-1.0)
        model.head.classification_head.cls_logits.weight.normal_(0, 0.5)
        model.head.regression_head.iou_pred.weight.normal_(0, 0.5)
    return model.eval()


def _plain_like(model: torch.nn.Module) -> RetinaNet:
    """Plain torchvision RetinaNet with the same backbone, anchors and head weights (no IoU branch)."""
    norm = group_norm if model.config.head_norm else None
    head = RetinaNetHead(model.backbone.out_channels, model.anchor_generator.num_anchors_per_location()[0], len(CFG.class_names),
                         norm_layer=norm)
    for tower in (head.classification_head, head.regression_head):
        tower.conv = tower.conv[: CFG.head_convs]
    plain = RetinaNet(copy.deepcopy(model.backbone), len(CFG.class_names), min_size=CFG.min_size, max_size=CFG.max_size,
                      anchor_generator=model.anchor_generator, head=head, score_thresh=CFG.score_thresh,
                      nms_thresh=CFG.nms_thresh, detections_per_img=CFG.detections_per_img, topk_candidates=CFG.topk_candidates)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected == ["head.regression_head.iou_pred.weight", "head.regression_head.iou_pred.bias"]
    return plain.eval()


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, 96, 128, generator=g), torch.rand(3, 80, 120, generator=g)]


@pytest.mark.parametrize("head_norm", [False, True])
def test_alpha_one_equals_plain_torchvision_retinanet(head_norm: bool) -> None:
    model = _model(1.0, head_norm)
    plain = _plain_like(model)
    with torch.no_grad():
        ours, theirs = model(_images()), plain(_images())
    assert sum(len(o["boxes"]) for o in ours) > 20
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a["boxes"], b["boxes"])
        assert torch.equal(a["scores"], b["scores"])
        assert torch.equal(a["labels"], b["labels"])
        assert torch.equal(a["scores"], a["cls_scores"])


def test_alpha_below_one_scores_with_predicted_iou() -> None:
    model = _model(0.3)
    with torch.no_grad():
        out = model(_images())
    o = out[0]
    assert len(o["scores"]) > 10
    torch.testing.assert_close(o["scores"], o["cls_scores"].pow(0.3) * o["iou_preds"].pow(0.7))
    assert torch.all(o["scores"][:-1] >= o["scores"][1:])  # ranked by S
    plain = _plain_like(model)
    with torch.no_grad():
        assert not torch.equal(plain(_images())[0]["scores"], o["scores"])


def test_iou_loss_by_hand_and_target_detached() -> None:
    torch.manual_seed(0)
    model = build_iou_aware_retinanet(CFG).train()
    images = _images()
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 60.0], [60.0, 20.0, 90.0, 50.0]]), "labels": torch.tensor([0, 1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    batch, tgts = model.transform(images, targets)
    features = list(model.backbone(batch.tensors).values())
    out = model.head(features)
    anchors = model.anchor_generator(batch, features)
    matched = [model.proposal_matcher(box_iou(tgts[0]["boxes"], anchors[0])), torch.full((len(anchors[1]),), -1)]
    loss = model.head.iou_loss(tgts, out, anchors, matched)
    # by hand: image 0's positives, BCE against the IoU of the decoded box with its GT (torchvision's box_iou), image 1 adds 0
    fg = torch.where(matched[0] >= 0)[0]
    decoded = model.box_coder.decode_single(out["bbox_regression"][0, fg].detach(), anchors[0][fg])
    target = box_iou(decoded, tgts[0]["boxes"][matched[0][fg]]).diagonal()
    p = torch.sigmoid(out["iou_pred"][0, fg])
    expected = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).sum() / len(fg) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # the IoU target is detached: the box-delta conv gets no gradient from L_IoU, the IoU conv and the shared tower do
    assert model.head.regression_head.bbox_reg.weight.grad is None or not model.head.regression_head.bbox_reg.weight.grad.any()
    assert model.head.regression_head.iou_pred.weight.grad.abs().sum() > 0
    assert model.head.regression_head.conv[0][0].weight.grad.abs().sum() > 0


def test_training_losses_include_iou() -> None:
    torch.manual_seed(0)
    model = build_iou_aware_retinanet(CFG).train()
    losses = model(_images(), [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 60.0]]), "labels": torch.tensor([0])}] * 2)
    assert set(losses) == {"classification", "bbox_regression", "iou"}
    sum(losses.values()).backward()


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InputError, match="anchor_sizes"):
        DetectorConfig(backbone="tiny_pyramid", out_indices=(2, 3), extra_levels=0, anchor_sizes=(16,))
    with pytest.raises(InputError, match="out_indices"):
        build_iou_aware_retinanet(DetectorConfig(backbone="tiny_pyramid", out_indices=(3, 2), extra_levels=0, anchor_sizes=(16, 32)))
    with pytest.raises(InputError, match="backbone"):
        build_iou_aware_retinanet(DetectorConfig(backbone="no_such_net_xyz", out_indices=(2,), extra_levels=0, anchor_sizes=(16,)))


def test_timm_backbone_builds_and_runs() -> None:
    pytest.importorskip("timm")
    cfg = DetectorConfig(backbone="resnet18", class_names=("person",), out_indices=(2, 3, 4), extra_levels=2, fpn_channels=16,
                         head_convs=1, anchor_sizes=(16, 32, 64, 128, 256), min_size=64, max_size=64)
    model = build_iou_aware_retinanet(cfg).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels", "cls_scores", "iou_preds"}

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sitesight.errors import InputError  # noqa: E402
from sitesight.models.backbone import build_backbone, load_weights_file  # noqa: E402


@pytest.mark.parametrize(
    ("name", "channels", "stride"),
    [("tiny_cnn", 32, 8), ("test_resnet", 96, 32), ("test_vit", 64, 16), ("test_convnext", None, 32)],
)
def test_backbone_contract(name, channels, stride):
    bb = build_backbone(name).eval()
    with torch.no_grad():
        fmap, s = bb(torch.randn(2, 3, 70, 100))
    assert s == stride == bb.stride
    assert fmap.shape[0] == 2 and fmap.shape[1] == bb.out_channels
    if channels is not None:
        assert bb.out_channels == channels
    # the map covers the (padded) image: ceil for ViT padding, conv arithmetic for CNNs
    assert abs(fmap.shape[2] - 70 / stride) < 1.01 and abs(fmap.shape[3] - 100 / stride) < 1.01


def test_vit_tokens_drop_prefix_and_follow_image_size():
    bb = build_backbone("test_vit").eval()
    assert bb.num_prefix_tokens == 1
    with torch.no_grad():
        fmap, _ = bb(torch.randn(1, 3, 48, 80))
        tokens = bb.model.forward_features(torch.randn(1, 3, 48, 80))
    assert tuple(fmap.shape) == (1, 64, 3, 5)
    assert tokens.shape[1] == 1 + 15


def test_dinov3_small_builds_offline_with_registers():
    bb = build_backbone("vit_small_patch16_dinov3")
    assert bb.num_prefix_tokens == 5 and bb.out_channels == 384 and bb.stride == 16


def test_pretrained_is_refused_and_unknown_name_is_clear():
    with pytest.raises(InputError, match="never downloads"):
        build_backbone("resnet18", pretrained=True)
    with pytest.raises(InputError, match="unknown backbone"):
        build_backbone("resnet_does_not_exist")


def test_weights_round_trip_safetensors_and_torch(tmp_path):
    from safetensors.torch import save_file

    src = build_backbone("test_resnet").eval()
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(st))
    pt = tmp_path / "w.pth"
    # a wrapped checkpoint with a classifier head and DataParallel prefix, as people save them
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.model.state_dict().items()} | {"module.fc.weight": torch.zeros(3, 96)}}, pt)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = src(x)[0]
        for path in (st, pt):
            other = build_backbone("test_resnet", weights=path).eval()
            assert torch.equal(other(x)[0], ref)
    assert set(load_weights_file(st)) == set(src.model.state_dict())


def test_weights_that_do_not_fit_list_mismatches(tmp_path):
    from safetensors.torch import save_file

    vit = build_backbone("test_vit")
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.model.state_dict().items()}, str(path))
    with pytest.raises(InputError, match=r"vit.safetensors: weights do not fit backbone 'test_resnet'.*missing.*unexpected"):
        build_backbone("test_resnet", weights=path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pth: cannot read weights"):
        load_weights_file(bad)
    with pytest.raises(InputError, match="not found"):
        load_weights_file(tmp_path / "absent.safetensors")

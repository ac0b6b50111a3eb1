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


def test_unknown_name_and_untagged_pretrained_are_clear():
    with pytest.raises(InputError, match="unknown backbone"):
        build_backbone("resnet_does_not_exist")
    with pytest.raises(InputError, match="unknown backbone"):
        build_backbone("resnet_does_not_exist.a1_in1k", pretrained=True)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, with huggingface_hub in offline mode: no test ever reaches the network."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_pretrained_offline_and_not_cached_fails_with_one_line(hub_cache):
    with pytest.raises(InputError) as info:
        build_backbone("resnet18.a1_in1k", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    # what to download, with which command, and where to put it
    assert "hf download timm/resnet18.a1_in1k" in message
    assert "models--timm--resnet18.a1_in1k" in message and str(hub_cache) in message
    assert "--weights FILE" in message


def test_pretrained_loads_from_a_prepopulated_hub_cache(hub_cache):
    """The hub cache layout (refs/main -> snapshots/<commit>/model.safetensors), written by hand with a
    resnet18 state dict whose stem is a known ramp: the built backbone holds exactly those tensors."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    reference = timm.create_model("resnet18", pretrained=False).state_dict()  # with the fc head, as the hub file has it
    reference["conv1.weight"] = torch.arange(reference["conv1.weight"].numel(), dtype=torch.float32).reshape(reference["conv1.weight"].shape) / 1e4
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.items()}, str(snapshot / "model.safetensors"))

    bb = build_backbone("resnet18.a1_in1k", pretrained=True)
    own = bb.model.state_dict()
    torch.testing.assert_close(own["conv1.weight"], reference["conv1.weight"])
    torch.testing.assert_close(own["layer4.1.bn2.running_var"], reference["layer4.1.bn2.running_var"])
    assert "fc.weight" not in own  # the head is dropped (num_classes=0)
    # a random build differs: the weights really came from the cache
    assert not torch.equal(build_backbone("resnet18").model.state_dict()["conv1.weight"], reference["conv1.weight"])


def test_weights_file_wins_over_pretrained_and_init_is_described(tmp_path):
    from safetensors.torch import save_file

    from sitesight.models.backbone import describe_init

    source = build_backbone("tiny_cnn")
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    bb = build_backbone("tiny_cnn", weights=tmp_path / "w.safetensors", pretrained=True)
    torch.testing.assert_close(bb.model.state_dict()["stem.0.weight"], source.model.state_dict()["stem.0.weight"])
    assert describe_init("resnet18", weights=tmp_path / "w.safetensors", pretrained=True) == f"file:{tmp_path / 'w.safetensors'}"
    assert describe_init("resnet18.a1_in1k", pretrained=True) == "pretrained:resnet18.a1_in1k"
    assert describe_init("tiny_cnn", pretrained=True) == describe_init("resnet18") == "random"


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

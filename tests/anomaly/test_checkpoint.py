"""Checkpoints rebuild both detectors from the file alone; local backbone weights are really used."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.errors import InputError  # noqa: E402
from sitesight.models.anomaly.checkpoint import load_detector, read_detector_config, save_detector  # noqa: E402


@pytest.mark.parametrize("which", ["memory_detector", "ae_detector"])
def test_round_trip_gives_identical_scores_and_maps(which, request, parts_test, tmp_path):
    det = request.getfixturevalue(which)
    path = save_detector(det, tmp_path / "m.safetensors", threshold={"value": 0.5, "source": "normals", "false_alarm_rate": 0.01})
    config = read_detector_config(path)
    assert config["method"] == det.method and config["threshold"]["value"] == 0.5
    assert json.loads(path.with_suffix(".json").read_text())["method"] == det.method
    back = load_detector(path, device="cpu")
    images = list(parts_test.images[38:44])
    a, b = det.predict(images), back.predict(images)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.stacked_maps(), a.stacked_maps(), rtol=1e-5, atol=1e-6)
    assert back.config == det.config


def test_bad_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_detector(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match="junk.safetensors"):
        load_detector(junk)
    from sitesight.models.checkpoint import save_checkpoint

    other = save_checkpoint(tmp_path / "other.safetensors", torch.nn.Linear(2, 2), {"kind": "classifier"})
    with pytest.raises(InputError, match="not an anomaly checkpoint"):
        load_detector(other)


def test_memory_backbone_weights_come_from_the_local_file(tmp_path):
    """A resnet18 state dict written to disk (timm key layout, classifier head included) is what the
    detector's feature extractor holds; a file that does not fit names itself."""
    import timm
    from safetensors.torch import save_file

    from sitesight.models.anomaly.memory import MemoryConfig, fit_memory

    torch.manual_seed(123)
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    normals = [np.full((32, 32, 3), v, np.uint8) for v in (90, 110)]
    det = fit_memory(normals, config=MemoryConfig(image_size=32, layers=(1,)), weights=path, seed=0, device="cpu")
    own = det.model.state_dict()
    assert own and all(torch.equal(own[k], reference.state_dict()[k]) for k in own)
    # Seeds change a random init, never loaded weights.
    det2 = fit_memory(normals, config=MemoryConfig(image_size=32, layers=(1,)), weights=path, seed=5, device="cpu")
    assert torch.equal(det2.model.conv1.weight, reference.conv1.weight)
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(1, 1, 1, 1)}, str(bad))
    with pytest.raises(InputError, match="bad.safetensors"):
        fit_memory(normals, config=MemoryConfig(image_size=32, layers=(1,)), weights=bad, device="cpu")

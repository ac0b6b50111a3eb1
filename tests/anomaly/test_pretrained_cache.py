"""The feature memory takes ImageNet features when timm's weights lie in the local Hugging Face cache (no
network), and says loudly when it runs on random features. The "cache" is built here: a random resnet18
saved where huggingface_hub looks, so the test checks that exactly those weights were loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from PIL import Image  # noqa: E402


def _cli(args, cache, tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "sitesight", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


def test_train_anomaly_uses_cached_imagenet_weights_else_warns(tmp_path):
    from safetensors.torch import load_file, save_file

    normals = tmp_path / "normals"
    normals.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)).save(normals / f"n{i}.png")
    empty, cache = tmp_path / "empty_cache", tmp_path / "hf"
    empty.mkdir()
    repo = timm.models.get_pretrained_cfg("resnet18").hf_hub_id
    snapshot = cache / ("models--" + repo.replace("/", "--")) / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    torch.manual_seed(3)
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), snapshot / "model.safetensors")

    args = ["train", "anomaly", str(normals), "--method", "memory", "--image-size", "64", "--holdout", "0", "--device", "cpu"]
    done = _cli([*args, "--out", str(tmp_path / "random")], empty, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RANDOM features" in done.stdout + done.stderr
    random_config = json.loads((tmp_path / "random" / "model.json").read_text())
    assert random_config["backbone_init"] == "random" and random_config["layers"] == [1, 2]

    done = _cli([*args, "--out", str(tmp_path / "pretrained")], cache, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RANDOM" not in done.stdout + done.stderr
    config = json.loads((tmp_path / "pretrained" / "model.json").read_text())
    assert config["backbone_init"] == "pretrained:resnet18" and config["layers"] == [2, 3]  # PatchCore's mid levels
    stored = load_file(tmp_path / "pretrained" / "model.safetensors")
    want = load_file(snapshot / "model.safetensors")["conv1.weight"]
    assert torch.equal(stored["model.conv1.weight"], want)

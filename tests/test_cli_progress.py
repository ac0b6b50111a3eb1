"""Real hardware and pipelines (#15): every model command takes --device; piped output is plain, timely lines.

Piped runs are real subprocesses with stdout and stderr both pipes (what ``| cat``, ``nohup`` or a
scheduler's log give): progress lines must appear while the work runs (a line saying k of N frames
with k < N can only have been printed before the end) and no terminal escape code may reach them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import typer
from PIL import Image

from sitesight.cli.main import _register, app

ESC = "\x1b"


def _commands() -> dict[tuple[str, ...], object]:
    """Every CLI command by its path (``("train", "roi")``), from the assembled app."""
    _register()
    root = typer.main.get_command(app)
    out: dict[tuple[str, ...], object] = {}

    def walk(group: object, prefix: tuple[str, ...]) -> None:  # typer vendors click: groups are told by their commands
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, (*prefix, name))
            else:
                out[(*prefix, name)] = cmd

    walk(root, ())
    return out


def _options(cmd: object) -> set[str]:
    return {opt for p in cmd.params for opt in getattr(p, "opts", [])}


def test_every_model_command_has_device():
    commands = _commands()
    # commands that run a model: all of `train` and `predict`, plus detect and rescore
    model_commands = sorted(p for p in commands if p[0] in ("train", "predict") or p in (("detect",), ("rescore",)))
    assert {("detect",), ("rescore",), ("train", "roi"), ("train", "cls"), ("train", "det"), ("predict", "roi")} <= set(model_commands)
    missing = [" ".join(p) for p in model_commands if "--device" not in _options(commands[p])]
    assert not missing, f"commands without --device: {missing}"


def test_detect_help_lists_device_imgsz_half():
    out = subprocess.run([sys.executable, "-m", "sitesight", "detect", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0
    for option in ("--device", "--imgsz", "--full-imgsz", "--half"):
        assert option in out.stdout, option


def test_bad_device_is_one_line(tmp_path):
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "r.json").write_text("[]")
    out = subprocess.run([sys.executable, "-m", "sitesight", "detect", str(tmp_path / "a.png"), "--model", "onnx:nope.onnx",
                          "--out", str(tmp_path / "run"), "--device", "tpu"], capture_output=True, text=True)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def iouaware_checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from sitesight.models.checkpoint import save_checkpoint
    from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet

    config = DetectorConfig(backbone="tiny_pyramid", class_names=("person",), out_indices=(2, 3), extra_levels=0, fpn_channels=8,
                            head_convs=1, anchor_sizes=(16, 32), min_size=64, max_size=96, detections_per_img=10)
    torch.manual_seed(0)
    model = build_iou_aware_retinanet(config).eval()
    return save_checkpoint(tmp_path_factory.mktemp("det") / "best.safetensors", model, config.to_dict())


def _plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TERM", "COLUMNS")}
    return {**env, "SITESIGHT_PROGRESS_INTERVAL": "0"}  # a line at every step: the test need not wait seconds


def test_piped_detect_prints_progress_lines_while_running_and_no_escape_codes(tmp_path, iouaware_checkpoint):
    rng = np.random.default_rng(0)
    n = 10
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(tmp_path / f"f{i:02d}.png")
    out = subprocess.run([sys.executable, "-m", "sitesight", "detect", str(tmp_path), "--model", f"iouaware:{iouaware_checkpoint}",
                          "--out", str(tmp_path / "run"), "--slice", "64", "--batch", "4", "--device", "cpu"],
                         capture_output=True, text=True, env=_plain_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert ESC not in out.stdout and ESC not in out.stderr
    counts = [int(m.group(1)) for m in re.finditer(rf"^detect: (\d+)/{n} frames", out.stderr, re.M)]
    assert counts[0] == 0 and counts[-1] == n
    assert any(0 < k < n for k in counts), out.stderr  # printed during the run, not only at its end
    assert re.search(r"frames/s, elapsed [\d.]+ s, ETA", out.stderr)
    assert f"{n} frames processed, 0 skipped" in out.stderr
    from sitesight.sliced.store import load_run

    assert load_run(tmp_path / "run").class_names == ("person",)  # the checkpoint's names, recorded by the run


def test_piped_train_prints_one_line_per_epoch(tmp_path):
    pytest.importorskip("torch")
    from sitesight.formats.cvat_write import write_cvat
    from sitesight.synth import write_site_dataset

    ds = write_site_dataset(tmp_path / "frames", n_frames=2, seed=4, image_wh=(320, 180), n_cameras=1)
    xml = write_cvat(ds, tmp_path / "frames" / "annotations.xml")
    out = subprocess.run([sys.executable, "-m", "sitesight", "train", "roi", str(xml), "--val", str(xml), "--backbone", "tiny_cnn",
                          "--random-init", "--frame-size", "160x96", "--epochs", "2", "--batch-size", "2", "--workers", "0",
                          "--no-augment", "--device", "cpu", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env=_plain_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert ESC not in out.stdout and ESC not in out.stderr
    epochs = re.findall(r"^epoch (\d)/2: train_loss [\d.e+-]+, .*val_macro_ap", out.stderr, re.M)
    assert epochs == ["1", "2"], out.stderr
    # random weights are never silent: a warning, and the fact in the checkpoint and the metrics
    assert "random weights" in out.stderr
    import json

    assert json.loads((tmp_path / "run" / "best.json").read_text())["backbone_init"] == "random"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backbone_init"] == "random"
    assert json.loads(out.stdout)["backbone_init"] == "random"

"""Detector builders: torchvision, ONNX (YOLO-style), Ultralytics adapter, replay, spec parsing."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitesight import Detections
from sitesight.errors import InputError, MissingExtraError
from sitesight.predictors import build_detector, parse_spec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_spec_parser_lists_choices_and_checks_files(tmp_path):
    with pytest.raises(InputError, match="yolo:WEIGHTS.pt.*torchvision:ARCH:WEIGHTS.*onnx.*replay"):
        parse_spec("tensorflow:model.pb")
    with pytest.raises(InputError, match="no such file"):
        parse_spec("onnx:" + str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="expected torchvision:ARCH:WEIGHTS"):
        parse_spec("torchvision:only_arch")
    (tmp_path / "w.pt").write_bytes(b"")
    assert parse_spec(f"torchvision:fcos_resnet50_fpn:{tmp_path / 'w.pt'}") == ("torchvision", ["fcos_resnet50_fpn", str(tmp_path / "w.pt")])


def test_torchvision_detector_matches_the_model_and_infers_classes(tmp_path):
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=4,
                                                             min_size=160, max_size=160).eval()
    path = tmp_path / "frcnn.pt"
    torch.save({"model": model.state_dict()}, path)
    assert parse_spec(f"torchvision:fasterrcnn_mobilenet_v3_large_320_fpn:{path}")[0] == "torchvision"
    from sitesight.predictors.torchvision import build_torchvision_detector

    # num_classes is read from the file (4, not torchvision's default 91)
    detect = build_torchvision_detector("fasterrcnn_mobilenet_v3_large_320_fpn", path, score_threshold=0.0,
                                        image_size=(160, 160))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), rng.integers(0, 255, (160, 100, 3), dtype=np.uint8)]
    ours = detect(images)
    with torch.inference_mode():
        ref = model([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in images])
    assert any(len(d) for d in ours)
    for det, r in zip(ours, ref, strict=True):
        np.testing.assert_allclose(det.xyxy, r["boxes"].numpy(), atol=1e-3)
        np.testing.assert_allclose(det.score, r["scores"].numpy(), atol=1e-5)
        np.testing.assert_array_equal(det.class_id, r["labels"].numpy())
    with pytest.raises(InputError, match="unknown torchvision detection architecture"):
        build_torchvision_detector("no_such_net", path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot load weights"):
        build_torchvision_detector("fasterrcnn_mobilenet_v3_large_320_fpn", tmp_path / "bad.pt")


class _FixedYolo(torch.nn.Module):
    """Outputs fixed v8-style anchors (B, 4 + 2, A) plus a random conv's (zero-weighted) response."""

    def __init__(self, rows: np.ndarray) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3)
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = self.conv(x).mean(dim=(1, 2, 3)).reshape(-1, 1, 1) * 0
        return self.rows.unsqueeze(0).expand(x.shape[0], -1, -1) + zero


def _export(module: torch.nn.Module, path: Path, size: int = 64) -> Path:
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, size, size),), str(path), input_names=["images"],
                      output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                      dynamo=False, opset_version=17)
    return path


def test_onnx_detector_letterbox_decode_nms_by_hand(tmp_path):
    pytest.importorskip("onnxruntime")
    # anchors in 64x64 letterbox pixels: cx, cy, w, h, score class 0, score class 1
    rows = np.array([
        [32, 32, 16, 8, 0.9, 0.1],   # kept, class 0
        [33, 32, 16, 8, 0.8, 0.0],   # same object, IoU > 0.45 with the first: removed by NMS
        [10, 20, 4, 4, 0.2, 0.7],    # kept, class 1
        [50, 40, 4, 4, 0.1, 0.2],    # below conf 0.25
    ], np.float32)
    rows = np.concatenate([rows, np.zeros((8, 6), np.float32)]).T  # real exports have thousands of anchors
    path = _export(_FixedYolo(rows), tmp_path / "fixed.onnx")
    detect = build_detector(f"onnx:{path}", conf=0.25)
    image = np.zeros((16, 32, 3), np.uint8)  # scale 2, letterbox pad 16 px top and bottom
    det = detect([image, image])
    assert len(det) == 2 and det[0].equals(det[1])
    # image pixel = (letterbox pixel - pad) / scale
    np.testing.assert_allclose(det[0].xyxy, [[(24 - 0) / 2, (28 - 16) / 2, 40 / 2, (36 - 16) / 2],
                                             [8 / 2, (18 - 16) / 2, 12 / 2, (22 - 16) / 2]], atol=1e-5)
    assert det[0].class_id.tolist() == [0, 1] and det[0].score.tolist() == pytest.approx([0.9, 0.7])


def test_onnx_random_conv_model_runs_in_batches(tmp_path):
    pytest.importorskip("onnxruntime")

    class TinyYolo(torch.nn.Module):  # random weights, v8 layout (B, 4 + 3, 16)
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 7, 3, stride=16, padding=1)

        def forward(self, x):
            y = self.conv(x).flatten(2)
            return torch.cat([y[:, :2].sigmoid() * 64, y[:, 2:4].sigmoid() * 16, y[:, 4:].sigmoid()], dim=1)

    torch.manual_seed(1)
    path = _export(TinyYolo(), tmp_path / "tiny.onnx")
    detect = build_detector(f"onnx:{path}", conf=0.3)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (50, 70, 3), dtype=np.uint8) for _ in range(3)]
    out = detect(images)
    assert len(out) == 3 and all(isinstance(d, Detections) for d in out)
    assert all(((d.xyxy >= 0) & (d.xyxy[:, [2, 3]] <= [70, 50]).all(axis=1)[:, None]).all() for d in out)
    assert out[1].equals(detect([images[1]])[0], atol=1e-5)


def test_ultralytics_adapter_with_a_fake_module(tmp_path, monkeypatch):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    seen = {}

    class Boxes:
        xyxy = np.array([[1, 2, 3, 4]], np.float32)
        conf = np.array([0.5], np.float32)
        cls = np.array([2.0], np.float32)

    class YOLO:
        def __init__(self, path):
            seen["path"] = path

        def predict(self, images, **kw):
            seen["pixel"] = images[0][0, 0].tolist()
            seen["kw"] = kw
            return [types.SimpleNamespace(boxes=Boxes()) for _ in images]

    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=YOLO))
    detect = build_detector(f"yolo:{weights}", conf=0.1)
    image = np.zeros((8, 8, 3), np.uint8)
    image[0, 0] = (255, 0, 7)
    (det,) = detect([image])
    assert seen["pixel"] == [7, 0, 255] and seen["kw"]["conf"] == 0.1  # RGB in, BGR to ultralytics
    assert det.class_id.tolist() == [2] and det.xyxy.tolist() == [[1, 2, 3, 4]]
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sitesight\[yolo\]'"):
        build_detector(f"yolo:{weights}")


def test_replay_stores_recorded_predictions(tmp_path):
    from sitesight.sliced.frames import list_frames
    from sitesight.sliced.predict import detect_to_run
    from sitesight.sliced.store import load_run

    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / name)
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": 60, "height": 40},
                       {"id": 9, "file_name": "b.png", "width": 60, "height": 40}],
            "categories": [{"id": 1, "name": "person"}], "annotations": []}
    results = [{"image_id": 9, "category_id": 1, "bbox": [10, 5, 20, 10], "score": 0.8},
               {"image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.01}]
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    (tmp_path / "res.json").write_text(json.dumps(results))
    replay = build_detector(f"replay:{tmp_path / 'res.json'}:{tmp_path / 'gt.json'}", conf=0.05)
    with pytest.raises(InputError, match="looked up by frame path"):
        replay([np.zeros((4, 4, 3), np.uint8)])
    summary = detect_to_run(list_frames([tmp_path / "a.png", tmp_path / "b.png"]), replay, tmp_path / "run", model="replay")
    assert summary.processed == 2
    run = load_run(tmp_path / "run")
    assert len(run.raw[0]) == 0 and run.raw[1].xyxy.tolist() == [[10, 5, 30, 15]]
    assert run.raw[1].attributes["source"].tolist() == [-1] and run.frames[1].image_wh == (60, 40)

"""Detector builders on the user's hardware (#15): ONNX Runtime providers, Ultralytics device / size / half
and release names, all without a GPU or a network (fake modules record what they are given)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from sitesight.errors import InputError
from sitesight.predictors import build_detector, parse_spec
from sitesight.predictors.onnx import execution_providers


def test_onnx_providers_follow_the_device():
    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert execution_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert execution_providers("auto", gpu) == [("TensorrtExecutionProvider", {"device_id": 0}),
                                                ("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert execution_providers("cuda:1", gpu[1:]) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with pytest.raises(InputError, match="no CUDA provider.*onnxruntime-gpu"):
        execution_providers("cuda", cpu_only)
    with pytest.raises(InputError, match="unknown device"):
        execution_providers("tpu", gpu)


class _Boxes:
    xyxy = np.array([[1, 2, 3, 4]], np.float32)
    conf = np.array([0.5], np.float32)
    cls = np.array([0.0], np.float32)


def _fake_ultralytics(monkeypatch, seen: dict, fail: Exception | None = None) -> None:
    class YOLO:
        def __init__(self, path):
            if fail is not None:
                raise fail
            seen["path"] = path

        def predict(self, images, **kw):
            seen.setdefault("calls", []).append({"shapes": [im.shape for im in images], **kw})
            return [types.SimpleNamespace(boxes=_Boxes()) for _ in images]

    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=YOLO))


def test_ultralytics_gets_device_half_and_the_batch_size(tmp_path, monkeypatch):
    seen: dict = {}
    _fake_ultralytics(monkeypatch, seen)
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    from sitesight.predictors.ultralytics import build_ultralytics_detector

    detect = build_ultralytics_detector(weights, device="cuda:1", half=True, image_size=None)
    detect([np.zeros((640, 640, 3), np.uint8)] * 2)
    detect([np.zeros((352, 640, 3), np.uint8)])
    detect([np.zeros((100, 130, 3), np.uint8)])
    assert [c["device"] for c in seen["calls"]] == ["1"] * 3 and all(c["half"] for c in seen["calls"])
    assert [c["imgsz"] for c in seen["calls"]] == [640, 640, 160]  # the batch's long side, rounded up to 32
    build_ultralytics_detector(weights, device="cpu", image_size=1280)([np.zeros((8, 8, 3), np.uint8)])
    assert seen["calls"][-1]["device"] == "cpu" and seen["calls"][-1]["imgsz"] == 1280


def test_ultralytics_release_names_go_to_its_download(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no yolo11m.pt here
    assert parse_spec("yolo:yolo11m.pt") == ("yolo", ["yolo11m.pt"])
    with pytest.raises(InputError, match="no such file"):
        parse_spec("yolo:weights/yolo11m.pt")  # a path, not a release name
    seen: dict = {}
    _fake_ultralytics(monkeypatch, seen)
    build_detector("yolo:yolo11m.pt", device="cpu")
    assert seen["path"] == "yolo11m.pt"
    _fake_ultralytics(monkeypatch, seen, fail=ConnectionError("offline"))
    with pytest.raises(InputError) as info:
        build_detector("yolo:yolo11m.pt", device="cpu")
    message = str(info.value)
    assert "\n" not in message and "releases/latest/download/yolo11m.pt" in message and "yolo:PATH" in message


def test_half_is_refused_for_onnx(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(InputError, match="--half"):
        build_detector(f"onnx:{model}", half=True)


def test_detectors_that_know_their_class_names_say_them(tmp_path, monkeypatch):
    """Ultralytics' ``model.names`` and an Ultralytics ONNX export's ``names`` metadata become the
    callable's ``class_names`` (what `detect_to_run` records in the run)."""
    seen: dict = {}
    _fake_ultralytics(monkeypatch, seen)
    sys.modules["ultralytics"].YOLO.names = {1: "helmet", 0: "person"}
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    assert build_detector(f"yolo:{weights}", device="cpu").class_names == ("person", "helmet")

    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")

    class Constant(torch.nn.Module):  # v8 layout (B, 4 + 2, 8)
        def forward(self, x):
            return x.mean(dim=(1, 2, 3)).reshape(-1, 1, 1) * 0 + torch.zeros(1, 6, 8)

    path = tmp_path / "m.onnx"
    torch.onnx.export(Constant().eval(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["images"], output_names=["out"],
                      dynamo=False, opset_version=17)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'person', 1: 'head'}"
    onnx.save(model, str(path))
    detect = build_detector(f"onnx:{path}", device="cpu")
    assert detect.class_names == ("person", "head")
    assert len(detect([np.zeros((32, 32, 3), np.uint8)])[0]) == 0

"""One kind -> builder table, one checkpoint loader, no import cycle; `train roi` defaults from the data."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.dataset import AttributeSpec, Dataset, Sample  # noqa: E402
from sitesight.detections import Detections  # noqa: E402
from sitesight.errors import InputError  # noqa: E402
from sitesight.models.checkpoint import MODEL_BUILDERS, load_checkpoint, save_checkpoint  # noqa: E402


def _configs() -> dict[str, tuple[object, dict]]:
    from sitesight.models.classifier import ClassifierConfig, build_classifier
    from sitesight.models.detector.iou_aware import DetectorConfig, build_iou_aware_retinanet
    from sitesight.models.detector.iou_head import IoUHeadConfig, build_iou_head
    from sitesight.models.roi_head import RoIHeadConfig, build_roi_head

    roi = RoIHeadConfig(backbone="tiny_cnn", class_names=("unknown", "ok"), frame_wh=(64, 48), hidden=8, reduce_channels=4)
    cls = ClassifierConfig(backbone="tiny_cnn", class_names=("a", "b"), image_size=32)
    det = DetectorConfig(backbone="tiny_pyramid", class_names=("person",), out_indices=(2, 3), extra_levels=0, fpn_channels=8,
                         head_convs=1, anchor_sizes=(16, 32), min_size=64, max_size=64)
    iou = IoUHeadConfig(backbone="tiny_cnn", class_names=("person",), frame_wh=(64, 48))
    torch.manual_seed(0)
    return {"roi_head": (build_roi_head(roi), roi.to_dict()), "classifier": (build_classifier(cls), cls.to_dict()),
            "iou_aware_retinanet": (build_iou_aware_retinanet(det), det.to_dict()), "iou_head": (build_iou_head(iou), iou.to_dict())}


def test_every_kind_rebuilds_through_the_one_loader(tmp_path):
    built = _configs()
    assert set(built) | {"anomaly"} == set(MODEL_BUILDERS)  # anomaly: tests/anomaly/test_checkpoint.py
    for kind, (model, config) in built.items():
        assert config["kind"] == kind
        path = save_checkpoint(tmp_path / f"{kind}.safetensors", model, {**config, "backbone_init": "random"})
        loaded, stored = load_checkpoint(path, kind=kind)
        assert type(loaded) is type(model) and not loaded.training and stored["backbone_init"] == "random"
        want = model.state_dict()
        for key, value in loaded.state_dict().items():
            torch.testing.assert_close(value, want[key], msg=key)
    with pytest.raises(InputError, match=r"not a 'classifier' checkpoint: it holds a 'roi_head'"):
        load_checkpoint(tmp_path / "roi_head.safetensors", kind="classifier")


def test_unknown_kind_lists_the_known_ones(tmp_path):
    path = save_checkpoint(tmp_path / "x.safetensors", torch.nn.Linear(2, 2), {"kind": "mystery"})
    with pytest.raises(InputError, match="unknown model kind 'mystery'; expected one of .*'roi_head'"):
        load_checkpoint(path)


def test_builders_resolve_and_checkpoint_imports_no_model_module():
    for kind, target in MODEL_BUILDERS.items():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), kind
    source = Path(importlib.import_module("sitesight.models.checkpoint").__file__).read_text()
    imported = [n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("sitesight.models")], imported  # the table names builders as strings


def _dataset(attrs_by_class: dict[str, list[str]], schema: dict[str, AttributeSpec], sizes=((1920, 1080),)) -> Dataset:
    names = tuple(attrs_by_class)
    samples = []
    for k, wh in enumerate(sizes):
        xyxy, cls, columns = [], [], {a: [] for v in attrs_by_class.values() for a in v}
        for c, name in enumerate(names):
            xyxy.append([10, 10, 50, 90])
            cls.append(c)
            for a in columns:
                columns[a].append("x" if a in attrs_by_class[name] else None)
        gt = Detections(xyxy=np.array(xyxy, np.float32), class_id=np.array(cls),
                        attributes={a: np.array(v, object) for a, v in columns.items()})
        samples.append(Sample(path=f"f{k}.jpg", image_wh=wh, gt=gt))
    return Dataset(class_names=names, samples=tuple(samples), attribute_schema=schema)


def test_roi_target_from_the_data():
    from sitesight.models.attribute import roi_target

    radio = AttributeSpec("safety_rope", values=("correct", "wrong"), input_type="radio", labels=("person",))
    flag = AttributeSpec("occluded", values=("false",), input_type="checkbox")
    ds = _dataset({"person": ["safety_rope", "occluded"], "helmet": ["occluded"]}, {"safety_rope": radio, "occluded": flag})
    assert roi_target(ds) == ("person", "safety_rope")  # the one choice attribute; checkboxes are flags
    assert roi_target(ds, attribute="occluded", box_class="helmet") == ("helmet", "occluded")
    with pytest.raises(InputError, match=r"pass --box-class: boxes of \['helmet', 'person'\] carry 'occluded'"):
        roi_target(ds, attribute="occluded")
    with pytest.raises(InputError, match="no box carries attribute 'vest'"):
        roi_target(ds, attribute="vest")
    two = _dataset({"person": ["safety_rope", "vest"]},
                   {"safety_rope": radio, "vest": AttributeSpec("vest", values=("yes", "no"), input_type="select")})
    with pytest.raises(InputError, match=r"pass --attribute: the boxes carry \['safety_rope', 'vest'\]"):
        roi_target(two)


def test_default_frame_wh_keeps_the_aspect_under_1280():
    from sitesight.models.attribute import default_frame_wh

    radio = AttributeSpec("a", values=("x",), input_type="radio")
    assert default_frame_wh(_dataset({"p": ["a"]}, {"a": radio}, sizes=((1920, 1080), (1920, 1080), (3840, 2160)))) == (1280, 704)
    assert default_frame_wh(_dataset({"p": ["a"]}, {"a": radio}, sizes=((640, 360),))) == (640, 352)

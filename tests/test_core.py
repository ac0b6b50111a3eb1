from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sitesight import Dataset, Detections, Sample
from sitesight.boxes import (
    cxcywh_norm_to_xyxy,
    pairwise_ios,
    pairwise_iou,
    xywh_to_xyxy,
    xyxy_to_cxcywh_norm,
    xyxy_to_xywh,
)


def test_import_does_not_pull_torch():
    code = "import sys, sitesight, sitesight.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_detections_validation_messages():
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\), got \(3, 5\)"):
        Detections(xyxy=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"score: expected shape \(2,\), got \(3,\)"):
        Detections(xyxy=np.zeros((2, 4)), score=[1, 2, 3])
    with pytest.raises(ValueError, match="attributes\\['a'\\]: expected first dimension 2"):
        Detections(xyxy=np.zeros((2, 4)), attributes={"a": [1]})


def test_detections_empty_is_length_zero_and_dtypes():
    d = Detections(xyxy=[])
    assert len(d) == 0 and d.xyxy.shape == (0, 4)
    assert d.xyxy.dtype == np.float32 and d.score.dtype == np.float32 and d.class_id.dtype == np.int64
    assert len(Detections.concat([])) == 0


def test_detections_is_frozen_and_operations_do_not_mutate():
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 25, 15]], np.float32)
    d = Detections(xyxy=xyxy, score=[0.9, 0.3], class_id=[0, 1], attributes={"source": [0, -1]})
    with pytest.raises(AttributeError):
        d.xyxy = xyxy  # type: ignore[misc]
    shifted = d.shift(100, 50)
    np.testing.assert_array_equal(shifted.xyxy[0], [100, 50, 110, 60])
    np.testing.assert_array_equal(d.xyxy, xyxy)
    clipped = d.clip((20, 12))
    np.testing.assert_array_equal(clipped.xyxy[1], [5, 5, 20, 12])
    assert len(d.filter(min_score=0.5)) == 1
    assert d.filter(class_ids=[1]).attributes["source"].tolist() == [-1]
    both = Detections.concat([d, d[[1]]])
    assert len(both) == 3 and both.attributes["source"].tolist() == [0, -1, -1]
    assert d[np.array([False, True])].class_id.tolist() == [1]
    np.testing.assert_allclose(d.area, [100, 200])


def test_geometry_round_trips_hand_computed():
    xyxy = np.array([[10, 20, 50, 100]], np.float32)
    np.testing.assert_array_equal(xyxy_to_xywh(xyxy), [[10, 20, 40, 80]])
    np.testing.assert_array_equal(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    norm = xyxy_to_cxcywh_norm(xyxy, (200, 400))
    np.testing.assert_allclose(norm, [[0.15, 0.15, 0.2, 0.2]])
    np.testing.assert_allclose(cxcywh_norm_to_xyxy(norm, (200, 400)), xyxy, atol=1e-4)


def test_iou_and_ios_hand_computed():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [2, 2, 4, 4], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(pairwise_iou(a, b), [[50 / 150, 4 / 100, 0]], rtol=1e-6)
    np.testing.assert_allclose(pairwise_ios(a, b), [[0.5, 1.0, 0]], rtol=1e-6)
    assert pairwise_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_dataset_checks_class_ids():
    s = Sample(path="a.jpg", image_wh=(100, 100), gt=Detections(xyxy=[[0, 0, 1, 1]], class_id=[3]))
    with pytest.raises(ValueError, match="class_id outside 0..1"):
        Dataset(class_names=("a", "b"), samples=(s,))
    ds = Dataset(class_names=("a", "b", "c", "d"), samples=(s,))
    assert ds.class_counts() == {"a": 0, "b": 0, "c": 0, "d": 1}
    with pytest.raises(KeyError, match="unknown class 'z'"):
        ds.class_index("z")

"""The fast COCO JSON readers against the standard library's ``json``: same values, or a refusal."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitesight.errors import InputError
from sitesight.evaluation.coco_files import evaluate_coco_files, load_coco_gt, load_coco_results
from sitesight.evaluation.coco_json import load_json, paused_gc, read_flat_results

from .cocoref import pycocotools_eval

TOL = 1e-9


def _columns(results: list[dict]) -> tuple[np.ndarray, ...]:
    """The reference: what ``json`` reads, as columns."""
    return (
        np.array([r["image_id"] for r in results], np.int64),
        np.array([r["category_id"] for r in results], np.int64),
        np.array([r["bbox"] for r in results], np.float64).reshape(-1, 4),
        np.array([r["score"] for r in results], np.float64),
    )


def _assert_same(raw: bytes) -> None:
    got = read_flat_results(raw)
    assert got is not None
    for a, b in zip(got, _columns(json.loads(raw)), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


RESULTS = [
    {"image_id": 3, "category_id": 1, "bbox": [10, 20.5, 3e-05, 1.5e2], "score": 0.25},
    {"image_id": 1, "category_id": 7, "bbox": [-1.0, 0, 28.53000000000003, 261.71000000000004], "score": 1},
    {"image_id": 12345678901, "category_id": 2, "bbox": [0.1, 0.2, 0.3, 0.4], "score": 1e-7},
]


@pytest.mark.parametrize(
    "dump",
    [
        lambda r: json.dumps(r),
        lambda r: json.dumps(r, separators=(",", ":")),
        lambda r: json.dumps(r, indent=4),
        lambda r: json.dumps(r, indent="\t").replace("\n", "\r\n") + "\n\n",
        lambda r: json.dumps([{k: x[k] for k in ("score", "bbox", "category_id", "image_id")} for x in r]),
        lambda r: json.dumps(r[:1]),
        lambda r: json.dumps(r[:2]),
        # SAHI's export: extra scalar keys and an empty segmentation list
        lambda r: json.dumps([{**x, "category_name": "car", "segmentation": [], "iscrowd": 0, "area": 6592, "x": None} for x in r], indent=4),
        lambda r: json.dumps([{**x, "keypoints": [1, 2.5, 2]} for x in r]),
    ],
)
def test_flat_results_read_exactly_as_json(dump) -> None:
    _assert_same(dump(RESULTS).encode())


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"annotations": []}',
        json.dumps([{**RESULTS[0], "segmentation": [[1, 2, 3, 4]]}]),  # nested list in an extra key
        json.dumps([{**RESULTS[0], "segmentation": []}, {**RESULTS[1], "segmentation": [1, 2]}]),  # lengths differ
        json.dumps([{**RESULTS[0], "name": "a,b"}, {**RESULTS[1], "name": "c"}]),  # a comma in a string
        json.dumps([{**RESULTS[0], "name": "c:d"}, {**RESULTS[1], "name": "a"}]),
        json.dumps([{**RESULTS[0], "extra": {"a": 1}}, {**RESULTS[1], "extra": {"a": 1}}]),  # nested object
        json.dumps([{k: v for k, v in RESULTS[0].items() if k != "score"}]),  # missing key
        json.dumps([RESULTS[0], {**RESULTS[1], "bbox": [[1, 2], [3, 4]]}]),  # nested bbox
        json.dumps([RESULTS[0], {**RESULTS[1], "bbox": [1, 2, 3]}]),
        json.dumps([RESULTS[0], {**RESULTS[1], "score": None}]),
        json.dumps([RESULTS[0], {**RESULTS[1], "score": [0.5]}]),
        json.dumps([RESULTS[0], {**RESULTS[1], "image_id": 1.0}]),  # integer-valued float: plain reader
        json.dumps([RESULTS[0], {**RESULTS[1], "image_id": "1"}]),
        json.dumps([RESULTS[0], {**RESULTS[1], "bbox": [0, 0, float("nan"), 1]}]),
        json.dumps([{"image_id": 1, "category_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]}, {"category_id": 1, "image_id": 2, "score": 0.5, "bbox": [0, 0, 1, 1]}]),
        json.dumps([RESULTS[0], {"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5, "x": "{"}]),
        json.dumps([RESULTS[0], RESULTS[1]]).replace('"score"', '"sc:ore"', 1),
        json.dumps([RESULTS[0], 5, RESULTS[1]]),
    ],
)
def test_other_shapes_are_left_to_the_plain_reader(text: str) -> None:
    assert read_flat_results(text.encode()) is None


_number = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
_result = st.fixed_dictionaries(
    {"image_id": st.integers(0, 2**40), "category_id": st.integers(-5, 100), "bbox": st.lists(_number, min_size=4, max_size=4), "score": _number}
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_result, min_size=1, max_size=20), st.sampled_from([None, 1, 2]), st.permutations(["image_id", "category_id", "bbox", "score"]))
def test_random_flat_files_read_exactly_as_json(results: list[dict], indent: int | None, order: list[str]) -> None:
    _assert_same(json.dumps([{k: r[k] for k in order} for r in results], indent=indent).encode())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_result, st.text(alphabet='ab ,:{}[]"\\\n', max_size=4)), min_size=1, max_size=8))
def test_extra_strings_are_read_exactly_or_refused(rows: list[tuple[dict, str]]) -> None:
    raw = json.dumps([{**r, "category_name": name} for r, name in rows]).encode()
    got = read_flat_results(raw)
    if got is not None:
        for a, b in zip(got, _columns(json.loads(raw)), strict=True):
            np.testing.assert_array_equal(a, b)


def test_load_json_equals_json_and_restores_the_collector() -> None:
    raw = json.dumps({"a": [1, 2.5, None, "x"], "b": {"c": float("nan")}}).encode()  # NaN: orjson refuses, json reads
    was = gc.isenabled()
    try:
        for state in (True, False):
            gc.enable() if state else gc.disable()
            got = load_json(raw)
            assert gc.isenabled() is state
            assert json.dumps(got) == json.dumps(json.loads(raw))
        gc.enable()
        with pytest.raises(ValueError), paused_gc():
            assert not gc.isenabled()
            load_json(b"{not json")
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def _coco(tmp_path: Path, results: list[dict]) -> tuple[Path, Path, dict]:
    gt = {
        "images": [{"id": i, "width": 640, "height": 480} for i in (1, 3, 12345678901)],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "helmet"}, {"id": 7, "name": "vest"}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 1, "bbox": [10, 20, 5, 150], "area": 750, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 28, 260], "area": 7280, "iscrowd": 0},
            {"id": 3, "image_id": 12345678901, "category_id": 2, "bbox": [0.1, 0.2, 0.3, 0.4], "area": 0.12, "iscrowd": 0},
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results, indent=2))
    return tmp_path / "gt.json", tmp_path / "res.json", gt


def test_detectron2_key_order_file_matches_pycocotools(tmp_path: Path) -> None:
    results = [{"image_id": r["image_id"], "category_id": r["category_id"], "bbox": r["bbox"], "score": r["score"]} for r in RESULTS]
    gt_path, res_path, gt = _coco(tmp_path, results)
    ref = pycocotools_eval(gt, results)
    ours = evaluate_coco_files(gt_path, res_path)
    np.testing.assert_allclose(ours.stats, ref.stats, atol=TOL, rtol=0)
    # the same file through the plain reader (an extra key forces it) reads the same columns
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{**r, "extra": 1} for r in results]))
    g = load_coco_gt(gt_path)
    a, b = load_coco_results(res_path, g), load_coco_results(plain, g)
    for col in ("frame", "class_id", "xyxy", "score", "area"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))


def test_bad_values_in_ground_truth_name_the_place(tmp_path: Path) -> None:
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({"images": [{"id": 1, "width": "wide"}], "categories": [{"id": 1}], "annotations": []}))
    with pytest.raises(InputError, match=r"images"):
        load_coco_gt(gt_path)
    gt_path.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1}],
                                   "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 2**70}]}))
    with pytest.raises(InputError, match=r"annotations\[0\]"):
        load_coco_gt(gt_path)

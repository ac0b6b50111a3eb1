"""Every reader against mutated and hostile inputs: only `InputError`, no hang, nothing non-finite accepted.

Two campaigns of the engine (`engine.py`: each input in a forked worker with a 10 s and +2 GiB cap)
feed 10,000 inputs together: 6,000 mutations of small built-in files and 4,000 of the real files in
../shared/data (skipped when it is absent). Hypothesis strategies add structured inputs for the
number parsers and the JSON/CSV readers in this process. ``benchmarks/fuzz.py`` runs the same
engine on 100,000+ inputs.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitesight.errors import InputError

from .engine import READERS, SHARED_DATA, campaign, main_counts, run_one


def _assert_clean(report, expected: int) -> None:
    summary = main_counts(report)
    assert report.total == expected, summary
    assert report.counts["crash"] == 0, summary  # no exception other than the project's InputError
    assert report.counts["hang"] == 0, summary  # none over 10 s
    assert report.counts["garbage"] == 0, summary  # nothing non-finite accepted
    assert report.slowest < 10.0, summary
    # the campaign is not vacuous: every reader both accepted valid inputs and refused broken ones
    for reader, counts in report.per_reader.items():
        assert counts["ok"] > 0 and counts["refused"] > 0, (reader, summary)


def test_fuzz_builtin_seeds_every_reader():
    report = campaign(6_000, base_seed=1, shared=False)
    _assert_clean(report, 6_000)
    assert set(report.per_reader) == set(READERS)


def test_fuzz_real_files():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    report = campaign(4_000, base_seed=2, builtin=False, shared=True)
    _assert_clean(report, 4_000)
    assert {"cvat", "coco", "voc", "yolo_yaml", "yolo_labels", "coco_results", "eval_results"} <= set(report.per_reader)


def test_engine_catches_a_raw_exception_and_a_nan():
    """The harness can fail: a reader raising a bare error or letting NaN through is counted."""
    assert run_one("coco_results", b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": NaN}]')[0] == "refused"
    READERS["_raw"] = lambda folder, data: int("x")  # noqa: ARG005
    READERS["_nan"] = lambda folder, data: "non-finite box"  # noqa: ARG005
    try:
        assert run_one("_raw", b"")[0] == "crash"
        assert run_one("_nan", b"")[0] == "garbage"
    finally:
        READERS.pop("_raw")
        READERS.pop("_nan")


# -- hypothesis: structured values into the boundary helpers and the readers ---------------------------

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json_scalars)
def test_number_helpers_return_finite_in_range_or_refuse(value):
    from sitesight.limits import MAX_COORD, image_side, integer, number

    for parse in (number, integer, image_side):
        try:
            result = parse(value, "f.json", "x")
        except InputError as exc:
            assert "f.json (x)" in str(exc) and len(str(exc)) <= 400
            continue
        assert isinstance(result, (int, float)) and math.isfinite(result)
        if parse is number:
            assert abs(result) <= MAX_COORD
        if parse is image_side:
            assert 0 < result <= 1 << 20 and float(value) == result


_box = st.lists(_json_scalars, min_size=0, max_size=5)
_result = st.fixed_dictionaries(
    {"image_id": st.one_of(st.just(1), st.just(2), _json_scalars), "category_id": st.one_of(st.just(1), _json_scalars),
     "bbox": st.one_of(st.just([1, 2, 3, 4]), _box), "score": st.one_of(st.floats(0, 1), _json_scalars)}
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(results=st.lists(_result, max_size=4))
def test_coco_results_readers_on_generated_results(results):
    data = json.dumps(results, allow_nan=True).encode()
    for reader in ("coco_results", "eval_results"):
        outcome, detail = run_one(reader, data)
        assert outcome in ("ok", "refused"), (reader, outcome, detail)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.one_of(st.sampled_from(["person", "car", "normal", "anomalous", "nan", "inf", "-1", "0.5", ""]),
                                        st.text(max_size=8)), min_size=1, max_size=5), max_size=5))  # fmt: skip
def test_eval_csv_readers_on_generated_tables(rows):
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([["image", "label", "person", "car"], *rows])
    for reader in ("cls_csv", "anomaly_csv"):
        outcome, detail = run_one(reader, buf.getvalue().replace("person,car", "person,car" if reader == "cls_csv" else "score").encode())
        assert outcome in ("ok", "refused"), (reader, outcome, detail)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.lists(st.one_of(st.sampled_from(["0", "1", "0.5", "nan", "inf", "-1", "1e309", "99999999999"]),
                                         st.floats(allow_nan=True).map(repr)), max_size=9), max_size=4))  # fmt: skip
def test_yolo_label_reader_on_generated_lines(lines):
    data = "\n".join(" ".join(line) for line in lines).encode()
    outcome, detail = run_one("yolo_labels", data)
    assert outcome in ("ok", "refused"), (outcome, detail)

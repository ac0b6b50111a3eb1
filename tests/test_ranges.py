"""sitesight.ranges: the one parser behind every threshold-list option (hand-computed cases)."""

import numpy as np
import pytest

from sitesight.errors import InputError
from sitesight.evaluation.detection import parse_sweep
from sitesight.ranges import parse_range
from sitesight.sliced.sweep import parse_range as sweep_parse_range


def test_one_implementation() -> None:
    assert sweep_parse_range is parse_range


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.15:0.5:0.05", [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]),
        ("0:1:0.3", [0.0, 0.3, 0.6, 0.9]),  # stop not on the grid: not reached
        (" 0.5:0.5:0.1 ", [0.5]),
        ("0.5:0.2:0.1", []),  # reversed: empty
        ("0.3, 0.4,", [0.3, 0.4]),
        ("", []),
    ],
)
def test_parse_range(text: str, expected: list[float]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["a:b", "0:1", "0:1:0", "0:1:-0.1", "0:inf:0.1", "0:1:inf", "0:nan:0.1", "0.1,x"])
def test_parse_range_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="start:stop:step"):
        parse_range(text)


def test_parse_sweep_is_parse_range_as_array() -> None:
    out = parse_sweep("0.05:0.95:0.05")
    assert out.dtype == np.float64
    assert out.tolist() == parse_range("0.05:0.95:0.05")
    assert out.tolist()[:3] == [0.05, 0.1, 0.15] and out.tolist()[-1] == 0.95 and len(out) == 19
    for bad in ("0.5:0.2:0.1", "0:inf:0.1", "0:1:0"):  # a reversed range is a typo for a sweep
        with pytest.raises(InputError, match="--sweep"):
            parse_sweep(bad)

"""`sitesight.progress` and `sitesight.device`: plain timed lines in a pipe, full-width tables, device names."""

from __future__ import annotations

import io
import re
import time

import pytest

from sitesight.device import resolve_device_name
from sitesight.errors import InputError
from sitesight.progress import PLAIN_WIDTH, epoch_line, format_seconds, make_console, progress_reporter


def _piped_console():
    from rich.console import Console

    console = make_console()
    assert isinstance(console, Console)
    console.file = io.StringIO()  # not a terminal
    return console


def test_piped_console_is_plain_and_full_width():
    from rich.table import Table

    console = _piped_console()
    assert not console.is_terminal and console.width == PLAIN_WIDTH
    table = Table("a very long column header " * 5, "second")
    table.add_row("x" * 150, "kept whole")
    console.print(table)
    console.print("[bold red]warning[/bold red] plain")
    text = console.file.getvalue()
    assert "\x1b" not in text
    assert "x" * 150 in text and "kept whole" in text  # nothing cut at 80 columns
    assert "warning plain" in text


def test_plain_lines_start_advance_and_end():
    console = _piped_console()
    with progress_reporter("detect", 4, unit="frames", console=console, interval=0) as bar:
        for _ in range(4):
            bar.advance()
        bar.note("a note")
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("detect: 0/4 frames (0%)")
    assert [int(re.match(r"detect: (\d)/4", line).group(1)) for line in lines if line.startswith("detect")] == [0, 1, 2, 3, 4, 4]
    assert "ETA" in lines[2] and lines[-1].endswith("done") and "a note" in lines
    assert bar.done == 4


def test_plain_lines_are_timed_not_per_step():
    console = _piped_console()
    with progress_reporter("work", 1000, console=console, interval=3600) as bar:
        for _ in range(1000):
            bar.advance()
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 2  # the start and the end: the hour between lines never passed


def test_ticker_prints_while_nothing_advances():
    console = _piped_console()
    with progress_reporter("slow", 2, console=console, interval=0.2):
        time.sleep(1.3)
    lines = console.file.getvalue().splitlines()
    assert len(lines) >= 4  # start, at least two ticks, end
    assert all(line.startswith("slow: 0/2") for line in lines[:-1])


def test_skip_counts_done_work_without_inflating_the_rate():
    console = _piped_console()
    with progress_reporter("resume", 10, console=console, interval=0) as bar:
        bar.skip(8)
        assert bar.rate() == 0.0 and bar.done == 8


def test_disabled_reporter_prints_nothing():
    with progress_reporter("x", 3, enabled=False) as bar:
        bar.advance(3)
        bar.note("hidden")
    assert bar.done == 3


def test_epoch_line_and_seconds():
    row = {"epoch": 3, "train_loss": 0.41234, "lr": 5e-5, "val_macro_ap": None, "backbone_frozen": True, "seconds": 75.2}
    assert epoch_line(row, 20) == "epoch 3/20: train_loss 0.4123, lr 5e-05, val_macro_ap n/a, backbone_frozen yes, 1 min 15 s"
    assert format_seconds(4.25) == "4.2 s" and format_seconds(42.4) == "42 s" and format_seconds(7500) == "2 h 05 min"
    assert format_seconds(float("inf")) == "?"


def test_device_names():
    assert resolve_device_name("cpu") == "cpu"
    assert resolve_device_name("AUTO") in ("cuda", "mps", "cpu")
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        resolve_device_name("tpu")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device_name("cuda:1")
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device_name("0")

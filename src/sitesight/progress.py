"""Progress for long work: a live bar on a terminal, plain lines in a pipe, a log file or CI.

`make_console` gives the rich console every CLI command prints through: on a terminal it is
rich's own; when its stream is not a terminal (``| cat``, ``nohup``, ``tee``, a scheduler's log)
it writes no escape codes and does not cut tables at 80 columns.

`progress_reporter` is what long loops report to. On a terminal it draws a rich progress bar; in
a pipe it prints one plain line when it starts, then one every ``interval`` seconds while the
work runs (done/total, rate, ETA), and one when it ends::

    detect: 12/50 frames (24%), 0.81 frames/s, elapsed 14.8 s, ETA 47 s

`ProgressReporter.note` prints a line above the bar (a terminal) or as it is (a pipe): training
loops print one line per epoch with its metrics through it (`epoch_line`).

Only ``rich`` is imported (lazily), never torch: the numpy core and the CLI use it alike.

Example:
    >>> from sitesight.progress import progress_reporter
    >>> with progress_reporter("work", total=3, enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    >>> bar.done
    3
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["make_console", "progress_reporter", "ProgressReporter", "epoch_line", "format_seconds", "PLAIN_WIDTH", "INTERVAL_ENV"]

PLAIN_WIDTH = 1000  # a log file has no width: tables keep every column
INTERVAL_ENV = "SITESIGHT_PROGRESS_INTERVAL"  # seconds between plain progress lines (default 5)
DEFAULT_INTERVAL = 5.0


@functools.cache
def _console_class() -> type:
    from rich.console import Console

    class _Console(Console):
        """rich's Console, but full width (not 80 columns) when its stream is not a terminal."""

        @property
        def size(self):  # noqa: ANN202  (rich's ConsoleDimensions)
            from rich.console import ConsoleDimensions

            if not self.is_terminal and self._width is None:
                return ConsoleDimensions(PLAIN_WIDTH, 25)
            return super().size

        @size.setter
        def size(self, new_size: tuple[int, int]) -> None:
            self._width, self._height = new_size

    return _Console


def make_console(*, stderr: bool = False) -> Any:
    """A rich ``Console`` on stdout (or stderr) that stays plain and full width when piped.

    Colours and cursor movement are rich's decision for the stream at the time of writing (none
    when it is not a terminal, or when ``NO_COLOR`` is set); the width is the terminal's, or
    `PLAIN_WIDTH` columns when the stream is a pipe or a file.
    """
    return _console_class()(stderr=stderr, highlight=False)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _interval_from_env() -> float:
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


class ProgressReporter:
    """Counts work done and shows it: a rich bar on a terminal, plain timed lines otherwise.

    Use it as a context manager (`progress_reporter`). ``advance`` and ``update`` may be called
    from any thread.

    Args:
        description: what is running (``"detect"``, ``"train roi"``).
        total: units to do; ``None`` when unknown (no percentage or ETA).
        unit: what is counted, for the plain lines (``"frames"``, ``"steps"``).
        console: where to print (default `make_console` on stderr).
        interval: seconds between plain lines (default: ``$SITESIGHT_PROGRESS_INTERVAL`` or 5).
        enabled: ``False`` shows nothing (the counts still add up).
    """

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        unit: str = "items",
        console: Any | None = None,
        interval: float | None = None,
        enabled: bool = True,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self.enabled = enabled
        self.interval = _interval_from_env() if interval is None else float(interval)
        self._console = console if console is not None or not enabled else make_console(stderr=True)
        self._lock = threading.Lock()
        self._line_lock = threading.Lock()  # the ticker and advance() never print the same moment twice
        self._start = time.monotonic()
        self._base = 0  # units already done before this run (resume): left out of the rate
        self._last_line = -math.inf
        self._rich: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def interactive(self) -> bool:
        """True when drawing a live bar (a terminal)."""
        return self._rich is not None

    def __enter__(self) -> ProgressReporter:
        self._start = time.monotonic()
        if not self.enabled:
            return self
        if self._console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=self._console,
            )  # fmt: skip
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total, completed=self.done, rate="")
        else:
            self._print(self._line())
            self._last_line = time.monotonic()
            if self.interval > 0:
                self._ticker = threading.Thread(target=self._tick, name="sitesight-progress", daemon=True)
                self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None
        elif self.enabled:
            self._print(self._line(final=exc[0] is None))

    def skip(self, n: int) -> None:
        """Count ``n`` units done earlier (a resumed run) without counting them in the rate."""
        with self._lock:
            self._base += n
            self.done += n
        self._refresh()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        with self._lock:
            self.done += n
        self._refresh()

    def update(self, *, completed: int | None = None, total: int | None = None, description: str | None = None) -> None:
        """Set the count, the total or the description."""
        with self._lock:
            if completed is not None:
                self.done = completed
            if total is not None:
                self.total = total
            if description is not None:
                self.description = description
        self._refresh()

    def note(self, text: str) -> None:
        """Print one line: above the bar on a terminal, as it is in a pipe."""
        if self.enabled:
            self._print(text)

    def rate(self) -> float:
        """Units per second since the start (units skipped as done earlier left out)."""
        elapsed = time.monotonic() - self._start
        return (self.done - self._base) / elapsed if elapsed > 0 else 0.0

    def _refresh(self) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            rate = self.rate()
            self._rich.update(self._task, completed=self.done, total=self.total, description=self.description,
                              rate=f"{rate:.2f} {self.unit}/s" if rate > 0 else "")
        else:
            self._timed_line(every_step=self.interval == 0)

    def _timed_line(self, every_step: bool = False) -> None:
        with self._line_lock:
            if every_step or time.monotonic() - self._last_line >= self.interval:
                self._print(self._line())
                self._last_line = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            self._timed_line()

    def _line(self, final: bool = False) -> str:
        with self._lock:
            done, total, desc = self.done, self.total, self.description
        elapsed = time.monotonic() - self._start
        rate = self.rate()
        count = f"{done}/{total}" if total is not None else f"{done}"
        text = f"{desc}: {count} {self.unit}"
        if total:
            text += f" ({100 * done / total:.0f}%)"
        text += f", {rate:.2f} {self.unit}/s, elapsed {format_seconds(elapsed)}"
        if final:
            return text + (", done" if total is None or done >= total else ", stopped")
        if total is not None and rate > 0:
            text += f", ETA {format_seconds((total - done) / rate)}"
        return text

    def _print(self, text: str) -> None:
        console = self._console
        if console is None:
            return
        if self._rich is not None:
            self._rich.console.print(text, markup=False, highlight=False)
        else:
            console.print(text, markup=False, highlight=False, soft_wrap=True)


def progress_reporter(
    description: str,
    total: int | None = None,
    *,
    unit: str = "items",
    console: Any | None = None,
    interval: float | None = None,
    enabled: bool = True,
) -> ProgressReporter:
    """A `ProgressReporter` to use as ``with progress_reporter("detect", total=n, unit="frames") as bar:``."""
    return ProgressReporter(description, total, unit=unit, console=console, interval=interval, enabled=enabled)


def epoch_line(row: Mapping[str, Any], epochs: int | None = None) -> str:
    """One plain line for a training epoch: ``epoch 3/20: train_loss 0.412, val_macro_ap 0.618, 12.3 s``.

    Floats get 4 significant digits; ``None`` prints as ``n/a``; the ``seconds`` key comes last.
    """
    head = f"epoch {row.get('epoch', '?')}" + (f"/{epochs}" if epochs else "")
    parts = []
    for key, value in row.items():
        if key in ("epoch", "seconds"):
            continue
        if value is None:
            parts.append(f"{key} n/a")
        elif isinstance(value, bool):
            parts.append(f"{key} {'yes' if value else 'no'}")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value}")
    if "seconds" in row:
        parts.append(format_seconds(float(row["seconds"])))
    return f"{head}: " + ", ".join(parts)


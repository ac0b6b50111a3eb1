"""Comparisons: run one training per combination of settings and write one table.

``--grid lr=1e-3,1e-2 resize=32,512`` becomes ``{"lr": [0.001, 0.01], "resize": [32, 512]}``; every
combination (their Cartesian product, in the order given) is run by a caller-supplied function
that takes the overrides and returns a flat dict of test metrics. The table (CSV and Markdown)
has one row per run: its settings, then its metrics.

Example:
    >>> from sitesight.models.grid import parse_grid, grid_runs
    >>> grid_runs(parse_grid(["lr=1e-3,1e-2", "resize=32"]))
    [{'lr': 0.001, 'resize': 32}, {'lr': 0.01, 'resize': 32}]
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sitesight import atomic
from sitesight.errors import InputError
from sitesight.pathsafe import safe_component

__all__ = ["parse_grid", "grid_runs", "run_grid", "write_table"]


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_grid(specs: Sequence[str], allowed: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """``["lr=1e-3,1e-2", "resize=32,512"]`` → ``{"lr": [0.001, 0.01], "resize": [32, 512]}``.

    Raises:
        InputError: a spec without ``=``, an empty value list, or a key not in ``allowed``.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        for part in spec.split():
            key, sep, values = part.partition("=")
            items = [v for v in values.split(",") if v]
            if not sep or not key or not items:
                raise InputError(f"grid entry {part!r}: expected KEY=V1,V2,...", where="--grid")
            if allowed is not None and key not in allowed:
                raise InputError(f"grid key {key!r} unknown; choose from {sorted(allowed)}", where="--grid")
            grid[key] = [_value(v) for v in items]
    return grid


def grid_runs(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, first key varying slowest... in product order."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def write_table(rows: Sequence[Mapping[str, Any]], path: Path | str) -> Path:
    """Rows → ``path`` (CSV) and ``path.with_suffix('.md')`` (a Markdown table); returns the CSV path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic.open_atomic(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in rows]
    atomic.write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
    return path


def run_grid(
    grid: Mapping[str, Sequence[Any]],
    run: Callable[[dict[str, Any], str], Mapping[str, Any]],
    table_path: Path | str,
) -> list[dict[str, Any]]:
    """Call ``run(overrides, run_name)`` for every combination; write and return the table rows.

    ``run_name`` is a folder-safe name such as ``lr=0.001_resize=32`` (``/`` in a value becomes ``-``). The table is rewritten
    after each run, so a long grid shows its progress and keeps what finished if it is stopped.
    """
    rows: list[dict[str, Any]] = []
    for overrides in grid_runs(grid):
        # one folder per run: a value holding '/' or '..' (hf-hub:ORG/NAME) must not make a path of it
        name = "_".join(f"{k}={v}" for k, v in overrides.items()).replace("/", "-").replace("\\", "-") or "base"
        name = safe_component(name if name not in (".", "..") else f"run{len(rows)}", what="grid run name")
        rows.append({"run": name, **overrides, **dict(run(overrides, name))})
        write_table(rows, table_path)
    return rows

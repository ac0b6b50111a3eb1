"""One ``--json`` for every command that prints results: ``--json FILE`` also writes the full
result as JSON there; ``--json -`` writes it to standard output (for pipes; what the command prints
for people goes to standard error then, or is left out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

__all__ = ["JSON_HELP", "JSON_OPTION", "to_stdout", "emit", "emit_summary"]

JSON_HELP = "Also write the full result as JSON to this file ('-': standard output)."
JSON_OPTION = typer.Option(None, "--json", help=JSON_HELP)


def to_stdout(path: Path | None) -> bool:
    """True for ``--json -``."""
    return path is not None and str(path) == "-"


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit(path: Path | None, data: Any) -> None:
    """Write ``data`` to ``path`` (atomically; ``-`` = standard output); nothing for None."""
    if path is None:
        return
    text = json.dumps(data, indent=2, allow_nan=False, default=_plain)
    if to_stdout(path):
        typer.echo(text)
        return
    from sitesight import atomic

    atomic.write_text(path, text + "\n")


def emit_summary(data: Any, path: Path | None) -> None:
    """For commands whose standard output is their JSON summary line: print it, and write it to
    ``path`` too when that is a file."""
    typer.echo(json.dumps(data, allow_nan=False, default=_plain))
    if path is not None and not to_stdout(path):
        emit(path, data)

"""Errors that the CLI turns into one line on stderr and exit code 1.

Raise `InputError` for anything wrong with what the user gave (a file, a value, a model spec);
its message names the file and the place (element, line, key). Internal invariants use ``assert``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "MissingExtraError"]


class InputError(ValueError):
    """Bad input: the message says which file and where.

    Args:
        message: what is wrong, in one line.
        path: the file concerned, if any; prefixed to the message.
        where: element, line or key inside the file, if known.
    """

    def __init__(self, message: str, path: Path | str | None = None, where: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.where = where
        prefix = ""
        if path is not None:
            prefix = f"{path}"
            if where:
                prefix += f" ({where})"
            prefix += ": "
        super().__init__(prefix + message)


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message carries the exact pip install line."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'sitesight[{extra}]'")
        self.package = package
        self.extra = extra

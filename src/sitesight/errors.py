"""Errors that the CLI turns into one line on stderr and exit code 1.

Raise `InputError` for anything wrong with what the user gave (a file, a value, a model spec);
its message names the file and the place (element, line, key). Internal invariants use ``assert``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "MissingExtraError", "MAX_MESSAGE_CHARS", "clip_line"]


MAX_MESSAGE_CHARS = 400


def clip_line(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (a 100 MB name from a file is never echoed whole)."""
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputError(ValueError):
    """Bad input: the message says which file and where.

    The message is one line of at most `MAX_MESSAGE_CHARS` characters: the path keeps its end (the
    file name), the place and the reason are cut when longer.

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
            shown = str(path)
            prefix = shown if len(shown) <= 160 else "..." + shown[-157:]
            if where:
                prefix += f" ({clip_line(where, 100)})"
            prefix += ": "
        super().__init__(clip_line(prefix + clip_line(str(message), MAX_MESSAGE_CHARS), MAX_MESSAGE_CHARS))


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message carries the exact pip install line."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'sitesight[{extra}]'")
        self.package = package
        self.extra = extra

"""`Issue`: one problem found while reading or validating a dataset (file, place, severity).

Readers stay lenient on what they can represent (an undeclared label becomes a class, a label
file without an image is skipped) and report each such finding as an `Issue`; anything they
cannot represent raises `sitesight.errors.InputError` instead. ``sitesight data validate`` prints
the issues; `read_dataset` logs them as warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

__all__ = ["Issue", "Loaded", "log_issues"]

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Issue:
    """One finding.

    Args:
        severity: ``"error"`` (the data is wrong) or ``"warning"`` (suspicious or lossy).
        code: short stable identifier, e.g. ``"unknown_label"``, ``"box_outside_image"``.
        message: one human-readable line.
        path: the file concerned, when there is one.
        where: place inside the file (element, line, key), when known.
    """

    severity: str
    code: str
    message: str
    path: str | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Issue.severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))

    def to_dict(self) -> dict[str, str | None]:
        """Plain JSON-ready dict."""
        return asdict(self)

    def __str__(self) -> str:
        place = ""
        if self.path:
            place = self.path + (f" ({self.where})" if self.where else "") + ": "
        return f"{self.severity}: {place}{self.message}"


def log_issues(issues: Iterable[Issue], logger: logging.Logger, limit: int = 20) -> None:
    """Log the first ``limit`` issues as warnings and a count of the rest."""
    issues = list(issues)
    for issue in issues[:limit]:
        logger.warning("%s", issue)
    if len(issues) > limit:
        logger.warning("... and %d more issues (run `sitesight data validate` for all)", len(issues) - limit)


@dataclass(frozen=True)
class Loaded:
    """What a checked read returns: the dataset and every issue found on the way.

    Args:
        dataset: the dataset as read.
        issues: findings, in file order.
        meta: format details a writer needs to reproduce the file (e.g. ``"category_ids"``).
    """

    dataset: object  # sitesight.Dataset (kept untyped to avoid an import cycle in type checkers)
    issues: tuple[Issue, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "issues", tuple(self.issues))

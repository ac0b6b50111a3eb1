"""Shared pieces of the hostile-name tests: the names, a sandbox snapshot and the one-command check.

A case runs inside a sandbox folder with the working directory two levels deep in it, so that a
relative ``../../x`` taken from data lands in the sandbox (where the snapshot sees it) and an
absolute name lands under `ABSOLUTE` (checked to stay absent).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

from sitesight.cli.main import main

TAG = uuid.uuid4().hex[:10]
ABSOLUTE = Path(f"/tmp/sitesight-evil-{TAG}")
LONG = "L" * 300
NAMES = {
    "dotdot": "../../../../../../../../tmp/sitesight-evil-" + TAG + "/x",
    "parent": "../../escaped",
    "absolute": str(ABSOLUTE / "abs"),
    "long": LONG,
    "nul": "a\u0000b",
    "dots": "..",
    "newline": "a\nb",
}
CLASS_EXCEPTIONS = ("Error:", "Exception:", "Traceback", "KeyError", "ValueError", "TypeError", "IndexError", "AttributeError")


def snapshot(root: Path, skip: Iterable[Path]) -> dict[str, int]:
    """Size of every file and folder under ``root`` outside the ``skip`` folders (links not followed)."""
    skip = tuple(skip)
    return {str(p): p.stat().st_size if p.is_file() else -1 for p in root.rglob("*")
            if not p.is_symlink() and not any(p == s or p.is_relative_to(s) for s in skip)}  # fmt: skip


def escaped_targets(case: Path) -> list[Path]:
    """What a hostile name would have created outside the case's output folders."""
    found = [p for p in (case / "escaped", case.parent / "escaped", case / "escaped.png") if p.exists()]
    return found + ([ABSOLUTE] if ABSOLUTE.exists() else [])


def run_checked(argv: list[str], capsys, case: Path, outputs: Iterable[Path]) -> int:
    """Run one command; assert exit 0 or one short ``error:`` line, and nothing new outside ``outputs``."""
    outputs = list(outputs)
    before = snapshot(case, outputs)
    code = main(argv)
    err = capsys.readouterr().err
    name = " ".join(a if len(a) < 40 else a[:37] + "..." for a in argv[:3])
    assert "Traceback" not in err, (name, err[-1500:])
    assert code in (0, 1), (name, code, err[-1500:])
    if code == 1:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and len(errors[0]) <= 420, (name, errors, err[-800:])
        assert not any(word in errors[0] for word in CLASS_EXCEPTIONS), (name, errors)
        assert "unexpected" not in errors[0], (name, errors)  # an unhandled exception, not a checked input
    after = snapshot(case, outputs)
    assert after == before, (name, sorted(set(after) ^ set(before))[:5])
    assert not escaped_targets(case), (name, escaped_targets(case))
    return code

"""`build_report`: one self-contained HTML file for one or more runs.

Each run becomes one section of its kind (`sitesight.report.runs` says how a run folder is
recognised); every pair of runs of the same kind also gets a comparison section (deltas B - A,
A = the first of the two given). CSS is inline, plots are PNG and pictures JPEG data URIs, the one
script (the error gallery's filters and keys) is inline, and nothing is fetched, so it opens offline
and mails as one file. A run
that cannot be read is logged, listed at the top of the page, and the others still render.

Example:
    >>> from sitesight.report import build_report
    >>> build_report(["runs/v9", "runs/v20260511"], "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sitesight import atomic
from sitesight.errors import InputError
from sitesight.report.crops import FrameCache
from sitesight.report.runs import ReportRun, load_report_run

__all__ = ["build_report", "render_report"]

log = logging.getLogger(__name__)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) >= 10 else f"{value:.{digits}f}"
    return str(value)


def _delta(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}"


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sitesight.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["delta"] = _delta
    return env


def render_report(sections: Sequence[dict[str, Any]], *, title: str, problems: Sequence[str] = (), timestamps: bool = False) -> str:
    """The HTML text for already-built sections (dicts from the ``*_section`` functions).

    The page carries the time it was generated only with ``timestamps=True``: by default the same
    runs give the same bytes."""
    from sitesight import __version__

    return _environment().get_template("report.html.j2").render(
        title=title,
        sections=sections,
        problems=list(problems),
        gallery_script=any(s.get("gallery") for s in sections),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if timestamps else None,
        version=__version__,
    )


def _section(run: ReportRun, cache: FrameCache, samples_per_class: int, audit_per_class: int, spec: str | None = None,
             conf: float | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if run.kind == "classification":
        from sitesight.report.classification import classification_section

        return classification_section(run, samples_per_class=samples_per_class, audit_per_class=audit_per_class, cache=cache)
    if run.kind == "detection":
        from sitesight.report.detection import detection_section

        return detection_section(run, cache=cache, spec=spec, conf=conf, options=options)
    if run.kind == "anomaly":
        from sitesight.report.anomaly import anomaly_section

        return anomaly_section(run, top_k=audit_per_class, cache=cache)
    from sitesight.report.mining import mining_section

    return mining_section(run, cache=cache)


def build_report(
    runs: Sequence[ReportRun | Path | str],
    out: Path | str,
    *,
    title: str = "sitesight report",
    gt: Path | str | None = None,
    samples_per_class: int = 4,
    audit_per_class: int = 8,
    on_progress: Callable[[str], None] | None = None,
    spec: str | None = None,
    conf: float | None = None,
    options: Mapping[str, Any] | None = None,
    allow_outside: bool = False,
    timestamps: bool = False,
) -> Path:
    """Write one self-contained HTML report of ``runs`` to ``out``; returns ``out``.

    Args:
        runs: run folders (or `ReportRun` values); two of the same kind are also compared.
        out: the ``.html`` file to write (parent folders are created).
        title: page title.
        gt: ground truth for detection run folders that do not name their own.
        samples_per_class: sample predictions per class in classification sections.
        audit_per_class: most confident mistakes per class (anomaly: top-scored images).
        on_progress: called with a short description before each section is built.
        spec, conf: the operating point of detection runs (``--spec`` text, ``--conf``); default: each
            run's recorded spec or sweep's best row, else its best-F1 confidence (said so on the page).
        options: the other post-processing options (``method``, ``metric``, ``threshold``, ``gate``,
            ``class_map``, ``class_agnostic``, ``border``) applied on top of that operating point.
        allow_outside: read ``run.json`` artefacts that resolve outside their run folder (refused by
            default, see `sitesight.report.runs`; on the CLI ``--allow-outside-root``).
        timestamps: write the generation time into the page (default: none, so the bytes are reproducible).

    Raises:
        InputError: no run could be read.
    """
    problems: list[str] = []
    loaded: list[ReportRun] = []
    for r in runs:
        try:
            loaded.append(r if isinstance(r, ReportRun) else load_report_run(r, gt=gt, allow_outside=allow_outside))
        except InputError as exc:
            log.warning("skipping run: %s", exc)
            problems.append(str(exc))
    cache = FrameCache()
    sections: list[dict[str, Any]] = []
    by_kind: dict[str, list[ReportRun]] = {}
    for run in loaded:
        if on_progress is not None:
            on_progress(f"{run.kind}: {run.name}")
        try:
            sections.append(_section(run, cache, samples_per_class, audit_per_class, spec, conf, options))
            by_kind.setdefault(run.kind, []).append(run)
        except InputError as exc:
            log.warning("skipping run %s: %s", run.path, exc)
            problems.append(f"{run.name}: {exc}")
    from sitesight.report.comparison import comparison_section

    for kind_runs in by_kind.values():
        for a, b in zip(kind_runs[:-1], kind_runs[1:], strict=True):
            if on_progress is not None:
                on_progress(f"compare {a.name} → {b.name}")
            try:
                sections.append(comparison_section(a, b, cache=cache, spec=spec, conf=conf, options=options))
            except InputError as exc:
                log.warning("no comparison of %s and %s: %s", a.name, b.name, exc)
                problems.append(f"comparison {a.name} → {b.name}: {exc}")
    if not sections:
        raise InputError("no run could be read: " + "; ".join(problems))
    problems += [f"image not readable, left out: {p}" for p in dict.fromkeys(cache.missing)]
    for i, s in enumerate(sections):
        s["anchor"] = f"s{i + 1}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, render_report(sections, title=title, problems=problems, timestamps=timestamps), encoding="utf-8")
    return out

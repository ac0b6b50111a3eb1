"""`sitesight report RUN... --out report.html`: one self-contained HTML page; two runs of a kind are compared."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sitesight.cli import spec_options as so
from sitesight.progress import make_console

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root


@app.command("report")
def report(
    runs: list[Path] = typer.Argument(..., help="Run folders (run.json, or what sitesight train/detect/eval wrote); two of one kind are compared (B - A)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    gt: Path | None = typer.Option(None, "--gt", help="Ground truth for detection run folders that do not name their own."),
    title: str = typer.Option("sitesight report", "--title", help="Page title."),
    samples_per_class: int = typer.Option(4, "--samples", min=0, help="Sample predictions per class (classification)."),
    audit_per_class: int = typer.Option(8, "--audit", min=0, help="Most confident mistakes per class (classification)."),
    spec: str | None = typer.Option(None, "--spec", help="Operating point of detection runs: RUN/sweep.csv:best, TABLE.csv:ROW, SPEC.json or JSON text. Default: the run's recorded spec or its sweep's best row, else the best-F1 confidence (stated on the page)."),
    conf: float | None = typer.Option(None, "--conf", help="Operating confidence of detection runs (overrides the spec's)."),
    method: str = so.METHOD,
    metric: str = so.METRIC,
    threshold: float = so.THRESHOLD,
    gate: str = so.GATE,
    class_map: str = so.CLASS_MAP,
    class_agnostic: bool = so.CLASS_AGNOSTIC,
    border: bool = so.BORDER,
    allow_outside: bool = typer.Option(False, "--allow-outside-root", help="Read run.json artefacts that resolve outside their run folder (refused by default)."),
    timestamps: bool = typer.Option(False, "--timestamps", help="Write the generation time into the page (default: none; the same runs give the same bytes)."),
) -> None:
    """Write one offline HTML report (metrics, plots, crops) for one or more runs."""
    from sitesight.report import build_report

    console = make_console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("reading runs")
        path = build_report(runs, out, title=title, gt=gt, samples_per_class=samples_per_class,
                            audit_per_class=audit_per_class, on_progress=lambda what: progress.update(task, description=what),
                            spec=spec, conf=conf, options={"method": method, "metric": metric, "threshold": threshold, "gate": gate,
                                                           "class_map": class_map, "class_agnostic": class_agnostic, "border": border},
                            allow_outside=allow_outside, timestamps=timestamps)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB)")

"""`sitesight compare A B --gt GT`: is B really better than A? Paired bootstrap verdict, JSON and page."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sitesight.progress import make_console

app = typer.Typer()  # this module's top-level commands; sitesight.cli.main merges them into the root


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


@app.command("compare")
def compare(
    a: Path = typer.Argument(..., metavar="A", help="Model A (the current one): a detection run folder or COCO results .json, or a classification / anomaly predictions CSV or run folder."),
    b: Path = typer.Argument(..., metavar="B", help="Model B (the candidate), of the same kind as A."),
    gt: Path | None = typer.Option(None, "--gt", help="Ground truth (any format) — needed for detections."),
    spec: str | None = typer.Option(None, "--spec", help="Post-processing spec for both runs (RUN/sweep.csv:best, a row, JSON). Default: each run's own sweep.csv best row, else the default spec at its best-F1 confidence."),
    spec_a: str | None = typer.Option(None, "--spec-a", help="Spec for A only (overrides --spec)."),
    spec_b: str | None = typer.Option(None, "--spec-b", help="Spec for B only (overrides --spec)."),
    conf: float | None = typer.Option(None, "--conf", help="Operating confidence for both (F1, precision, recall)."),
    metric: str | None = typer.Option(None, "--metric", help="Headline metric for detections: AP (default), AP50, F1, recall, AP[small], F1[person] …"),
    far: float = typer.Option(0.05, "--far", help="Anomaly: false-alarm rate for recall@FAR."),
    resamples: int = typer.Option(2000, "--resamples", min=100, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    out: Path = typer.Option(Path("compare.json"), "--out", "-o", help="JSON file to write."),
    html: Path | None = typer.Option(None, "--html", help="Also write the comparison page (self-contained HTML)."),
    show: int = typer.Option(20, "--show", min=0, help="Metrics listed in the terminal (the JSON holds all)."),
    allow_outside: bool = typer.Option(False, "--allow-outside-root", help="Read run.json artefacts that resolve outside their run folder (refused by default)."),
) -> None:
    """Paired bootstrap over frames (and cameras) of ΔAP, ΔAP50, ΔF1 — or Δ macro F1, or ΔAUROC — with 95 % intervals
    and a verdict: better, worse, or no detectable difference (and how many more frames would tell)."""
    from rich.markup import escape

    from sitesight.report.paired_runs import compare_paths

    console = make_console()
    with console.status("matching both models once, then resampling…"):
        cmp = compare_paths(a, b, gt=gt, spec=spec, spec_a=spec_a, spec_b=spec_b, conf=conf, metric=metric,
                            false_alarm_rate=far, n_resamples=resamples, seed=seed, allow_outside=allow_outside)
    colour = {"better": "green", "worse": "red"}.get(cmp.verdict, "yellow")
    console.print(f"[bold {colour}]verdict: {cmp.verdict}[/] — {escape(cmp.sentence())}")
    console.print(f"data: {escape(cmp.data_line())}")
    ops = cmp.settings.get("operating_points")
    if ops:
        for name, op in ops.items():
            console.print(escape(f"operating point {name}: conf {op['conf']:.3g} ({op['source']})"))
    for note in cmp.notes:
        console.print(escape(f"note: {note}"))
    table = Table(title=f"B − A, 95 % intervals ({cmp.unit} bootstrap)")
    for col in ("metric", escape(cmp.a), escape(cmp.b), "Δ", "95 % interval", "verdict", "more frames needed"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for e in cmp.estimates[:show]:
        more = f"{e.more_frames:,}" if e.more_frames is not None and e.verdict == "no detectable difference" else "–"
        interval = "–" if e.lo is None else f"[{e.lo:+.3f}, {e.hi:+.3f}]"
        table.add_row(escape(e.metric), _fmt(e.a), _fmt(e.b), _fmt(e.delta, True), interval, e.verdict, more)
    console.print(table)
    cmp.write_json(out)
    console.print(f"json: {out}")
    if html is not None:
        from sitesight.report.verdict import write_comparison_page

        write_comparison_page(cmp, html)
        console.print(f"page: {html}")

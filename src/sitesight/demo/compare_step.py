"""The demo's comparison step: is one model really better than the other? `sitesight compare` on two runs
of the demo, with the verdict in the terminal, a JSON file and a page."""

from __future__ import annotations

from pathlib import Path

from sitesight.demo.context import DemoContext


def step_compare(ctx: DemoContext) -> None:
    """Paired bootstrap between the mining step's two stand-in runs (A blind in dark frames, B blind to
    small workers) on the synth ground truth: ΔAP, ΔAP50, ΔF1 with 95 % intervals and the verdict,
    written as ``compare/compare.json`` and ``compare/compare.html`` (what ``sitesight compare A B --gt GT
    --html`` writes)."""
    from rich.markup import escape

    from sitesight.formats.coco import write_coco
    from sitesight.report.paired_runs import compare_paths
    from sitesight.report.verdict import write_comparison_page

    assert ctx.dataset is not None
    runs = ctx.results.get("mining", {}).get("runs") or {}
    a = Path(runs.get("A_blind_dark", ctx.out / "mining" / "run_A_blind_dark"))
    b = Path(runs.get("B_blind_small", ctx.out / "mining" / "run_B_blind_small"))
    if not (a / "manifest.json").is_file() or not (b / "manifest.json").is_file():
        ctx.console.print("  [yellow]no two runs to compare (the mining step did not write them)[/yellow]")
        return
    out = ctx.out / "compare"
    out.mkdir(parents=True, exist_ok=True)
    gt = write_coco(ctx.dataset, out / "ground_truth_coco.json")
    cmp = compare_paths(a, b, gt=gt, n_resamples=2000, seed=ctx.seed, names=("A_blind_dark", "B_blind_small"))
    json_path = cmp.write_json(out / "compare.json")
    page = write_comparison_page(cmp, out / "compare.html")
    ctx.console.print(f"  [bold]verdict: {cmp.verdict}[/bold] — {escape(cmp.sentence())}")
    ctx.console.print(f"  {escape(cmp.data_line())}")
    for e in cmp.estimates[:5]:
        ctx.console.print(f"    {escape(e.sentence())}", highlight=False)
    ctx.console.print(f"  → {json_path}, {page}  (same as: sitesight compare {a} {b} --gt {gt} --html {page})")
    ctx.results["compare"] = {"verdict": cmp.verdict, "primary": cmp.primary, "sentence": cmp.sentence(),
                              "json": str(json_path), "html": str(page), "a": str(a), "b": str(b)}

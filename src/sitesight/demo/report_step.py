"""The demo's last step: one HTML report over every run the other steps made."""

from __future__ import annotations

from pathlib import Path

from sitesight.demo.context import DemoContext


def step_report(ctx: DemoContext) -> None:
    """One self-contained HTML page over every run the demo made: ``ctx.out/report.html``.

    Runs are found from ``ctx.results``: an entry with ``"report_run"`` (a folder `sitesight.report`
    reads) is used as it is; the RoI head, the stand-in evaluation and the sliced run are wired here.
    """
    from sitesight.formats.coco import write_coco
    from sitesight.report import build_report, write_run_info

    assert ctx.dataset is not None
    folder = ctx.out / "report_inputs"
    folder.mkdir(parents=True, exist_ok=True)
    gt = write_coco(ctx.dataset, folder / "ground_truth_coco.json")
    runs: list[Path] = []
    if "roi_head" in ctx.results:
        runs.append(ctx.out / "roi_head")
    if "evaluation" in ctx.results and (ctx.out / "eval" / "standin_eval.json").is_file():
        runs.append(write_run_info(folder / "standin_eval", kind="detection", name="stand-in evaluation",
                                   artefacts={"evaluation": ctx.out / "eval" / "standin_eval.json", "gt": gt}).parent)
    sliced = ctx.results.get("sliced")
    if sliced:
        best = sliced["best"]
        artefacts = {"predictions": sliced["run"], "gt": gt}
        if (Path(sliced["run"]) / "sweep.csv").is_file():
            artefacts["sweep"] = Path(sliced["run"]) / "sweep.csv"
        runs.append(write_run_info(folder / "sliced", kind="detection", name=f"sliced run ({'IoU-aware detector' if 'detector' in ctx.results else 'stand-in detector'})", artefacts=artefacts,
                                   config={"conf": best["conf"], "iou": 0.5, "spec": best,
                                           "note": "the run post-processed with the sweep's best row (its spec)"}).parent)
    runs += [Path(r["report_run"]) for r in ctx.results.values() if isinstance(r, dict) and r.get("report_run")]
    # the report inputs point at files the demo wrote elsewhere under ctx.out (the evaluation, the sliced
    # run, one ground truth for both): consent to artefacts outside each run folder, as --allow-outside-root does
    path = build_report(runs, ctx.out / "report.html", title=f"sitesight demo ({ctx.frames} synthetic frames, seed {ctx.seed})",
                        allow_outside=True)
    ctx.console.print(f"  {len(runs)} runs → {path} ({path.stat().st_size / 1e6:.2f} MB)")
    ctx.results["report"] = {"html": str(path), "runs": [str(r) for r in runs]}

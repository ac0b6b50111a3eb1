"""The demo's scale step: the sliced run's sweep again on Ray Data, which must give the local table.

On a cluster the same call is ``sitesight sweep RUN --gt GT --engine ray --ray-address auto``; here a
local Ray starts with this machine's CPUs (docs/scale.md).
"""

from __future__ import annotations

from sitesight.demo.context import DemoContext


def step_scale(ctx: DemoContext) -> None:
    """Sweep the sliced step's stored run locally and on Ray (tasks over its shards, counts reduced on the
    driver) and check that every row's TP / FP / FN agree; skipped with the install line without Ray."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        ctx.console.print("  [yellow]skipped: Ray is not installed (pip install 'sitesight[ray]')[/yellow]")
        return
    sliced = ctx.results.get("sliced")
    if sliced is None or ctx.dataset is None:
        ctx.console.print("  [yellow]skipped: no sliced run to sweep[/yellow]")
        return
    import time

    import ray

    from sitesight.engines.ray import RayOptions
    from sitesight.engines.ray_runs import sweep_run_ray
    from sitesight.sliced.gate import GateParams
    from sitesight.sliced.store import load_run
    from sitesight.sliced.sweep import align_gt, merge_grid, sweep_run

    truth = ctx.dataset
    if "detector" in ctx.results:
        from sitesight.models.detector.train import select_classes

        truth = select_classes(ctx.dataset, ctx.results["detector"]["class_names"])
    run = load_run(sliced["run"])
    grid = {"merges": merge_grid(["nms", "greedy_nmm"], ["iou"], [0.5]), "confs": [0.3, 0.5],
            "gates": [None, GateParams(r=40, conf=0.2)], "class_names": truth.class_names}
    local = sweep_run(run, align_gt(run, truth), **grid)
    started = ray.is_initialized()
    t0 = time.perf_counter()
    try:
        remote = sweep_run_ray(run.run_dir, truth, **grid, options=RayOptions())
    finally:
        if not started:
            ray.shutdown()
    counts = [[(r.tp, r.fp, r.fn) for r in result.rows] for result in (local, remote)]
    same = counts[0] == counts[1]
    ctx.console.print(f"  {len(local.rows)} rows on Ray Data in {time.perf_counter() - t0:.1f} s (Ray start-up included): "
                      f"{'identical to' if same else 'DIFFERENT FROM'} the local sweep")
    ctx.console.print(f"  same as: sitesight sweep {run.run_dir} --gt GT --engine ray   (--ray-address auto on a cluster)")
    if not same:
        raise AssertionError(f"sweep on Ray differs from the local sweep: {counts}")
    ctx.results["scale"] = {"rows": len(local.rows), "identical": same}

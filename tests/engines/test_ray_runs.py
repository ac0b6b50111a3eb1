"""`sweep`, `eval` and `mine` on Ray Data against the local functions on the same stored run.

The local engine is the reference (its own tests compare it with pycocotools / a hand matcher):
Ray must give the identical table, built from per-partition counts.
"""

from __future__ import annotations

from tests.engines.scenes import stored_run_and_labels

from sitesight.engines.ray import RayOptions
from sitesight.sliced.gate import GateParams
from sitesight.sliced.store import load_run
from sitesight.sliced.sweep import align_gt, merge_grid, sweep_run


def test_sweep_on_ray_equals_the_local_sweep(ray_session, tmp_path):
    from sitesight.engines.ray_runs import sweep_run_ray

    dataset = stored_run_and_labels(tmp_path / "run", 30, labelled_every=2)  # half the frames unlabelled
    merges = merge_grid(["nms", "greedy_nmm"], ["iou", "ios"], [0.5])
    grid = {"merges": merges, "confs": [0.2, 0.4], "gates": [None, GateParams(40, 0.2)], "iou": 0.5}
    run = load_run(tmp_path / "run")
    local = sweep_run(run, align_gt(run, dataset), class_names=dataset.class_names, **grid)
    seen = []
    ray = sweep_run_ray(tmp_path / "run", dataset, class_names=dataset.class_names, frames_per_task=4,
                        options=RayOptions(), on_progress=seen.append, **grid)
    assert ray == local and len(ray.rows) == 16 and local.frames == 15
    assert sum(seen) == 15 and len(seen) >= 3  # several tasks, each a few labelled frames
    assert min(r.tp for r in local.rows) > 10 and max(r.fp for r in local.rows) > 10  # not a trivial table


def test_cli_sweep_engine_ray_writes_the_local_table(ray_session, tmp_path, capsys):
    from sitesight.cli.main import main
    from sitesight.formats.coco import write_coco

    dataset = stored_run_and_labels(tmp_path / "run", 12, seed=1)
    write_coco(dataset, tmp_path / "gt.json")
    common = ["sweep", str(tmp_path / "run"), "--gt", str(tmp_path / "gt.json"), "--method", "nms,greedy_nmm",
              "--metric", "ios", "--threshold", "0.5", "--conf", "0.3,0.5", "--gate", "r=40,conf=0.2"]
    assert main([*common, "--out", str(tmp_path / "local.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--engine", "ray"]) == 0
    local = (tmp_path / "local.csv").read_text()
    assert local == (tmp_path / "ray.csv").read_text() and len(local.splitlines()) == 1 + 8
    assert "over 12 frames" in capsys.readouterr().out

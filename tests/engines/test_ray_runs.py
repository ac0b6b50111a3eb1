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
    assert ray.rows == local.rows and ray.to_dict() == local.to_dict()  # gate effect per size bucket included
    assert len(ray.rows) == 16 and local.frames == 15 and ray.best == local.best
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


def _plain(value):
    import json

    return json.loads(json.dumps(value, default=lambda v: v.tolist()))


def test_eval_det_and_coco_on_ray_equal_the_local_evaluation(ray_session, tmp_path):
    import numpy as np

    from sitesight.engines.ray_eval import evaluate_coco_pred_ray, evaluate_det_ray
    from sitesight.sliced.evaluate import evaluate_coco_pred, evaluate_det
    from sitesight.sliced.gate import GateParams
    from sitesight.sliced.spec import PostprocessSpec

    dataset = stored_run_and_labels(tmp_path / "run", 24, seed=2, labelled_every=3)
    spec = PostprocessSpec(conf=0.3, method="nms", metric="iou", threshold=0.5, gate=GateParams(40, 0.2))
    det = {"spec": spec, "iou": 0.5, "thresholds": [0.2, 0.4, 0.6], "target_recall": 0.5}
    local = evaluate_det(dataset, tmp_path / "run", **det)
    ray = evaluate_det_ray(dataset, tmp_path / "run", **det)
    assert _plain(ray) == _plain(local)
    assert local["images"] == 8 and local["tp"] > 5 and local["fp"] > 0 and local["errors"]["ap"] > 0
    coco_local, scored_local = evaluate_coco_pred(dataset, tmp_path / "run", spec=spec)
    coco_ray, scored_ray = evaluate_coco_pred_ray(dataset, tmp_path / "run", spec=spec, options=RayOptions())
    np.testing.assert_array_equal(coco_ray.stats, coco_local.stats)
    assert _plain(coco_ray.to_dict()) == _plain(coco_local.to_dict()) and scored_ray.record() == scored_local.record()
    assert 0 < coco_local.stats[1] <= 1  # AP50 of a real table, not an empty one


def test_cli_eval_det_engine_ray_writes_the_local_json(ray_session, tmp_path):
    from sitesight.cli.main import main
    from sitesight.formats.coco import write_coco

    dataset = stored_run_and_labels(tmp_path / "run", 10, seed=4)
    write_coco(dataset, tmp_path / "gt.json")
    common = ["eval", "det", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "run"), "--conf", "0.3"]
    assert main([*common, "--json", str(tmp_path / "local.json")]) == 0
    assert main([*common, "--json", str(tmp_path / "ray.json"), "--engine", "ray"]) == 0
    local = (tmp_path / "local.json").read_text()
    assert local == (tmp_path / "ray.json").read_text() and '"tp": ' in local
    assert main([*common[:5], str(tmp_path / "gt.json"), "--engine", "ray"]) == 2  # a results file is read locally


def test_mine_on_ray_writes_the_local_mined_folder(ray_session, tmp_path):
    import json

    import pyarrow.parquet as pq

    from sitesight.engines.ray_mine import mine_runs_ray
    from sitesight.mining.mad import Handoff, mine_runs
    from sitesight.sliced.spec import PostprocessSpec

    # two "models" over the same 40 frames, sharded differently (the runs are co-partitioned by frame)
    stored_run_and_labels(tmp_path / "a", 40, seed=5, frames_per_shard=4)
    stored_run_and_labels(tmp_path / "b", 40, seed=6, frames_per_shard=3)
    runs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    # not the default post-processing: every stage differs (conf, merge, border rule, gate)
    spec = PostprocessSpec(conf=0.3, method="nms", metric="iou", threshold=0.6, border=False, gate=GateParams(40, 0.2))
    common = {"budget": 8, "handoff": Handoff(class_names=("person", "helmet", "head"), package=False), "seed": 3, "spec": spec}
    local = mine_runs(runs, tmp_path / "local", **common)
    ray = mine_runs_ray(runs, tmp_path / "ray", frames_per_task=7, options=RayOptions(), **common)
    assert ray.mined.tolist() == local.mined.tolist() and ray.control.tolist() == local.control.tolist()
    assert local.mined.size >= 4
    for name in ("ranking.csv", "why.json", "control.csv", "scores.parquet", "boxes.parquet", "manifest.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    boxes = pq.read_table(tmp_path / "ray" / "boxes.parquet")
    assert manifest["spec"] == spec.to_dict() == json.loads(boxes.schema.metadata[b"sitesight.spec"])
    assert boxes.num_rows and min(boxes.column("score").to_pylist()) >= 0.3
    from sitesight.cli.main import main

    cli = ["mine", "--run", f"a={tmp_path / 'a'}", "--run", f"b={tmp_path / 'b'}", "--budget", "8", "--seed", "3", "--no-package",
           "--classes", "person,helmet,head", "--conf", "0.3", "--method", "nms", "--metric", "iou", "--threshold", "0.6",
           "--no-border", "--gate", "r=40,conf=0.2", "--class-map", "head=helmet"]
    assert main([*cli, "--out", str(tmp_path / "cli-ray"), "--engine", "ray"]) == 0
    assert main([*cli, "--out", str(tmp_path / "cli-local")]) == 0
    for name in ("ranking.csv", "why.json", "control.csv", "scores.parquet", "boxes.parquet", "manifest.json"):
        assert (tmp_path / "cli-ray" / name).read_bytes() == (tmp_path / "cli-local" / name).read_bytes(), name
    mapped = pq.read_table(tmp_path / "cli-ray" / "boxes.parquet").column("class_id").to_pylist()
    assert 2 not in mapped and 1 in mapped  # head boxes became helmet boxes on both engines
    assert main([*cli, "--out", str(tmp_path / "cli"), "--engine", "ray", "--dedup-images"]) == 2  # hashing every image is a local job

"""Stored runs → pool → `sitesight mine` → labels → `sitesight mine verdict`, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sitesight import Dataset, Detections, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco
from sitesight.mining.pool import load_flat_run, load_pool
from sitesight.sliced.border import MergeSpec, postprocess_frame, slices_of
from sitesight.sliced.standin import standin_raw
from sitesight.sliced.store import load_run, write_run

from .planted import CLASSES, planted_pool


def _write_runs(tmp_path, p, with_probs: bool = False):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    keys = []
    for i in range(len(p.keys)):
        path = frames_dir / f"cam{i % 4}_{20240101 + i // 400}T{(i // 4) % 24:02d}{(i * 7) % 60:02d}00.jpg"
        Image.new("RGB", (32, 18), (i % 255, 80, 80)).save(path)
        keys.append(str(path))
    runs = {}
    for name, dets in p.preds.items():
        if with_probs:
            dets = [d.with_attributes(safety_rope_probs=np.full((len(d), 3), 1 / 3, np.float32)) for d in dets]
        write_run(tmp_path / f"run_{name}", list(zip(keys, p.image_wh, strict=True)), dets, model=f"stand-in {name}", parameters={})
        runs[name] = tmp_path / f"run_{name}"
    return keys, runs


def test_load_pool_reads_stored_runs_exactly(tmp_path):
    p = planted_pool(30, seed=3)
    keys, runs = _write_runs(tmp_path, p, with_probs=True)
    pool = load_pool(runs, conf=0.0, class_names=CLASSES)
    assert pool.keys.tolist() == keys and pool.n_frames == 30
    assert pool.camera[1] == "cam1" and np.isfinite(pool.timestamp).all()
    for name, dets in p.preds.items():
        flat = pool.runs[name]
        for f in (0, 7, 29):
            d = flat.frame_detections(f)
            np.testing.assert_array_equal(d.xyxy, dets[f].xyxy)
            np.testing.assert_array_equal(d.score, dets[f].score)
            np.testing.assert_array_equal(d.class_id, dets[f].class_id)
        assert flat.probs is not None and flat.probs.shape == (len(flat), 3)
    assert len(load_pool(runs, conf=0.5).runs["A"]) < len(pool.runs["A"])  # faint boxes dropped


def test_sliced_run_is_post_processed_like_the_exporter(tmp_path):
    rng = np.random.default_rng(0)
    gt = [Detections(xyxy=[[600, 300, 640, 400], [100, 100, 140, 200]], class_id=[0, 0]) for _ in range(3)]
    raws = [standin_raw(g, (1920, 1080), rng=rng) for g in gt]
    params = {"slice_wh": [640, 640], "overlap_ratio": [0.2, 0.2], "full_frame": True}
    write_run(tmp_path / "run", [(f"f{i}.jpg", (1920, 1080)) for i in range(3)], raws, model="stand-in", parameters=params)
    _, _, flat = load_flat_run(tmp_path / "run", conf=0.3)
    run = load_run(tmp_path / "run")
    for f, (rec, raw) in enumerate(zip(run.frames, run.raw, strict=True)):  # the per-frame reference
        want, _ = postprocess_frame(raw, slices_of(rec.image_wh, run.parameters), rec.image_wh, conf=0.3, merge_spec=MergeSpec())
        np.testing.assert_allclose(flat.frame_detections(f).xyxy, want.xyxy)


def test_cli_mine_then_verdict(tmp_path, capsys):
    p = planted_pool(160, seed=5)
    keys, runs = _write_runs(tmp_path, p)
    out = tmp_path / "MINED"
    args = ["mine", *[f"--run={n}={r}" for n, r in runs.items()], "--budget", "30", "--out", str(out),
            "--classes", ",".join(CLASSES), "--preannotate", "C", "--per-window", "5"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "sitesight-mined" and set(manifest["pairs"]) == {"A~B", "A~C", "B~C"}
    header = (out / "ranking.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["rank", "image", "score"]
    why = json.loads((out / "why.json").read_text())
    assert why and why[0]["disputes"] and {"reason", "boxes"} <= set(why[0]["disputes"][0])
    assert json.loads((out / "run.json").read_text())["kind"] == "mining"
    parts = manifest["cvat_parts"]
    assert parts and (tmp_path / parts[0] / "annotations.xml").is_file()
    # labels come back for the mined and control frames
    wanted = {k for pr in manifest["pairs"].values() for k in pr["frames"]} | set(manifest["control"])
    samples = [Sample(path=k, image_wh=p.image_wh[i], gt=p.gts[i]) for i, k in enumerate(keys) if k in wanted]
    labels = write_coco(Dataset(class_names=CLASSES, samples=tuple(samples)), tmp_path / "labels.json")
    assert main(["mine", "verdict", str(out), "--gt", str(labels)]) == 0
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["ranking"] == ["C", "B", "A"] and verdict["labelled_frames"] == len(wanted)
    assert "C" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["mine", "--run", "A", "--run", "B=x", "--out", str(tmp_path / "o")]) == 1
    assert "NAME=RUN_DIR" in capsys.readouterr().err
    assert main(["mine", "--run", f"A={tmp_path}", "--run", f"B={tmp_path}", "--out", str(tmp_path / "o")]) == 1
    assert "manifest.json" in capsys.readouterr().err
    assert main(["mine", "verdict", str(tmp_path), "--gt", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_frame_metadata_follows_the_capture_name_rules():
    from sitesight.curation.captures import capture_from_path
    from sitesight.mining.pool import frame_metadata

    keys = ["/d/cam03_20240512T081500.jpg", "/d/cam03-20240512_081500_250.jpg", "/x/gate2_1715501700.jpg",
            "/x/gate2_1715501700123.png", "/site/north/frame_000001.jpg", "/d/cam1_20241399T000000.jpg", "rel.jpg"]
    camera, ts = frame_metadata(keys)
    for k, c, t in zip(keys, camera, ts, strict=True):
        ref = capture_from_path(k, use_mtime=False)
        assert c == (ref.camera_id or None)
        assert (np.isnan(t) and ref.timestamp is None) or t == pytest.approx(ref.timestamp)


def test_cli_single_model_hard_frames(tmp_path):
    p = planted_pool(40, seed=2)
    keys, runs = _write_runs(tmp_path, p)
    samples = [Sample(path=k, image_wh=p.image_wh[i], gt=p.gts[i]) for i, k in enumerate(keys)]
    labels = write_coco(Dataset(class_names=CLASSES, samples=tuple(samples)), tmp_path / "labels.json")
    out = tmp_path / "hard.csv"
    assert main(["mine", "single", str(runs["A"]), "--gt", str(labels), "--out", str(out), "--top", "5"]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert len(rows) == 5
    dark_keys = {keys[i] for i in np.flatnonzero(p.dark)}
    assert all(r[1] in dark_keys for r in rows[: min(5, int(p.dark.sum()))])  # A misses everything in dark frames


def test_disputes_name_the_boxes_in_dispute():
    from sitesight.mining.discrepancy import pair_discrepancy
    from sitesight.mining.handoff import disputes
    from sitesight.mining.pool import pool_from_detections

    a = [Detections(xyxy=[[0, 0, 50, 120], [200, 0, 250, 120]], score=[0.9, 0.8], class_id=[0, 0])]
    b = [Detections(xyxy=[[200, 0, 250, 120], [400, 0, 450, 120]], score=[0.85, 0.7], class_id=[1, 0])]
    pool = pool_from_detections(["f.jpg"], [(640, 480)], {"A": a, "B": b}, class_names=CLASSES)
    d = disputes(pool, pair_discrepancy(pool, "A", "B", rules=None), 0)
    assert [x["reason"] for x in d] == ["only A", "class flip", "only B"]
    assert d[1]["boxes"][0]["class"] == "person" and d[1]["boxes"][1]["class"] == "helmet"


@pytest.mark.parametrize(
    ("manifest", "where"),
    [(None, None), ("{", "line 1"), ({"format": "other"}, "format"), ({"format": "sitesight-run", "format_version": 99}, "format_version")],
)
def test_flat_loader_refuses_bad_manifests_like_load_run(tmp_path, manifest, where):
    from sitesight.errors import InputError

    run = write_run(tmp_path / "run", [("a.jpg", (32, 18))], [Detections(xyxy=[[1, 1, 5, 5]], score=[0.9])], model="m", parameters={})
    path = run.run_dir / "manifest.json"
    if manifest is None:
        path.unlink()
    else:
        path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    errors = []
    for load in (load_run, load_flat_run):
        with pytest.raises(InputError) as info:
            load(run.run_dir)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    if where is not None:
        assert where in errors[0]

"""`detect` on Ray Data against the local engine: the same run, after a resume and after a killed worker.

The local engine (`sitesight.sliced.predict.detect_to_run`, in this process) is the reference: its
run is what the Ray engine must reproduce box for box, and its exported COCO results file byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.engines.scenes import RectDetector, make_rect_detector, write_frames

from sitesight.sliced.export import export_coco_results, run_dataset
from sitesight.sliced.frames import list_frames
from sitesight.sliced.predict import detect_to_run
from sitesight.sliced.store import load_run, read_shards

# two CPUs in the test session: half a CPU per stage so two detector actors fit
SMALL = {"cpus_per_worker": 0.5, "decode_cpus": 0.5}
SLICED = {"model": "rect", "slice_wh": (160, 160), "overlap_ratio": (0.2, 0.2), "batch_size": 5, "frames_per_shard": 3,
          "imgsz": 128}  # slices resized 160 -> 128 for the model, boxes scaled back


def _same_run(a, b) -> None:
    assert a.manifest["frames"] == b.manifest["frames"] and a.parameters == b.parameters
    assert a.class_names == b.class_names == ("a", "b", "c")
    assert a.frames == b.frames and a.skipped == b.skipped
    assert a.manifest["skipped"] == b.manifest["skipped"] == [{"index": s.index, "key": s.key, "reason": s.reason} for s in a.skipped]
    assert len(a.raw) == len(b.raw) and all(x.equals(y) for x, y in zip(a.raw, b.raw, strict=True))


def _coco(run, path):
    dataset, _ = run_dataset(run, conf=0.3, class_names=["a", "b", "c"])
    return export_coco_results(dataset, path).read_bytes()


def _frames_once(run_dir) -> None:
    _, metas, _ = read_shards(run_dir)
    indices = [row[0] for meta in metas for row in meta]
    assert len(indices) == len(set(indices)), "a frame is stored in two shards"


def test_ray_detect_equals_local_and_resumes_a_local_run(ray_session, tmp_path):
    from sitesight.engines.ray import RayOptions, detect_to_run_ray

    write_frames(tmp_path / "frames", 10)
    (tmp_path / "frames" / "broken.png").write_bytes(b"\x89PNG broken")
    refs = list_frames([tmp_path / "frames"])
    local = detect_to_run(refs, RectDetector(), tmp_path / "local", **SLICED)
    options = RayOptions(workers=2, chunks_per_call=2, **SMALL)  # two chunks' slices share detector batches
    summary = detect_to_run_ray(refs, make_rect_detector, tmp_path / "ray", options=options, **SLICED)
    assert (summary.processed, summary.boxes) == (local.processed, local.boxes) == (10, local.boxes)
    assert local.boxes > 40 and [s.key for s in summary.skipped] == [s.key for s in local.skipped] == [str(refs[0].path)]
    a, b = load_run(tmp_path / "local"), load_run(tmp_path / "ray")
    _same_run(a, b)
    assert [e["key"] for e in b.manifest["skipped"]] == [str(refs[0].path)]  # listed in the manifest by both engines
    assert {int(s) for d in b.raw for s in d.attributes["source"]} == set(range(-1, 9))  # 3x3 slices + full frame
    assert _coco(a, tmp_path / "a.json") == _coco(b, tmp_path / "b.json")
    _frames_once(tmp_path / "ray")

    # resume: a local run that lost two shards (a kill) is finished by Ray, frames done are not redone
    shutil.copytree(tmp_path / "local", tmp_path / "resumed")
    shards = sorted((tmp_path / "resumed" / "shards").glob("shard-*.parquet"))
    for path in shards[1:3]:
        path.unlink()
    resumed = detect_to_run_ray(refs, make_rect_detector, tmp_path / "resumed", options=RayOptions(workers=1, **SMALL), **SLICED)
    assert resumed.already_done == 11 - 6 and resumed.processed == 6
    _same_run(a, load_run(tmp_path / "resumed"))
    _frames_once(tmp_path / "resumed")


def test_killed_worker_is_retried_and_the_run_is_identical(ray_session, tmp_path):
    from sitesight.engines.ray import RayOptions, detect_to_run_ray

    write_frames(tmp_path / "frames", 9, seed=3, kill_at=5)
    refs = list_frames([tmp_path / "frames"])
    detect_to_run(refs, RectDetector(), tmp_path / "local", **SLICED)
    marker = tmp_path / "killed.pid"
    factory = _partial(make_rect_detector, str(marker))
    detect_to_run_ray(refs, factory, tmp_path / "ray", options=RayOptions(workers=1, **SMALL), **SLICED)
    assert marker.is_file()  # the actor did SIGKILL itself on frame 5 (its pid is in the file)
    _same_run(load_run(tmp_path / "local"), load_run(tmp_path / "ray"))
    _frames_once(tmp_path / "ray")


def _partial(fn, *args):
    from functools import partial

    return partial(fn, *args)


def test_cli_detect_engine_ray_exports_what_the_local_engine_exports(ray_session, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from sitesight.cli.main import main

    class TinyYolo(torch.nn.Module):  # random weights, YOLOv8 output layout (B, 4 + 3, anchors)
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 7, 3, stride=8, padding=1)

        def forward(self, x):
            y = self.conv(x).flatten(2)
            return torch.cat([y[:, :2].sigmoid() * 64, y[:, 2:4].sigmoid() * 24, y[:, 4:].sigmoid()], dim=1)

    torch.manual_seed(0)
    model = tmp_path / "tiny.onnx"
    torch.onnx.export(TinyYolo().eval(), (torch.zeros(1, 3, 64, 64),), str(model), input_names=["images"],
                      output_names=["output0"], dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                      dynamo=False, opset_version=17)
    write_frames(tmp_path / "frames", 5, wh=(200, 150), seed=7)
    common = [str(tmp_path / "frames"), "--model", f"onnx:{model}", "--slice", "96", "--conf", "0.3"]
    assert main(["detect", *common, "--out", str(tmp_path / "local")]) == 0
    # the Ray run reads the frames as storage URLs: file:// takes the pyarrow-filesystem path s3:// and gs:// take
    ray_frames = [f"file://{tmp_path / 'frames'}", *common[1:]]
    assert main(["detect", *ray_frames, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert "5 frames processed" in capsys.readouterr().err
    for name in ("local", "ray"):
        assert main(["export", str(tmp_path / name), "--coco", str(tmp_path / f"{name}.json"), "--conf", "0.5"]) == 0
    local, ray = (tmp_path / "local.json").read_bytes(), (tmp_path / "ray.json").read_bytes()
    assert len(local) > 100 and local == ray
    assert main(["detect", *common, "--out", str(tmp_path / "x"), "--engine", "spark"]) == 2
    assert main(["detect", *ray_frames, "--out", str(tmp_path / "x")]) == 2  # URLs need the Ray engine
    keys = load_run(tmp_path / "ray").manifest["frames"]
    assert keys == [f"file://{p}" for p in load_run(tmp_path / "local").manifest["frames"]]
    assert np.all([d.equals(e) for d, e in zip(load_run(tmp_path / "local").raw, load_run(tmp_path / "ray").raw, strict=True)])


def test_ray_detect_with_hostile_frame_names_writes_only_inside_its_run(ray_session, tmp_path):
    """Odd but legal frame names (``..x``, 250 characters, a line break, a leading dash) and hostile class
    names through the Ray engine: the same run as the local engine, and nothing written outside ``out``."""
    from sitesight.engines.ray import RayOptions, detect_to_run_ray

    paths = write_frames(tmp_path / "frames", 4)
    for path, name in zip(paths, ["..x.png", "x" * 250 + ".png", "a\nb.png", "-rf.png"], strict=True):
        path.rename(path.parent / name)
    refs = list_frames([tmp_path / "frames"])
    classes = ["../../escaped", "/tmp/sitesight-evil-ray/abs", "..", "L" * 300]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    detect_to_run_ray(refs, make_rect_detector, tmp_path / "out", options=RayOptions(workers=1, **SMALL),
                      class_names=classes, **SLICED)  # fmt: skip
    created = sorted(set(str(p) for p in tmp_path.rglob("*")) - set(before))
    assert created and all(p.startswith(str(tmp_path / "out")) for p in created), created[:5]
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert not Path("/tmp/sitesight-evil-ray").exists()
    run = load_run(tmp_path / "out")
    assert list(run.class_names) == classes and sorted(Path(k).name for k in run.manifest["frames"]) == sorted(r.path.name for r in refs)
    local = detect_to_run(refs, RectDetector(), tmp_path / "local", class_names=classes, **SLICED)
    assert local.processed == 4 and all(x.equals(y) for x, y in zip(load_run(tmp_path / "local").raw, run.raw, strict=True))

"""The model, synthesis and remaining data commands fed hostile names: class names, attribute names,
image names in ground truth and in CSVs, odd but legal file and folder names on disk, and the
grid option that names sub-runs.

Commands: `train roi|cls|det|anomaly`, `predict roi|cls|anomaly`, `eval cls|anomaly --json`,
`synth`, `anomaly-parts`, `data convert --to txt`, `data dedup`, `data sample`. Nothing may be
created outside the command's output folders, and each ends in exit 0 or one ``error:`` line.
Models are tiny and random-initialised (one epoch) so the whole file stays within seconds a command.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fuzz.hostile import ABSOLUTE, LONG, run_checked

pytest.importorskip("torch")

# class and attribute names a label file can carry (no NUL: the CVAT XML cannot, and COCO refuses it)
HOSTILE_CLASSES = ["../../escaped", str(ABSOLUTE / "abs"), "..", LONG, "a\nb"]
ODD_FILES = ["..x", "x" * 240, "a\nb", "-rf", " lead"]  # legal names on disk that look like paths or options


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    yield tmp_path_factory.mktemp("hostile_models")
    shutil.rmtree(ABSOLUTE, ignore_errors=True)


@pytest.fixture
def case(sandbox, request, monkeypatch) -> Path:
    case = sandbox / request.node.name.replace("[", "_").replace("]", "")
    (case / "cwd" / "deep").mkdir(parents=True)
    (case / "secret.txt").write_text("not for the output")
    monkeypatch.chdir(case / "cwd" / "deep")
    return case


def _site_set(folder: Path, fmt: str) -> Path:
    """Three synthetic frames renamed to odd file names, classes and the rope attribute renamed hostile."""
    from sitesight.formats import write_dataset
    from sitesight.synth import write_site_dataset

    ds = write_site_dataset(folder, n_frames=3, seed=4, image_wh=(320, 180), n_cameras=1)
    samples = []
    for sample, odd in zip(ds.samples, ODD_FILES, strict=False):
        target = folder / f"{odd}.jpg"
        Path(sample.path).rename(target)
        samples.append(sample.replace(path=str(target)))
    names = tuple(HOSTILE_CLASSES[: len(ds.class_names) - 1]) + ("person",)  # the box class keeps a plain name
    person = ds.class_names.index("person")
    order = [i for i in range(len(ds.class_names)) if i != person] + [person]
    ds = ds.replace(samples=tuple(samples), class_names=tuple(names[order.index(i)] for i in range(len(names))))
    return write_dataset(ds, folder / ("annotations.xml" if fmt == "cvat" else "gt.json"), fmt)


@pytest.mark.timeout(180)
def test_train_and_predict_roi_with_hostile_class_names(case, capsys):
    xml = _site_set(case / "frames", "cvat")
    out = case / "out"
    code = run_checked(["train", "roi", str(xml), "--val", str(xml), "--box-class", "person", "--attribute", "safety_rope",
                        "--backbone", "tiny_cnn", "--random-init", "--frame-size", "160x96", "--epochs", "1", "--batch-size", "3",
                        "--no-augment", "--device", "cpu", "--workers", "0", "--out", str(out / "roi")], capsys, case, [out])  # fmt: skip
    assert code == 0
    code = run_checked(["predict", "roi", "--model", str(out / "roi" / "best.safetensors"), "--boxes", str(xml), "--device", "cpu",
                        "--out", str(out / "roi.csv")], capsys, case, [out])  # fmt: skip
    assert code == 0 and len((out / "roi.csv").read_text().splitlines()) > 1


@pytest.mark.timeout(180)
def test_train_det_with_hostile_class_names(case, capsys):
    gt = _site_set(case / "frames", "coco")
    out = case / "out"
    code = run_checked(["train", "det", str(gt), "--backbone", "tiny_pyramid", "--random-init", "--out-indices", "2,3",
                        "--extra-levels", "0", "--fpn-channels", "8", "--head-convs", "1", "--anchor-sizes", "16,32",
                        "--input-size", "96,160", "--epochs", "1", "--val-fraction", "0.34", "--device", "cpu", "--out", str(out / "det")],
                       capsys, case, [out])  # fmt: skip
    assert code == 0
    assert set(HOSTILE_CLASSES[:2]) <= set(json.loads((out / "det" / "best.json").read_text())["class_names"])  # names are data


@pytest.mark.timeout(180)
def test_train_and_predict_cls_with_odd_class_folders_and_a_hostile_grid(case, capsys):
    rng = np.random.default_rng(0)
    root = case / "tree"
    for k, name in enumerate(["..x", "a\nb", "x" * 240]):
        (root / name).mkdir(parents=True)
        for i, odd in enumerate(ODD_FILES[:4]):
            pixels = rng.integers(0, 80, (32, 32, 3)) + 80 * k
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{odd}{i}.png")
    out = case / "out"
    base = ["train", "cls", str(root), "--backbone", "tiny_cnn", "--random-init", "--resize", "32", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--workers", "0", "--val-fraction", "0.3"]  # fmt: skip
    assert run_checked([*base, "--out", str(out / "cls")], capsys, case, [out]) == 0
    assert run_checked(["predict", "cls", "--model", str(out / "cls" / "best.safetensors"), "--images", str(root), "--device", "cpu",
                        "--out", str(out / "cls.csv")], capsys, case, [out]) == 0  # fmt: skip
    # a grid value names a sub-run folder: a value that climbs out must not take the run with it
    grid = [*base, "--out", str(out / "grid"), "--grid", "backbone=tiny_cnn,../../../escaped/x," + str(ABSOLUTE / "g")]
    run_checked(grid, capsys, case, [out])
    bad_loss = [*base, "--out", str(out / "grid2"), "--grid", "loss=../../../escaped/x"]
    assert run_checked(bad_loss, capsys, case, [out]) == 1  # one line naming the grid run (was an 'unexpected' ValueError)


def test_grid_run_names_are_one_folder_each(tmp_path):
    from sitesight.models.grid import run_grid

    names = []
    run_grid({"backbone": ["hf-hub:org/x", "../../../escaped", "..", "a\\b"]}, lambda o, n: names.append(n) or {}, tmp_path / "g.csv")
    assert all((tmp_path / n).parent == tmp_path for n in names) and len(set(names)) == 4, names


@pytest.mark.timeout(180)
def test_anomaly_commands_with_odd_image_names(case, capsys):
    out = case / "out"
    parts = out / "parts"
    assert run_checked(["anomaly-parts", "--out", str(parts), "--train", "8", "--test-normal", "3", "--test-defect", "3", "--size", "32"],
                       capsys, case, [out]) == 0  # fmt: skip
    for i, path in enumerate(sorted((parts / "test").rglob("*.png"))):
        if "ground_truth" not in path.parts:
            path.rename(path.with_name(f"{ODD_FILES[i % len(ODD_FILES)]}{i}.png"))
    assert run_checked(["train", "anomaly", str(parts / "train"), "--method", "ae", "--epochs", "1", "--image-size", "32", "--depth", "2",
                        "--holdout", "0.25", "--device", "cpu", "--out", str(out / "model")], capsys, case, [out]) == 0  # fmt: skip
    assert run_checked(["predict", "anomaly", str(parts / "test"), "--model", str(out / "model" / "model.safetensors"), "--device", "cpu",
                        "--heatmaps", "2", "--out", str(out / "pred")], capsys, case, [out]) == 0  # fmt: skip
    assert {p.name for p in (out / "pred").iterdir()} <= {"scores.csv", "summary.json", "histogram.png", "heatmaps.png", "run.json"}


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_eval_cls_and_anomaly_json_with_hostile_names(case, capsys):
    out = case / "out"
    out.mkdir()
    classes = HOSTILE_CLASSES[:3]
    rows = [[classes[i % 3], HOSTILE_CLASSES[i % 5], *np.eye(3)[(i + (i % 4 == 0)) % 3]] for i in range(12)]
    cls_csv = _write_csv(case / "cls.csv", ["label", "image", *classes], rows)
    assert run_checked(["eval", "cls", "--pred", str(cls_csv), "--json", str(out / "cls.json")], capsys, case, [out]) == 0
    scores = [["anomalous" if i % 2 else "normal", HOSTILE_CLASSES[i % 5], 0.1 * i] for i in range(10)]
    an_csv = _write_csv(case / "an.csv", ["label", "image", "score"], scores)
    assert run_checked(["eval", "anomaly", "--scores", str(an_csv), "--json", str(out / "an.json")], capsys, case, [out]) == 0


def test_synth_and_data_commands_with_odd_names(case, capsys):
    out = case / "out"
    assert run_checked(["synth", str(out / "synth"), "-n", "2", "--size", "160x120", "--cameras", "1", "-f", "coco"], capsys, case, [out]) == 0
    src = out / "synth" / "annotations.json"
    doc = json.loads(src.read_text())
    for image, odd in zip(doc["images"], ("../../escaped", str(ABSOLUTE / "abs")), strict=False):
        image["file_name"] = f"{odd}.jpg"  # the txt writer names its files after the image stems
    hostile = case / "hostile.json"
    hostile.write_text(json.dumps(doc))
    frames = case / "frames"
    frames.mkdir()
    for k, camera in enumerate(["..", "-rf", "a\nb", "x" * 200]):  # camera names taken from the file names
        for t in range(2):
            Image.fromarray(np.full((24, 32, 3), 40 * k, np.uint8)).save(frames / f"{camera}__20260101T00000{t}.jpg")
    pattern = r"(?P<camera>.*)__(?P<ts>\d{8}T\d{6})"
    codes = []
    for argv in (["data", "convert", str(hostile), str(out / "txt"), "--to", "txt"],
                 ["data", "convert", str(src), str(out / "txt2"), "--to", "txt"],
                 ["data", "dedup", str(frames), "--pattern", pattern, "--report", str(out / "dedup.csv"), "--json", str(out / "dedup.json")],
                 ["data", "sample", str(frames), "--every", "1", "--pattern", pattern, "--out", str(out / "sample.txt")]):  # fmt: skip
        codes.append(run_checked(argv, capsys, case, [out]))
    assert codes[1:3] == [0, 0] and (out / "dedup.csv").is_file()
    assert codes[3] == 1 and not (out / "sample.txt").exists()  # a name with a line break cannot go into a one-per-line list


@pytest.mark.timeout(180)
def test_iou_head_rescore_and_eval_iou_aware_with_hostile_names(case, capsys):
    from sitesight.detections import Detections
    from sitesight.formats import read_dataset
    from sitesight.sliced.store import write_run

    gt = _site_set(case / "frames", "coco")
    ds = read_dataset(gt)
    rng = np.random.default_rng(0)
    raws = [Detections(xyxy=s.gt.xyxy + rng.normal(0, 0.05, s.gt.xyxy.shape) * np.tile(s.gt.xyxy[:, 2:] - s.gt.xyxy[:, :2], 2),
                       score=rng.uniform(0.3, 1, len(s.gt)), class_id=s.gt.class_id) for s in ds.samples]  # fmt: skip
    run = case / "run"
    write_run(run, [(str(ds.image_path(s)), s.image_wh) for s in ds.samples], raws, model="stand-in", parameters={"full_frame": True},
              class_names=ds.class_names)  # fmt: skip
    out = case / "out"
    assert run_checked(["train", "iou-head", str(run), "--gt", str(gt), "--frame-size", "160x96", "--epochs", "1", "--device", "cpu",
                        "--val-fraction", "0.34", "--out", str(out / "head")], capsys, case, [out, run]) == 0  # fmt: skip
    assert run_checked(["rescore", str(run), "--head", str(out / "head" / "iou_head.safetensors"), "--alpha", "0.5", "--device", "cpu",
                        "--out", str(out / "rescored")], capsys, case, [out, run]) == 0  # fmt: skip
    assert run_checked(["eval", "iou-aware", str(out / "rescored"), "--gt", str(gt), "--alpha", "0,1", "--no-oracle"],
                       capsys, case, [out, run]) == 0  # fmt: skip

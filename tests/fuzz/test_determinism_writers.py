"""Same inputs, same bytes, for every writer a user chains: synth, data convert (each format), a stored
run, export (COCO, CVAT), sweep (CSV, JSON), eval det|coco|cls|anomaly --json, report, mine, and the
curation writers (split, filter, mix, tile, package --zip, stats, validate) and compare.

Each command runs twice with the same inputs and the same output path (the first result is moved
aside before the second run, so a file that names its own output folder is no difference); every file
of both results is compared byte for byte. Creation times are written only when asked
(``--timestamps``; `test_timestamps_only_when_asked`).

Documented exceptions: none among these. Run shards were once named with a random token; they are
named by a hash of their frame indices now, so even the file names repeat (a retried writer of the
same frames replaces its own shard). Out of scope: training outputs (``history`` records seconds per
epoch) and benchmark results, which measure time.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from sitesight.cli.main import main


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
    return {(p.relative_to(folder).as_posix() if folder.is_dir() else p.name): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _no_creation_time(out: Path, argv: list[str]) -> None:
    """No file carries today's date (a creation time; minute-resolution stamps could repeat by luck)."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d").encode()
    files = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else [out]
    stamped = [p.name for p in files if today in p.read_bytes()]
    assert not stamped, (argv[:3], stamped[:5])


def _twice(argv: list[str], out: Path, capsys) -> dict[str, str]:
    """Run ``argv`` twice writing ``out``; return the digests of the first run (both must match)."""
    results = []
    for k in range(2):
        code = main(argv)
        assert code == 0, (argv[:3], capsys.readouterr().err[-1500:])
        capsys.readouterr()
        results.append(_digest(out))
        _no_creation_time(out, argv)
        if k == 0:
            aside = out.with_name(out.name + ".first")
            shutil.move(out, aside)
    shutil.rmtree(aside) if aside.is_dir() else aside.unlink()
    first, second = results
    assert first and sorted(first) == sorted(second), (argv[:3], sorted(set(first) ^ set(second))[:5])
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, (argv[:3], differ[:5])
    return first


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A synthetic labelled set, two stored runs made from its ground truth with noise, eval CSVs."""
    from sitesight.detections import Detections
    from sitesight.formats import read_dataset
    from sitesight.sliced.store import write_run

    root = tmp_path_factory.mktemp("determinism")
    assert main(["synth", str(root / "synth"), "-n", "4", "--size", "320x180", "--cameras", "2", "--seed", "5"]) == 0
    gt = root / "synth" / "annotations.xml"
    ds = read_dataset(gt)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        raws = []
        for s in ds.samples:
            jitter = rng.normal(0, 0.05, s.gt.xyxy.shape) * np.tile(s.gt.xyxy[:, 2:] - s.gt.xyxy[:, :2], 2)  # keeps boxes valid
            raws.append(Detections(xyxy=s.gt.xyxy + jitter, score=rng.uniform(0.2, 1, len(s.gt)), class_id=s.gt.class_id))
        write_run(root / f"run_{name}", [(str(ds.image_path(s)), s.image_wh) for s in ds.samples], raws, model=f"stand-in {name}",
                  parameters={"full_frame": True}, class_names=ds.class_names)
    with open(root / "cls.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "image", "a", "b"])
        for i in range(20):
            p = rng.dirichlet([1, 1])
            w.writerow(["a" if i % 2 else "b", f"img{i}.png", f"{p[0]:.4f}", f"{p[1]:.4f}"])
    with open(root / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "image", "score"])
        for i in range(20):
            w.writerow(["anomalous" if i % 3 == 0 else "normal", f"img{i}.png", f"{rng.uniform():.4f}"])
    return {"root": root, "gt": gt, "a": root / "run_a", "b": root / "run_b", "cls": root / "cls.csv", "scores": root / "scores.csv"}


def test_synth_and_convert_repeat_byte_for_byte(inputs, capsys):
    out = inputs["root"] / "out_data"
    _twice(["synth", str(out / "synth"), "-n", "3", "--size", "160x120", "--seed", "3", "-f", "cvat"], out / "synth", capsys)
    for fmt in ("cvat", "coco", "yolo", "voc", "txt"):
        _twice(["data", "convert", str(inputs["gt"]), str(out / fmt), "--to", fmt], out / fmt, capsys)


def test_a_stored_run_repeats_byte_for_byte(inputs):
    from sitesight.sliced.store import load_run, write_run

    run = load_run(inputs["a"])
    frames = [(f.key, f.image_wh) for f in run.frames]
    digests = []
    for k in range(2):
        folder = inputs["root"] / f"rewritten_{k}"
        write_run(folder, frames, list(run.raw), model=run.manifest["model"], parameters=run.parameters, class_names=run.class_names)
        digests.append(_digest(folder))
    assert digests[0] == digests[1] and any(name.startswith("shards/") for name in digests[0])


def test_run_commands_repeat_byte_for_byte(inputs, capsys):
    out = inputs["root"] / "out_runs"
    a, b, gt = str(inputs["a"]), str(inputs["b"]), str(inputs["gt"])
    _twice(["export", a, "--coco", str(out / "export" / "res.json"), "--cvat", str(out / "export" / "cvat")], out / "export", capsys)
    _twice(["sweep", a, "--gt", gt, "--conf", "0.3,0.5", "--threshold", "0.5", "--out", str(out / "sweep" / "t.csv"),
            "--json", str(out / "sweep" / "t.json")], out / "sweep", capsys)  # fmt: skip
    for kind in ("det", "coco"):
        _twice(["eval", kind, "--gt", gt, "--pred", a, "--json", str(out / f"eval_{kind}.json")], out / f"eval_{kind}.json", capsys)
    _twice(["eval", "cls", "--pred", str(inputs["cls"]), "--json", str(out / "eval_cls.json")], out / "eval_cls.json", capsys)
    _twice(["eval", "anomaly", "--scores", str(inputs["scores"]), "--json", str(out / "eval_an.json")], out / "eval_an.json", capsys)
    _twice(["report", a, b, "--gt", gt, "--out", str(out / "report.html")], out / "report.html", capsys)
    _twice(["mine", "--run", f"A={a}", "--run", f"B={b}", "--budget", "2", "--any-dispute", "--out", str(out / "mined")],
           out / "mined", capsys)  # fmt: skip


def test_timestamps_only_when_asked(inputs, capsys):
    out = inputs["root"] / "stamped"
    assert main(["report", str(inputs["a"]), "--gt", str(inputs["gt"]), "--out", str(out / "r.html"), "--timestamps"]) == 0
    assert datetime.now(timezone.utc).strftime("generated %Y-%m-%d") in (out / "r.html").read_text()
    with pytest.raises(AssertionError):  # the check above would have caught it
        _no_creation_time(out / "r.html", ["report"])
    mined = out / "mined"
    assert main(["mine", "--run", f"A={inputs['a']}", "--run", f"B={inputs['b']}", "--budget", "2", "--out", str(mined), "--timestamps"]) == 0
    with pytest.raises(AssertionError):
        _no_creation_time(mined / "manifest.json", ["mine"])
    capsys.readouterr()


def test_curation_and_compare_repeat_byte_for_byte(inputs, capsys):
    out = inputs["root"] / "out_curation"
    gt, a, b = str(inputs["gt"]), str(inputs["a"]), str(inputs["b"])
    commands = {
        "split": ["data", "split", gt, str(out / "split"), "--to", "coco", "--fraction", "train=0.5", "--fraction", "val=0.5", "--group-by", "none"],
        "filter": ["data", "filter", gt, str(out / "filter"), "--to", "coco"],
        "mix": ["data", "mix", str(out / "mix"), "--source", f"s={gt}", "--to", "coco"],
        "tile": ["data", "tile", gt, str(out / "tile"), "--to", "coco", "--slice", "160x160"],
        "package": ["data", "package", gt, str(out / "package"), "--zip", "--max-images", "2"],
        "stats": ["data", "stats", gt, "--json", str(out / "stats.json")],
        "validate": ["data", "validate", gt, "--json", str(out / "validate.json")],
        "compare": ["compare", a, b, "--gt", gt, "--resamples", "200", "--out", str(out / "compare" / "c.json"),
                    "--html", str(out / "compare" / "c.html")],
    }  # fmt: skip
    targets = {"stats": out / "stats.json", "validate": out / "validate.json"}
    for name, argv in commands.items():
        _twice(argv, targets.get(name, out / name), capsys)
    import zipfile

    # zip entries carry a date: a fixed one (two runs within the same 2-second tick would hide a stamped one)
    archives = sorted((out / "package").glob("*.zip"))
    assert archives and all(i.date_time == (1980, 1, 1, 0, 0, 0) for z in archives for i in zipfile.ZipFile(z).infolist())

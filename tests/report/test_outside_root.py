"""A run.json may name its artefacts by absolute path, but one that resolves outside the run folder
(``..``, an absolute path elsewhere, a link that points out) is refused with one line naming run.json
and the key, unless the user passes --allow-outside-root; `report --timestamps` is opt-in."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.report import build_report, load_report_run

from .runs_in_code import classification_run, write_frames


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    """One classification run whose predictions CSV is moved next to (outside) the run folder."""
    frames = write_frames(tmp_path / "frames", 6)
    run = classification_run(tmp_path, frames, name="cls")
    secret = tmp_path / "elsewhere.csv"
    os.replace(run / "predictions.csv", secret)
    (run / "metrics.json").unlink(missing_ok=True)
    return {"run": run, "secret": secret, "root": tmp_path}


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_artefacts_outside_the_run_folder_are_refused_unless_allowed(outside, how, capsys):
    run, secret = outside["run"], outside["secret"]
    if how == "link":
        os.symlink(secret, run / "inside.csv")  # a name inside that resolves outside
    value = {"dotdot": "../elsewhere.csv", "absolute": str(secret), "link": "inside.csv"}[how]
    (run / "run.json").write_text(json.dumps({"kind": "classification", "artefacts": {"predictions": value}}))
    with pytest.raises(InputError, match=r"artefacts\.predictions.*outside the run folder.*--allow-outside-root"):
        load_report_run(run)
    assert load_report_run(run, allow_outside=True).artefact("predictions") == secret.resolve()
    out = outside["root"] / "r.html"
    assert main(["report", str(run), "--out", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "run.json" in err[0] and "--allow-outside-root" in err[0], err
    assert not out.exists()
    assert main(["report", str(run), "--out", str(out), "--allow-outside-root"]) == 0 and out.is_file()


def test_absolute_paths_inside_the_run_folder_are_fine(outside):
    run = outside["run"]
    os.replace(outside["secret"], run / "p.csv")
    (run / "run.json").write_text(json.dumps({"kind": "classification", "artefacts": {"predictions": str(run / "p.csv")}}))
    assert load_report_run(run).artefact("predictions") == (run / "p.csv").resolve()


def test_report_has_no_generation_time_unless_asked(outside, tmp_path):
    run = outside["run"]
    os.replace(outside["secret"], run / "predictions.csv")
    (run / "run.json").write_text(json.dumps({"kind": "classification", "artefacts": {"predictions": "predictions.csv"}}))
    a = build_report([run], tmp_path / "a.html").read_bytes()
    b = build_report([run], tmp_path / "b.html").read_bytes()
    assert a == b and b"generated 20" not in a
    stamped = build_report([run], tmp_path / "c.html", timestamps=True).read_text()
    assert re.search(r"generated 20\d\d-\d\d-\d\d \d\d:\d\d UTC", stamped)


def test_a_spec_table_named_in_run_json_is_found_in_the_run_folder_and_confined(tmp_path, monkeypatch):
    from .runs_in_code import detection_run

    run = detection_run(tmp_path, write_frames(tmp_path / "frames", 4), name="det")
    info = json.loads((run / "run.json").read_text())
    info["config"]["spec"] = "sweep.csv:0"  # relative to the run folder, read from anywhere
    (run / "run.json").write_text(json.dumps(info))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_report_run(run)
    assert loaded.config["spec"] == f"{(run / 'sweep.csv').resolve()}:0"
    from sitesight.report.detection import report_spec

    assert report_spec(loaded.config, 0.3).method == "nms"  # row 0 of the table, not the best row (greedy_nmm)
    (tmp_path / "other.csv").write_text((run / "sweep.csv").read_text())
    info["config"]["spec"] = "../other.csv:best"
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"config\.spec.*outside the run folder"):
        load_report_run(run)
    assert load_report_run(run, allow_outside=True).config["spec"] == f"{(tmp_path / 'other.csv').resolve()}:best"

"""`eval cls --class-map`: model class columns renamed and merged onto the label names, checked
against scikit-learn on the probabilities mapped by hand."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from sitesight.cli.main import main

COLUMNS = ["With Helmet", "Without Helmet", "Hood", "unknown"]


def _write(path, labels, probs):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", *COLUMNS])
        for i, (lab, p) in enumerate(zip(labels, probs, strict=True)):
            w.writerow([f"f{i}.jpg", lab, *(f"{v:.6f}" for v in p)])


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=300)
    probs = np.round(probs, 6)
    labels = rng.choice(["helmet", "head"], size=300)
    path = tmp_path / "p.csv"
    _write(path, labels, probs)
    return path, labels, probs


def test_mapped_and_merged_columns_match_sklearn(data, tmp_path):
    path, labels, probs = data
    out = tmp_path / "m.json"
    # 'Without Helmet' and 'Hood' both mean a bare head; 'unknown' is dropped
    code = main(["eval", "cls", "--pred", str(path), "--class-map", "With Helmet=helmet,Without Helmet=head,Hood=head,unknown=",
                 "--json", str(out)])
    assert code == 0
    got = json.loads(out.read_text())
    mapped = np.stack([probs[:, 0], probs[:, 1] + probs[:, 2]], axis=1)  # columns: helmet, head
    y = np.where(labels == "helmet", 0, 1)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, mapped.argmax(axis=1)))
    for k, name in enumerate(["helmet", "head"]):
        assert got["per_class"][name]["ap"] == pytest.approx(average_precision_score(y == k, mapped[:, k]), abs=1e-9)
    assert set(got["per_class"]) == {"helmet", "head"}


def test_unmapped_names_are_one_clear_error(data, capsys):
    path, _, _ = data
    assert main(["eval", "cls", "--pred", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--class-map" in err[0] and "p.csv" in err[0] and "'head'" in err[0]
    assert main(["eval", "cls", "--pred", str(path), "--class-map", "Helmet=helmet"]) == 1
    err = capsys.readouterr().err
    assert "Helmet" in err and "not among the model's classes" in err

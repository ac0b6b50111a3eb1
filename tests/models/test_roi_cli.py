"""`sitesight train roi` → `sitesight predict roi` → `sitesight eval cls`, end to end through the CLI.

The reference is scikit-learn on labels read from the ground-truth file itself (not from the
predictions CSV) and on the CSV's probability columns.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

from sitesight.cli.main import main  # noqa: E402
from sitesight.formats.cvat import read_cvat  # noqa: E402
from sitesight.formats.cvat_write import write_cvat  # noqa: E402
from sitesight.synth import write_site_dataset  # noqa: E402

CLASSES = ["unknown", "correct", "wrong"]


@pytest.fixture(scope="module")
def synth_cvat(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roi_cli")
    ds = write_site_dataset(folder / "frames", n_frames=2, seed=4, image_wh=(640, 360), n_cameras=1)
    return write_cvat(ds, folder / "frames" / "annotations.xml")


def _truth(xml) -> list[tuple[str, int, str]]:
    """(image name, box index, rope value) of every person box, straight from the CVAT file."""
    ds = read_cvat(xml)
    person = ds.class_index("person")
    out = []
    for s in ds.samples:
        rope = s.gt.attributes["safety_rope"]
        for j in np.flatnonzero(s.gt.class_id == person):
            out.append((ds.image_path(s).name, int(j), "unknown" if rope[j] is None else str(rope[j])))
    return out


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _eval_cls(csv_path, json_path) -> dict:
    assert main(["eval", "cls", "--pred", str(csv_path), "--json", str(json_path)]) == 0
    return json.loads(json_path.read_text())


def test_train_predict_eval_cli_agree_with_sklearn(synth_cvat, tmp_path):
    run = tmp_path / "run"
    code = main(["train", "roi", str(synth_cvat), "--val", str(synth_cvat), "--backbone", "tiny_cnn", "--frame-size", "320x180",
                 "--epochs", "1", "--batch-size", "3", "--lr", "1e-3", "--no-augment", "--device", "cpu", "--out", str(run)])
    assert code == 0
    predicted = tmp_path / "predict.csv"
    assert main(["predict", "roi", "--model", str(run / "best.safetensors"), "--boxes", str(synth_cvat), "--device", "cpu",
                 "--out", str(predicted)]) == 0
    truth = _truth(synth_cvat)
    assert {t[2] for t in truth} == set(CLASSES), "the synth frames hold every rope state"
    for csv_path in (predicted, run / "predictions.csv"):  # `sitesight predict roi` and the training run write the same layout
        rows = _read(csv_path)
        assert [(r["image"].rsplit("/", 1)[-1], int(r["box_index"])) for r in rows] == [t[:2] for t in truth]
        y_true = [t[2] for t in truth]
        assert [r["label"] for r in rows] == y_true
        probs = np.array([[float(r[c]) for c in CLASSES] for r in rows])
        y_pred = [CLASSES[k] for k in probs.argmax(1)]
        assert [r["pred"] for r in rows] == y_pred
        result = _eval_cls(csv_path, tmp_path / f"{csv_path.stem}.json")
        assert result["n_samples"] == len(truth)
        assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred), abs=1e-12)
        for k, name in enumerate(CLASSES):
            ref = sklearn_metrics.average_precision_score(np.array(y_true) == name, probs[:, k])
            assert result["per_class"][name]["ap"] == pytest.approx(ref, abs=1e-9), name
    # the two files hold the same model's probabilities for the same boxes
    a, b = _read(predicted), _read(run / "predictions.csv")
    np.testing.assert_allclose([[float(r[c]) for c in CLASSES] for r in a], [[float(r[c]) for c in CLASSES] for r in b], atol=2e-6)


def test_eval_cls_reports_a_missing_label_with_its_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,box_index,x1,y1,x2,y2,score,label,pred,unknown,correct,wrong\n"
                    "a.jpg,0,1,2,30,40,1.0,correct,correct,0.1,0.8,0.1\n"
                    "a.jpg,1,5,2,30,40,1.0,,wrong,0.2,0.3,0.5\n")
    assert main(["eval", "cls", "--pred", str(path)]) == 1

"""End-to-end runs on real third-party data (../shared/data); skipped when it is absent."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.cli.main import main  # noqa: E402
from sitesight.models.data import AUGMENTED_COPY_PATTERN, scan_image_folder, split_images  # noqa: E402


def test_helmet_attribute_head_trains_and_evaluates_end_to_end(shared_data, tmp_path):
    from sklearn.metrics import accuracy_score

    from sitesight.formats.cvat import read_cvat
    from sitesight.models.attribute import train_and_evaluate_roi
    from sitesight.models.data import attribute_classes
    from sitesight.models.roi_head import RoIHeadConfig
    from sitesight.models.train import FitConfig

    ds = read_cvat(shared_data / "cvat/helmet_attributes/annotations.xml")
    head = ds.class_index("head")
    with_heads = [s for s in ds.samples if (s.gt.class_id == head).any()][:16]
    train, val = ds.with_samples(with_heads[:12]), ds.with_samples(with_heads[12:])
    names = attribute_classes(ds, "has_safety_helmet")
    assert names[0] == "unknown" and set(names[1:]) == {"yes", "no"}
    config = RoIHeadConfig(backbone="tiny_cnn", class_names=names, frame_wh=(256, 192), attribute="has_safety_helmet", box_class="head",
                           hidden=32, reduce_channels=8)
    summary = train_and_evaluate_roi(train, val, config=config, fit_config=FitConfig(epochs=1, batch_size=4, lr=1e-3, progress=False, device="cpu"),
                                     out_dir=tmp_path)
    with open(tmp_path / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    n_heads = sum(int((s.gt.class_id == head).sum()) for s in val.samples)
    assert len(rows) == summary["val_boxes"] == n_heads > 0
    # accuracy against scikit-learn on the CSV the run wrote
    assert summary["accuracy"] == pytest.approx(accuracy_score([r["label"] for r in rows], [r["pred"] for r in rows]))
    assert json.loads((tmp_path / "metrics.json").read_text())["n_samples"] == n_heads


def _screw_tree(shared_data, tmp_path):
    """Folder-per-class view of the screw defects (symlinks; class = defect type in the file stem)."""
    root = tmp_path / "screw"
    for p in sorted((shared_data / "screw/defects_mini/images").glob("*.png")):
        source = re.match(AUGMENTED_COPY_PATTERN, p.stem).group("source")
        defect = source.rsplit("_", 1)[0]
        (root / defect).mkdir(parents=True, exist_ok=True)
        (root / defect / p.name).symlink_to(p)
    return root


def test_screw_split_keeps_augmented_copies_together(shared_data, tmp_path):
    paths, labels, names = scan_image_folder(_screw_tree(shared_data, tmp_path))
    assert names == ("manipulated_front", "scratch_head", "scratch_neck", "thread_side", "thread_top")
    (tr, ytr), (va, yva) = split_images(paths, labels, val_fraction=0.3, seed=0)
    source = lambda p: re.match(AUGMENTED_COPY_PATTERN, p.stem).group("source")  # noqa: E731
    assert not {source(p) for p in tr} & {source(p) for p in va}
    assert len(tr) + len(va) == len(paths) == 36
    # rotated_30_/rotated_60_ copies of manipulated_front_10 share one group
    assert source(paths[0].with_name("rotated_60_manipulated_front_10.png")) == "manipulated_front_10"


def test_screw_defect_classifier_cli_with_grid(shared_data, tmp_path):
    from sklearn.metrics import accuracy_score

    root = _screw_tree(shared_data, tmp_path)
    out = tmp_path / "runs"
    code = main(["train", "cls", str(root), "--backbone", "tiny_cnn", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                 "--val-fraction", "0.3", "--balance", "sampler", "--out", str(out), "--grid", "lr=1e-3,1e-2", "--grid", "resize=32,64"])
    assert code == 0
    with open(out / "grid.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [(float(r["lr"]), int(r["resize"])) for r in table] == [(1e-3, 32), (1e-3, 64), (1e-2, 32), (1e-2, 64)]
    run = out / "lr=0.001_resize=32"
    with open(run / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert float(table[0]["accuracy"]) == pytest.approx(accuracy_score([r["label"] for r in rows], [r["pred"] for r in rows]))
    # predict cls reads a folder-per-class tree and writes the same layout
    code = main(["predict", "cls", "--model", str(run / "best.safetensors"), "--images", str(root), "--device", "cpu", "--out", str(tmp_path / "p.csv")])
    assert code == 0
    with open(tmp_path / "p.csv") as fh:
        pred_rows = list(csv.DictReader(fh))
    assert len(pred_rows) == 36 and set(pred_rows[0]) >= {"image", "label", "pred", "thread_top"}
    probs = np.array([[float(r[n]) for n in ("manipulated_front", "scratch_head", "scratch_neck", "thread_side", "thread_top")] for r in pred_rows])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)


@pytest.mark.slow
def test_train_roi_helmet_near_identity_beats_the_majority_baseline_on_a_held_out_split(shared_data, tmp_path):
    """Done-when: `train roi` on the real helmet export (head boxes, has_safety_helmet yes/no), near-identity
    expansion (the default for head boxes), a small random-init CNN for three CPU epochs: its macro F1 on a test
    split that never picked an epoch beats the majority baseline's, both checked against scikit-learn on the
    predictions the run wrote."""
    from sklearn.metrics import f1_score

    out = tmp_path / "helmet"
    code = main(["train", "roi", str(shared_data / "cvat/helmet_attributes/annotations.xml"), "--box-class", "head",
                 "--attribute", "has_safety_helmet", "--backbone", "tiny_cnn", "--random-init", "--frame-size", "512x384",
                 "--epochs", "3", "--batch-size", "8", "--lr", "2e-3", "--device", "cpu", "--workers", "0", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and "never saw" in metrics["selection"]
    assert metrics["expansion"] == {"x": 1.1, "top": 0.1, "bottom": 0.1}
    with open(out / "predictions.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"]]
    labels = [r["label"] for r in rows]
    present = sorted(set(labels))
    f1 = f1_score(labels, [r["pred"] for r in rows], labels=present, average="macro", zero_division=0)
    majority_class = metrics["baselines"]["majority"]["predicts"]
    majority = f1_score(labels, [majority_class] * len(labels), labels=present, average="macro", zero_division=0)
    assert metrics["macro_active"]["f1"] == pytest.approx(f1) and metrics["baselines"]["majority"]["macro_f1"] == pytest.approx(majority)
    print(f"helmet test split: {len(rows)} heads, macro F1 {f1:.3f} vs majority ({majority_class}) {majority:.3f}, "
          f"prior {metrics['baselines']['prior']['macro_f1']:.3f}")
    assert f1 > majority + 0.1 and f1 > metrics["baselines"]["prior"]["macro_f1"]

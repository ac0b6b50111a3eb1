"""Done-when on real parts: the MVTec AD screw images of ../shared/data, cut into 128 px tiles.

Tiles without a defect pixel are the normals. Source parts are kept whole everywhere (a part's
tiles and its rotated / flipped copies are one group): some parts only fit, some only set the
threshold (the grouped hold-out of `train_anomaly`), the rest are unseen and only tested. The
threshold promises a 5 % false-alarm rate on unseen normals at 95 % confidence; the test checks the
observed number of false alarms on the unseen parts' normal tiles against the bound that promise
gives for that many tiles (the beta-binomial quantile, recomputed here with scipy), not against a
number that happened to come out.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

from sitesight.models.anomaly.memory import MemoryConfig  # noqa: E402
from sitesight.models.anomaly.pipeline import predict_anomaly, train_anomaly  # noqa: E402
from sitesight.models.anomaly.tiles import tile_images  # noqa: E402

AUGMENTED = r"^(?:rotated_\d+_|hflipped_)?(.+)$"
pytestmark = pytest.mark.slow  # ~1 min of CPU (fit on ~200 tiles, score ~300)


@pytest.fixture(scope="module")
def screw_run(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    root = SHARED_DATA / "screw" / "defects_mini"
    if not root.is_dir():
        pytest.skip("../shared/data/screw is absent")
    images = sorted((root / "images").glob("*.png"))
    tmp = tmp_path_factory.mktemp("screw")
    tiles = tile_images(images, [root / "masks" / p.name for p in images], tmp / "all", tile=128, group_pattern=AUGMENTED)
    groups = sorted({t.group for t in tiles})
    unseen = set(np.random.default_rng(0).permutation(groups)[: len(groups) // 3].tolist())
    for t in tiles:  # normals of the other parts train (fit + grouped hold-out); unseen parts are only tested
        if t.group in unseen:
            dest = tmp / "test" / t.path.parent.name / t.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(t.path, dest)
            if t.defect:
                mask = f"{t.path.stem}_mask.png"
                (tmp / "test" / "ground_truth" / "defect").mkdir(parents=True, exist_ok=True)
                shutil.move(tmp / "all" / "ground_truth" / "defect" / mask, tmp / "test" / "ground_truth" / "defect" / mask)
        elif not t.defect:
            dest = tmp / "train" / t.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(t.path, dest)
    summary = train_anomaly(tmp / "train", tmp / "model", config=MemoryConfig(image_size=128, layers=(2, 3), coreset_ratio=0.1),
                            holdout_fraction=0.4, false_alarm_rate=0.05, confidence=0.95, group_by="name:^(.+?)__",
                            pretrained="auto", seed=0, device="cpu")
    pred = predict_anomaly(tmp / "model" / "model.safetensors", tmp / "test", tmp / "pred", heatmaps=0, device="cpu")
    return tiles, unseen, summary, pred, tmp


def test_grouped_holdout_never_splits_a_part(screw_run):
    tiles, unseen, summary, _, tmp = screw_run
    config = json.loads((tmp / "model" / "model.json").read_text())
    held = set(config["threshold"]["holdout_groups"])
    fitted = {t.group for t in tiles if not t.defect} - held - unseen
    assert held and fitted and not held & unseen and not held & fitted
    assert summary["holdout_images"] >= 59  # enough normals for 5 % at 95 %
    assert config["threshold"]["enough"] and not any("cannot promise" in w for w in summary["warnings"])


def test_false_alarms_on_unseen_normals_stay_within_the_promised_bound(screw_run):
    _, _, summary, pred, tmp = screw_run
    config = json.loads((tmp / "model" / "model.json").read_text())
    t = config["threshold"]
    with open(tmp / "pred" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    normal = np.array([float(r["score"]) for r in rows if r["label"] == "normal"])
    flagged = int((normal >= t["value"]).sum())
    bound = int(stats.betabinom.ppf(0.95, normal.size, t["n"] + 1 - t["k"], t["k"]))
    row = pred["false_alarms"]["normals in this folder (unseen)"]
    print(f"screw tiles: {normal.size} unseen normal tiles, {flagged} flagged ({flagged / normal.size:.1%}), bound {bound}; "
          f"threshold = held-out normal #{t['k']} of {t['n']}; image AUROC {pred['metrics']['auroc']:.3f}, "
          f"pixel AUROC {pred.get('pixel_auroc', float('nan')):.3f}; backbone {summary['backbone_init']}")
    assert (row["flagged"], row["n"], row["bound_95"]) == (flagged, normal.size, bound)
    assert normal.size >= 100
    assert flagged <= bound and row["within_bound"]
    assert pred["metrics"]["tuned_on_test_labels"] is False and "pixel_auroc" in pred

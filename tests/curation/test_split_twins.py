"""A Roboflow-style set of augmented twins (3 copies of each source photo: flipped, rotated, re-lit;
names that differ only in case of the '_jpg' tag), built in code: `--group-by source` and the
flip-robust content grouping leak no group, and subset fractions by image and by every class's
boxes stay within 2 points of 80/10/10 (scikit-learn's StratifiedGroupKFold as the baseline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from sklearn.model_selection import StratifiedGroupKFold

from sitesight import Dataset, Detections, InputError, Sample
from sitesight.cli.main import main
from sitesight.curation.split import plan_split, split_dataset

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
N_SOURCES = 450


def _twins(tmp_path, with_images: bool) -> tuple[Dataset, np.ndarray]:
    """(dataset, true source id per image); boxes per class drawn per source, copied to its twins."""
    rng = np.random.default_rng(7)
    samples, source = [], []
    folder = tmp_path / "train"
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(N_SOURCES):
        counts = [rng.poisson(3), rng.poisson(1.0), rng.integers(1, 3) * (rng.random() < 0.15)]
        cls = np.repeat(np.arange(3), counts)
        xy = rng.uniform(0, 40, (len(cls), 2))
        gt = Detections(xyxy=np.concatenate([xy, xy + 8], 1), class_id=cls)
        base = None
        if with_images:
            pixels = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)  # coarse random blocks: distinct hashes
            base = Image.fromarray(pixels).resize((64, 48), Image.Resampling.BICUBIC)
        for a, tag in enumerate(("jpg", "JPG", "jpg")):
            name = f"IMG_{s:04d}_{tag}.rf.{rng.integers(16**8):08x}.jpg"
            if with_images:
                twin = (base, ImageOps.mirror(base), ImageEnhance.Brightness(ImageOps.flip(base)).enhance(1.1))[a]
                twin.save(folder / name, quality=92)
            samples.append(Sample(path=f"train/{name}", image_wh=(64, 48), gt=gt))
            source.append(s)
    order = rng.permutation(len(samples))  # the export's order is not by source
    ds = Dataset(class_names=("person", "helmet", "harness"), samples=[samples[i] for i in order], root=tmp_path)
    return ds, np.asarray(source)[order]


def _fractions(assign: np.ndarray, ds: Dataset) -> np.ndarray:
    """(subsets, 1 + classes): share of images, then of each class's boxes."""
    counts = np.stack([np.bincount(s.gt.class_id, minlength=len(ds.class_names)) for s in ds.samples])
    cols = np.concatenate([np.ones((len(ds), 1)), counts], axis=1)
    return np.stack([cols[assign == k].sum(0) / cols.sum(0) for k in range(len(FRACTIONS))])


def _leaks(assign: np.ndarray, source: np.ndarray) -> int:
    return sum(len(np.unique(assign[source == g])) > 1 for g in np.unique(source))


def _sklearn_baseline(ds: Dataset, source: np.ndarray) -> np.ndarray:
    """StratifiedGroupKFold(10) on each image's rarest class: 8 folds train, 1 val, 1 test."""
    y = np.array([int(s.gt.class_id.max()) if len(s.gt) else -1 for s in ds.samples])
    assign = np.empty(len(ds), np.int64)
    for fold, (_, test) in enumerate(StratifiedGroupKFold(10, shuffle=True, random_state=0).split(y, y, source)):
        assign[test] = 0 if fold < 8 else fold - 7
    return assign


def test_source_grouping_no_leak_and_fractions_within_2_points(tmp_path):
    ds, source = _twins(tmp_path, with_images=False)
    plan = plan_split(ds, fractions=FRACTIONS, group_by=("source",), seed=0)
    assert plan.n_groups == N_SOURCES  # '_jpg' and '_JPG' twins of one photo are one group
    assert _leaks(plan.assign, source) == 0
    target = np.array(list(FRACTIONS.values()))[:, None]
    ours = np.abs(_fractions(plan.assign, ds) - target).max()
    theirs = np.abs(_fractions(_sklearn_baseline(ds, source), ds) - target).max()
    assert ours <= 0.02, (ours, _fractions(plan.assign, ds))
    assert ours <= theirs + 1e-9, (ours, theirs)


def test_flip_robust_content_grouping(tmp_path):
    ds, source = _twins(tmp_path, with_images=True)
    plan = plan_split(ds, fractions=FRACTIONS, group_by=("phash",), hash_distance=6, seed=0)
    assert _leaks(plan.assign, source) == 0
    assert plan.n_groups == N_SOURCES  # and no two different photos were merged
    target = np.array(list(FRACTIONS.values()))[:, None]
    assert np.abs(_fractions(plan.assign, ds) - target).max() <= 0.02


def test_missing_camera_information_is_an_error_not_a_silent_single_subset(tmp_path):
    ds, _ = _twins(tmp_path, with_images=False)
    with pytest.raises(InputError, match=r"camera.*none of the 1350 images"):
        split_dataset(ds, fractions=FRACTIONS, group_by=("camera",))


def test_cli_reports_groups_and_fractions(tmp_path, capsys):
    from sitesight.formats.coco import write_coco

    ds, _ = _twins(tmp_path, with_images=False)
    src = write_coco(ds, tmp_path / "export.json")
    assert main(["data", "split", str(src), str(tmp_path / "out"), "--group-by", "source"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["groups"] == N_SOURCES
    assert {k: v["images"] for k, v in summary["subsets"].items()} == \
        {k: int(round(f * len(ds) / 3)) * 3 for k, f in FRACTIONS.items()} or \
        all(abs(v["image_share"] - FRACTIONS[k]) <= 0.02 for k, v in summary["subsets"].items())
    assert main(["data", "split", str(src), str(tmp_path / "out2")]) == 1  # default --group-by camera: nothing to group by
    assert "--group-by" in capsys.readouterr().err

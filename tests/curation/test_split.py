from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from sitesight import Dataset, Detections, InputError, Sample
from sitesight.curation.captures import Capture
from sitesight.curation.split import (
    combine_groups,
    groups_by_phash,
    groups_by_source_stem,
    groups_by_time_window,
    split_dataset,
    stratified_group_split,
)

from .scenes import save, scene


def _straddling(assign: np.ndarray, groups: np.ndarray) -> list[int]:
    return [g for g in np.unique(groups) if len(np.unique(assign[groups == g])) > 1]


def _deviation(assign: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean absolute gap between each fold's class distribution and the overall one."""
    overall = np.bincount(y) / len(y)
    return float(np.mean([np.abs(np.bincount(y[assign == f], minlength=len(overall)) / max((assign == f).sum(), 1) - overall).mean()
                          for f in range(k)]))


def test_hand_built_perfect_stratification():
    # four groups of two images; group 0 and 2 hold class 0, groups 1 and 3 class 1
    counts = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1]])
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assign = stratified_group_split(counts, groups, [0.5, 0.5], seed=3)
    assert _straddling(assign, groups) == []
    for k in (0, 1):  # each half gets one class-0 group and one class-1 group
        assert counts[assign == k].sum(axis=0).tolist() == [2, 2]


def test_no_leak_and_stratification_vs_sklearn_stratified_group_kfold():
    rng = np.random.default_rng(0)
    n_groups, k = 60, 5
    sizes = rng.integers(1, 12, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    # each group has a dominant class, as frames of one camera do
    dominant = rng.choice(3, n_groups, p=[0.6, 0.3, 0.1])
    y = np.where(rng.random(len(groups)) < 0.8, dominant[groups], rng.integers(0, 3, len(groups)))
    onehot = np.eye(3, dtype=int)[y]
    ours, theirs = [], []
    for seed in range(5):
        assign = stratified_group_split(onehot, groups, [1 / k] * k, seed=seed)
        assert _straddling(assign, groups) == []
        assert sorted(np.unique(assign).tolist()) == list(range(k))
        ours.append(_deviation(assign, y, k))
        sk = np.empty(len(y), int)
        for f, (_, test) in enumerate(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(onehot, y, groups)):
            sk[test] = f
        theirs.append(_deviation(sk, y, k))
    random_dev = []
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(n_groups) % k
        random_dev.append(_deviation(perm[groups], y, k))
    assert np.mean(ours) <= np.mean(theirs) * 1.15 + 0.005, (np.mean(ours), np.mean(theirs))
    assert np.mean(ours) < 0.6 * np.mean(random_dev)


def test_unequal_fractions_follow_targets():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(200), rng.integers(1, 5, 200))
    counts = rng.poisson(2.0, (len(groups), 3))
    assign = stratified_group_split(counts, groups, [0.8, 0.1, 0.1], seed=0)
    assert _straddling(assign, groups) == []
    share = np.array([counts[assign == s].sum(axis=0) / counts.sum(axis=0) for s in range(3)])
    np.testing.assert_allclose(share, [[0.8] * 3, [0.1] * 3, [0.1] * 3], atol=0.02)
    images = np.bincount(assign) / len(assign)
    np.testing.assert_allclose(images, [0.8, 0.1, 0.1], atol=0.02)
    with pytest.raises(InputError, match="positive"):
        stratified_group_split(counts, groups, [1.0, 0.0])


def test_time_window_chains_and_unknown_times_stand_alone():
    ts = [0, 30, 59, 130, 150, None, 10]
    cams = ["a"] * 6 + ["b"]
    caps = [Capture(path=f"{i}.jpg", camera_id=c, timestamp=t, index=i) for i, (c, t) in enumerate(zip(cams, ts, strict=True))]
    g = groups_by_time_window(caps, 60)
    assert g[0] == g[1] == g[2] and g[3] == g[4] and len({g[0], g[3], g[5], g[6]}) == 4


def test_source_stem_rule_groups_augmented_copies():
    names = [
        "img001.jpg", "img001_aug3.jpg", "img001_flip.png", "img001-rot90.jpg",
        "site_12_jpg.rf.3f2a9c.jpg", "site_12_jpg.rf.99ab01.jpg", "site_13.jpg",
    ]
    g = groups_by_source_stem(names)
    assert g.tolist() == [0, 0, 0, 0, 1, 1, 2]
    custom = groups_by_source_stem(["a__v1.jpg", "a__v2.jpg", "b__v1.jpg"], r"^(?P<source>.+?)__v\d+$")
    assert custom.tolist() == [0, 0, 1]


def test_phash_groups_and_union(tmp_path):
    from sitesight.curation.dedup import phash_file

    paths = [save(scene(1), tmp_path / "a.jpg"), save(scene(2), tmp_path / "b.jpg"),
             save(scene(1).resize((320, 180)), tmp_path / "a_small.jpg", quality=70), save(scene(3), tmp_path / "c.jpg")]
    g = groups_by_phash([phash_file(p) for p in paths])
    assert g[0] == g[2] and len(set(g.tolist())) == 3
    assert combine_groups(np.array([0, 0, 1, 2]), np.array([5, 6, 6, 7])).tolist() == [0, 0, 0, 1]


def test_split_dataset_by_camera_and_source_never_leaks():
    samples = []
    for cam in range(12):
        for t in range(5):
            cls = [cam % 3, (cam + t) % 3]
            gt = Detections(xyxy=np.tile([[0, 0, 10, 10]], (2, 1)), class_id=cls)
            samples.append(Sample(path=f"cam{cam:02d}_20240101T0000{t:02d}.jpg", image_wh=(64, 64), gt=gt))
    ds = Dataset(class_names=("person", "helmet", "head"), samples=samples)
    parts = split_dataset(ds, fractions={"train": 0.5, "val": 0.25, "test": 0.25}, group_by=("camera", "time"), seed=1)
    assert sum(len(p) for p in parts.values()) == len(ds)
    cams = {name: {str(s.path)[:5] for s in p.samples} for name, p in parts.items()}
    assert not (cams["train"] & cams["test"]) and not (cams["train"] & cams["val"]) and not (cams["val"] & cams["test"])
    assert all(s.subset == name for name, p in parts.items() for s in p.samples)
    assert [len(p) for p in parts.values()] == [30, 15, 15]
    with pytest.raises(InputError, match="unknown group keys"):
        split_dataset(ds, group_by=("planet",))

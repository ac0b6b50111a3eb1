"""Hold-out groups for anomaly thresholds: from folders, file names or a CSV, and whole groups held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sitesight.errors import InputError  # noqa: E402
from sitesight.models.anomaly.pipeline import group_holdout, image_groups  # noqa: E402


def test_groups_from_folders_names_and_csv(tmp_path):
    root = tmp_path / "normals"
    paths = [root / "cam1" / "a__1.png", root / "cam1" / "a__2.png", root / "cam2" / "b__1.png", root / "cam2" / "c__1.png"]
    assert image_groups(paths, root, "folder") == ["cam1", "cam1", "cam2", "cam2"]
    assert image_groups(paths, root, "auto") == ["cam1", "cam1", "cam2", "cam2"]
    assert image_groups(paths, root, "name:^(.+?)__") == ["a", "a", "b", "c"]
    assert image_groups(paths, root, "image") == [str(Path(p).relative_to(root)) for p in paths]
    flat = [root / "x.png", root / "y.png"]
    assert image_groups(flat, root, "auto") == ["x.png", "y.png"]  # one folder: each image alone
    table = tmp_path / "groups.csv"
    table.write_text("path,group\ncam1/a__1.png,s1\na__2.png,s1\ncam2/b__1.png,s2\nc__1.png,s3\n")
    assert image_groups(paths, root, str(table)) == ["s1", "s1", "s2", "s3"]
    with pytest.raises(InputError, match="does not match"):
        image_groups(paths, root, "name:^zz(.+)")
    table.write_text("path,group\ncam1/a__1.png,s1\n")
    with pytest.raises(InputError, match="no group for image"):
        image_groups(paths, root, str(table))
    with pytest.raises(InputError, match="--group-by"):
        image_groups(paths, root, "camera")


def test_group_holdout_keeps_groups_whole_and_reaches_the_fraction():
    groups = [g for g in "aaaabbbccdddddeeef" for _ in range(1)]
    for seed in range(10):
        fit, hold = group_holdout(groups, 0.3, seed=seed)
        assert sorted(np.r_[fit, hold].tolist()) == list(range(len(groups)))
        held = {groups[i] for i in hold}
        assert not held & {groups[i] for i in fit}  # no group on both sides
        assert hold.size >= 0.3 * len(groups) and fit.size >= 2
    fit, hold = group_holdout(["a"] * 5, 0.5)
    assert hold.size == 0 and fit.size == 5  # one group: nothing can be held out

"""Mining compares classes by name: models that list their classes in another order, or under other
names mapped with --class-map, agree with themselves (discrepancy 0, by construction); an unmapped
name is an error listing both sets."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.mining.discrepancy import pair_discrepancy
from sitesight.mining.pool import load_pool
from sitesight.sliced.spec import PostprocessSpec
from sitesight.sliced.store import write_run

from .planted import planted_pool


def _runs(tmp_path, b_names, permute):
    """Model A as planted (person, helmet, head); model B the very same boxes under ``b_names``,
    its class ids renumbered by ``permute`` (A's id → B's id)."""
    p = planted_pool(40, seed=1)
    frames = [(f"cam{i % 2}/f{i:03d}.jpg", wh) for i, wh in enumerate(p.image_wh)]
    a = p.preds["C"]
    b = [d.replace(class_id=np.asarray(permute, np.int64)[d.class_id]) if len(d) else d for d in a]
    write_run(tmp_path / "a", frames, a, model="A", parameters={}, class_names=["person", "helmet", "head"])
    write_run(tmp_path / "b", frames, b, model="B", parameters={}, class_names=b_names)
    return {"A": tmp_path / "a", "B": tmp_path / "b"}, a


def test_other_class_order_is_matched_by_name(tmp_path):
    runs, a = _runs(tmp_path, ["head", "helmet", "person"], [2, 1, 0])
    pool = load_pool(runs, conf=0.0)
    assert pool.class_names == ("person", "helmet", "head")
    for f in (0, 5, 39):
        np.testing.assert_array_equal(pool.runs["B"].frame_detections(f).class_id, a[f].class_id)
    d = pair_discrepancy(pool, "A", "B")  # detection and classification terms (cross-task rules judge each output alone)
    assert float(d.det.max()) == 0.0 and float(d.cls.max()) == 0.0
    # compared by index instead, B's relabelled boxes would be class flips
    assert (pool.runs["A"].class_id == pool.runs["B"].class_id).all()
    assert int((np.asarray([2, 1, 0])[pool.runs["A"].class_id] != pool.runs["A"].class_id).sum()) > 0


def test_class_map_and_agnostic_and_the_unmapped_error(tmp_path, capsys):
    runs, _ = _runs(tmp_path, ["worker", "helmet", "head"], [0, 1, 2])
    with pytest.raises(InputError, match="worker"):
        load_pool(runs, conf=0.0)
    pool = load_pool(runs, conf=0.0, spec=PostprocessSpec(conf=0.0, class_map=(("worker", "person"),)))
    assert float(pair_discrepancy(pool, "A", "B").det.max()) == 0.0
    shuffled, _ = _runs(tmp_path / "s", ["person", "helmet", "head"], [1, 2, 0])
    aware = pair_discrepancy(load_pool(shuffled, conf=0.0), "A", "B")
    agnostic = pair_discrepancy(load_pool(shuffled, conf=0.0, spec=PostprocessSpec(conf=0.0, class_agnostic=True)), "A", "B")
    assert float(aware.det.max()) > 0 and float(agnostic.det.max()) == 0.0
    common = ["mine", "--run", f"a={runs['A']}", "--run", f"b={runs['B']}", "--budget", "4", "--no-package", "--any-dispute"]
    assert main([*common, "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "worker" in err and "person" in err and len(err.strip().splitlines()) == 1
    assert main([*common, "--out", str(tmp_path / "m"), "--class-map", "worker=person"]) == 0

"""``MINED/boxes.parquet`` is a box file of the one schema (`sitesight.boxparquet`), read here with
pyarrow alone and compared with the boxes the stand-in models were given; an old-layout file is
still judged the same."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sitesight import Dataset, Sample
from sitesight.cli.main import main
from sitesight.formats.coco import write_coco

from .planted import CLASSES, planted_pool
from .test_cli_pool import _write_runs


def _rows(table: pa.Table, model: str, image_id: int) -> list[tuple]:
    """One model's boxes on one frame as sorted tuples, straight from the Arrow columns."""
    d = table.to_pydict()
    return sorted((d["x1"][i], d["y1"][i], d["x2"][i], d["y2"][i], round(d["score"][i], 6), d["class_id"][i])
                  for i in range(table.num_rows) if d["model"][i] == model and d["image_id"][i] == image_id)


def test_mined_boxes_are_the_run_schema_and_the_given_boxes(tmp_path, capsys):
    p = planted_pool(60, seed=5)
    keys, runs = _write_runs(tmp_path, p)
    out = tmp_path / "MINED"
    args = ["mine", *[f"--run={n}={r}" for n, r in runs.items()], "--budget", "12", "--out", str(out),
            "--classes", ",".join(CLASSES), "--no-package", "--conf", "0.3"]
    assert main(args) == 0
    table = pq.read_table(out / "boxes.parquet")
    shard = pq.read_table(next((runs["A"] / "shards").glob("*.parquet")))
    # one schema: the run shard's box columns, same names and types, then the ``model`` attribute column
    assert table.schema.names[:8] == shard.schema.names[:8] == ["image_id", "source", "x1", "y1", "x2", "y2", "score", "class_id"]
    assert [table.schema.field(c).type for c in table.schema.names[:8]] == [shard.schema.field(c).type for c in shard.schema.names[:8]]
    assert table.schema.names[8:] == ["class_name", "model"] and set(table.column("source").to_pylist()) <= {-1}
    assert table.column("class_name").to_pylist() == [CLASSES[c] for c in table.column("class_id").to_pylist()]
    meta = table.schema.metadata
    frames = json.loads(meta[b"sitesight.sliced.frames"])
    manifest = json.loads((out / "manifest.json").read_text())
    wanted = {k for pr in manifest["pairs"].values() for k in pr["frames"]} | set(manifest["control"])
    assert {row[1] for row in frames} == wanted and all(row[1] == keys[row[0]] for row in frames)
    assert json.loads(meta[b"sitesight.class_names"]) == list(CLASSES)
    spec = json.loads(meta[b"sitesight.spec"])
    assert spec["conf"] == 0.3 and spec == manifest["spec"]
    assert "created" not in manifest  # timestamps only when asked
    # every model's boxes on every listed frame are the given ones at conf >= 0.3 (full-frame runs are final)
    for name, dets in p.preds.items():
        for index, _key, wh, _ in frames:
            given = dets[index][dets[index].score >= np.float32(0.3)]
            want = sorted((*map(float, b), round(float(s), 6), int(c)) for b, s, c in zip(given.xyxy, given.score, given.class_id, strict=True))
            assert _rows(table, name, index) == want
            assert wh == list(p.image_wh[index])
    # the verdict of the folder, then the same folder with boxes.parquet in the layout before the one schema
    samples = [Sample(path=k, image_wh=p.image_wh[i], gt=p.gts[i]) for i, k in enumerate(keys) if k in wanted]
    labels = write_coco(Dataset(class_names=CLASSES, samples=tuple(samples)), tmp_path / "labels.json")
    assert main(["mine", "verdict", str(out), "--gt", str(labels)]) == 0
    new = json.loads((out / "verdict.json").read_text())
    key_of = {row[0]: row[1] for row in frames}
    d = table.to_pydict()
    old = pa.table({"model": d["model"], "image": [key_of[i] for i in d["image_id"]],
                    **{c: d[c] for c in ("x1", "y1", "x2", "y2", "score", "class_id")}})
    pq.write_table(old, out / "boxes.parquet")
    assert main(["mine", "verdict", str(out), "--gt", str(labels)]) == 0
    assert json.loads((out / "verdict.json").read_text()) == new
    # a file that is neither: one line naming it
    pq.write_table(pa.table({"x": [1]}), out / "boxes.parquet")
    assert main(["mine", "verdict", str(out), "--gt", str(labels)]) == 1
    assert "boxes.parquet" in capsys.readouterr().err


def test_mine_timestamps_only_when_asked(tmp_path):
    p = planted_pool(30, seed=2)
    _, runs = _write_runs(tmp_path, p)
    common = ["mine", *[f"--run={n}={r}" for n, r in runs.items()], "--budget", "6", "--no-package"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "two")]) == 0
    for name in ("manifest.json", "boxes.parquet", "scores.parquet", "ranking.csv", "why.json", "control.csv"):
        one, two = (tmp_path / "one" / name).read_bytes(), (tmp_path / "two" / name).read_bytes()
        assert one.replace(b"/one", b"/two") == two, name
    assert main([*common, "--out", str(tmp_path / "three"), "--timestamps"]) == 0
    assert "created" in json.loads((tmp_path / "three" / "manifest.json").read_text())

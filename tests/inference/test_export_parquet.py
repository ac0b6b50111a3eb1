"""`export --parquet`: the final boxes in the run's box schema, read with pyarrow alone, are the boxes
the COCO export of the same spec holds (read with json alone), with the spec and class names recorded."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from tests.engines.scenes import stored_run_and_labels

from sitesight.cli.main import main


def test_export_parquet_holds_the_coco_export_boxes_and_the_spec(tmp_path):
    stored_run_and_labels(tmp_path / "run", 12, seed=4)
    how = ["--conf", "0.3", "--method", "nms", "--metric", "iou", "--threshold", "0.5", "--gate", "r=40,conf=0.2"]
    assert main(["export", str(tmp_path / "run"), "--coco", str(tmp_path / "final.json"), "--parquet", str(tmp_path / "final.parquet"),
                 *how]) == 0
    table = pq.read_table(tmp_path / "final.parquet")
    assert table.column_names[:8] == ["image_id", "source", "x1", "y1", "x2", "y2", "score", "class_id"]
    meta = table.schema.metadata
    frames = json.loads(meta[b"sitesight.sliced.frames"])
    names = json.loads(meta[b"sitesight.class_names"])
    recorded = json.loads((tmp_path / "final.spec.json").read_text())["spec"]
    assert json.loads(meta[b"sitesight.spec"]) == recorded and recorded["conf"] == 0.3 and recorded["method"] == "nms"
    assert names == ["person", "helmet", "head"] and [f[1] for f in frames] == [f"cam{i % 3}/frame_{i:04d}.jpg" for i in range(12)]
    key_of = {f[0]: f[1] for f in frames}
    d = table.to_pydict()
    assert d["class_name"] == [names[c] for c in d["class_id"]]  # the names as a column too, for pandas users
    got = sorted((key_of[d["image_id"][i]], names[d["class_id"][i]], round(d["x1"][i], 2), round(d["y1"][i], 2),
                  round(d["x2"][i] - d["x1"][i], 2), round(d["y2"][i] - d["y1"][i], 2), round(d["score"][i], 4))
                 for i in range(table.num_rows))
    coco = json.loads((tmp_path / "final.json").read_text())
    want = sorted((r["file_name"], names[r["category_id"] - 1], round(r["bbox"][0], 2), round(r["bbox"][1], 2), round(r["bbox"][2], 2),
                   round(r["bbox"][3], 2), round(r["score"], 4)) for r in coco)
    assert len(got) > 20 and got == want
    # slice provenance: the slice each kept box came from (-1: the full-frame pass), as the raw shards store it
    raw_sources = {s for p in (tmp_path / "run" / "shards").glob("*.parquet") for s in pq.read_table(p).column("source").to_pylist()}
    assert set(d["source"]) <= raw_sources and max(d["source"]) >= 0
    assert main(["export", str(tmp_path / "run")]) == 2  # nothing to write: a usage error

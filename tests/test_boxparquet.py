"""`sitesight.boxparquet`: what is written is what pyarrow reads, and what comes back is what was given."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sitesight import Detections
from sitesight.boxparquet import read_boxes, table_from_arrow, table_to_arrow, write_boxes
from sitesight.errors import InputError
from sitesight.frametable import FrameTable


def _frames() -> list[Detections]:
    return [
        Detections(xyxy=[[1, 2, 3, 4], [5, 6, 7.5, 8]], score=[0.9, 0.25], class_id=[2, 0],
                   attributes={"iou_pred": np.array([0.5, 0.75], np.float32), "probs": np.array([[0.1, 0.9], [0.6, 0.4]], np.float32),
                               "model": np.array(["a", "b"], object)}),
        Detections.empty(["iou_pred", "probs", "model"]),
        Detections(xyxy=[[10, 10, 20, 30]], score=[0.5], class_id=[1],
                   attributes={"iou_pred": np.array([1.0], np.float32), "probs": np.array([[0.5, 0.5]], np.float32),
                               "model": np.array(["a"], object)}),
    ]


def test_written_file_is_plain_parquet_and_reads_back(tmp_path):
    per_frame = _frames()
    frames = [[4, "cam/a.jpg", [640, 480], None], [9, "cam/b.jpg", None, "unreadable"], [11, "cam/c.jpg", [640, 480], None]]
    spec = {"conf": 0.2, "method": "nms"}
    path = write_boxes(tmp_path / "boxes.parquet", FrameTable.from_frames(per_frame), frames, class_names=["person", "helmet", "head"],
                       spec=spec)
    # the reference: pyarrow alone, against the boxes given above
    t = pq.read_table(path)
    assert t.column_names == ["image_id", "source", "x1", "y1", "x2", "y2", "score", "class_id", "class_name", "iou_pred", "model",
                              "probs"]
    assert t.column("class_name").to_pylist() == ["head", "person", "helmet"]  # the names of class ids 2, 0, 1
    assert t.column("image_id").to_pylist() == [4, 4, 11] and t.column("source").to_pylist() == [-1, -1, -1]
    assert t.column("x2").to_pylist() == [3.0, 7.5, 20.0] and t.column("class_id").to_pylist() == [2, 0, 1]
    assert t.column("model").to_pylist() == ["a", "b", "a"]
    assert t.column("probs").to_pylist() == [[pytest.approx(0.1), pytest.approx(0.9)], [pytest.approx(0.6), pytest.approx(0.4)],
                                             [0.5, 0.5]]
    assert str(t.schema.field("x1").type) == "float" and str(t.schema.field("class_id").type) == "int64"
    meta = t.schema.metadata
    assert json.loads(meta[b"sitesight.sliced.frames"]) == frames
    assert json.loads(meta[b"sitesight.class_names"]) == ["person", "helmet", "head"]
    assert json.loads(meta[b"sitesight.spec"]) == spec
    back = read_boxes(path)
    assert back.frames == frames and back.keys == ["cam/a.jpg", "cam/b.jpg", "cam/c.jpg"]
    assert back.class_names == ("person", "helmet", "head") and back.spec == spec
    assert back.table.counts().tolist() == [2, 0, 1] and "class_name" not in back.table.boxes.attributes
    for got, want in zip(back.table.per_frame(), per_frame, strict=True):
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.score, want.score)
        np.testing.assert_array_equal(got.class_id, want.class_id)
        np.testing.assert_array_equal(got.attributes["probs"], want.attributes["probs"].reshape(-1, 2))
        assert got.attributes["model"].tolist() == want.attributes["model"].tolist()
        assert got.attributes["source"].tolist() == [-1] * len(want)


def test_rows_keep_their_order_within_a_frame_and_follow_the_frame_ids():
    table = FrameTable.from_frames(_frames())
    arrow = table_to_arrow(table, [[2, "x", [1, 1], None], [0, "y", [1, 1], None], [1, "z", [1, 1], None]])
    # read over ids listed in another order: frame f of the result is ids[f]
    back = table_from_arrow(arrow, [1, 2, 0])
    assert back.counts().tolist() == [1, 2, 0]
    assert back.frame_detections(1).score.tolist() == pytest.approx([0.9, 0.25])


def test_bad_files_and_arguments_fail_clearly(tmp_path):
    table = FrameTable.from_frames(_frames())
    with pytest.raises(ValueError, match="3 table frames but 2"):
        table_to_arrow(table, [[0, "a", None, None], [1, "b", None, None]])
    clash = FrameTable.from_frames([Detections(xyxy=[[0, 0, 1, 1]], attributes={"score2": np.ones(1), "x1": np.ones(1)})])
    with pytest.raises(ValueError, match="clashes"):
        table_to_arrow(clash, [[0, "a", [1, 1], None]])
    arrow = table_to_arrow(table, [[0, "a", [1, 1], None], [1, "b", [1, 1], None], [2, "c", [1, 1], None]])
    outside = table_to_arrow(table, [[0, "a", [1, 1], None], [1, "b", [1, 1], None], [2, "c", [1, 1], None]], class_names=["only"])
    assert outside.column("class_name").to_pylist() == [None, "only", None]  # ids 2 and 1 have no name
    with pytest.raises(InputError, match="frame 2, which the frame list does not hold"):
        table_from_arrow(arrow, [0, 1], path="f.parquet")
    with pytest.raises(InputError, match="twice"):
        table_from_arrow(arrow, [0, 1, 2, 2])
    with pytest.raises(InputError, match="lacks the 'score' column"):
        table_from_arrow(arrow.drop_columns(["score"]), [0, 1, 2])
    pq.write_table(arrow.replace_schema_metadata(None), tmp_path / "plain.parquet")
    with pytest.raises(InputError, match="sitesight.sliced.frames"):
        read_boxes(tmp_path / "plain.parquet")
    (tmp_path / "cut.parquet").write_bytes(b"PAR1 cut")
    with pytest.raises(InputError, match="unreadable box file"):
        read_boxes(tmp_path / "cut.parquet")
    nan = arrow.set_column(2, "x1", pa.array([np.nan, 0, 0], pa.float32()))
    with pytest.raises(InputError, match="non-finite"):
        table_from_arrow(nan, [0, 1, 2])

"""CVAT reading through the columnar collector: fast (plain box) and full paths mixed, hand-computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sitesight.errors import InputError
from sitesight.formats.cvat import load_cvat, read_cvat

META = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><labels>
<label><name>person</name><attributes>
  <attribute><name>rope</name><input_type>radio</input_type><default_value>{default}</default_value>
  <values>correct
wrong
unknown</values></attribute>
</attributes></label>
<label><name>head</name><attributes/></label>
</labels></task></meta>
{body}
</annotations>"""


def _write(tmp_path: Path, body: str, name: str = "a.xml", default: str = "unknown") -> Path:
    path = tmp_path / name
    path.write_text(META.replace("{body}", body).replace("{default}", default), encoding="utf-8")
    return path


def test_plain_and_other_shapes_interleaved_keep_file_order(tmp_path):
    body = """<image id="0" name="x.jpg" width="100" height="80">
  <box label="person" xtl="0" ytl="0" xbr="10" ybr="10"><attribute name="rope">wrong</attribute></box>
  <box label="person" xtl="1" ytl="1" xbr="11" ybr="11" z_order="2"/>
  <polygon label="head" points="10,10;20,5;15,30"/>
  <box label="person" xtl="2" ytl="2" xbr="12" ybr="12"><attribute name="rope">wrong</attribute><attribute name="rope"> correct </attribute></box>
  <box label="person" xtl="3" ytl="3" xbr="13" ybr="13"><attribute name="colour">red</attribute><note/></box>
  <box label="head" xtl="4" ytl="4" xbr="6" ybr="6" rotation="90"/>
  <box label="person" xtl="5" ytl="5" xbr="15" ybr="15" occluded="1" source="auto" z_order="1.0"/>
</image>"""
    loaded = load_cvat(_write(tmp_path, body))
    gt = loaded.dataset[0].gt
    np.testing.assert_allclose(
        gt.xyxy,
        [[0, 0, 10, 10], [1, 1, 11, 11], [10, 5, 20, 30], [2, 2, 12, 12], [3, 3, 13, 13], [4, 4, 6, 6],
         [5, 5, 15, 15]],
    )  # fmt: skip
    assert gt.class_id.tolist() == [0, 0, 1, 0, 0, 1, 0]
    # Omitted → the label's default; repeated → the last one (stripped); head lacks rope → None.
    assert gt.attributes["rope"].tolist() == ["wrong", "unknown", None, "correct", "unknown", None, "unknown"]
    assert gt.attributes["colour"].tolist() == [None, None, None, None, "red", None, None]
    assert gt.attributes["cvat_z_order"].tolist() == [0, 2, 0, 0, 0, 0, 1]
    assert gt.attributes["cvat_occluded"].tolist() == [False] * 6 + [True]
    assert gt.attributes["cvat_source"].tolist()[-1] == "auto"
    assert gt.attributes["cvat_shape"].tolist() == ["box", "box", "polygon", "box", "box", "box", "box"]
    assert gt.attributes["cvat_track_id"].tolist() == [-1] * 7
    assert [i.code for i in loaded.issues] == ["undeclared_attribute"] and "colour" in loaded.issues[0].message
    assert loaded.dataset.attribute_schema["colour"].input_type == "text"


def test_tracks_land_on_their_frames_after_the_frame_own_shapes(tmp_path):
    body = """<image id="1" name="b.jpg" width="10" height="10"><box label="head" xtl="0" ytl="0" xbr="1" ybr="1"/></image>
<image id="0" name="a.jpg" width="10" height="10"><box label="head" xtl="2" ytl="2" xbr="3" ybr="3"/></image>
<track id="7" label="person">
  <box frame="1" xtl="4" ytl="4" xbr="5" ybr="5" outside="0"><attribute name="rope">correct</attribute></box>
  <box frame="0" xtl="6" ytl="6" xbr="7" ybr="7" outside="0"/>
  <box frame="2" xtl="8" ytl="8" xbr="9" ybr="9" outside="1"/>
</track>"""
    ds = read_cvat(_write(tmp_path, body))
    assert [s.image_id for s in ds] == [0, 1]
    a, b = ds[0].gt, ds[1].gt
    assert a.xyxy[:, 0].tolist() == [2, 6] and b.xyxy[:, 0].tolist() == [0, 4]
    assert a.attributes["cvat_track_id"].tolist() == [-1, 7] and b.attributes["cvat_track_id"].tolist() == [-1, 7]
    assert a.attributes["rope"].tolist() == [None, "unknown"] and b.attributes["rope"].tolist() == [None, "correct"]


def test_label_defaults_stay_per_file_when_files_merge(tmp_path):
    box = '<image id="0" name="{n}.jpg" width="10" height="10"><box label="person" xtl="1" ytl="1" xbr="2" ybr="2"/></image>'
    a = _write(tmp_path, box.format(n="a"), "a.xml", default="wrong")
    b = _write(tmp_path, box.format(n="b"), "b.xml", default="correct")
    ds = read_cvat([a, b])
    assert [s.gt.attributes["rope"].tolist() for s in ds] == [["wrong"], ["correct"]]


@pytest.mark.parametrize(
    ("shape", "message", "place"),
    [
        ('<box label="person" xtl="0" ytl="0" xbr="1" ybr="1"/><box label="person" xtl="a" ytl="0" xbr="1" ybr="1"/>',
         "xtl='a' is not a number", "<box #1"),
        ('<box label="person" xtl="0" ytl="0" xbr="1" ybr="1"/><box label="person" xtl="0" ytl="0" xbr="1" ybr="1">'
         "<attribute>x</attribute></box>", "without name", "<box #1"),
        ('<box label="person" xtl="0" ytl="0" xbr="1" ybr="1"/><box xtl="0" ytl="0" xbr="1" ybr="1"/>',
         "missing attribute 'label'", "<box #1"),
    ],
)  # fmt: skip
def test_bad_box_after_good_ones_names_the_element(tmp_path, shape, message, place):
    path = _write(tmp_path, f'<image id="0" name="x.jpg" width="10" height="10">{shape}</image>')
    with pytest.raises(InputError) as err:
        read_cvat(path)
    assert message in str(err.value) and place in str(err.value) and "a.xml" in str(err.value)

"""Malformed and hostile input: one InputError naming the file and the place, never a traceback."""

from __future__ import annotations

import pytest

from sitesight.cli.main import main
from sitesight.errors import InputError
from sitesight.formats import read_dataset
from sitesight.formats.coco import read_coco, read_coco_results
from sitesight.formats.cvat import read_cvat
from sitesight.formats.voc import read_voc
from sitesight.formats.yolo import read_yolo

GOOD_IMAGE = '<image id="0" name="a.jpg" width="10" height="10">'
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotations><version>1.1</version><image id="0" name="&lol3;" width="1" height="1"/></annotations>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><version>1.1</version><image id="0" name="&xxe;" width="1" height="1"/></annotations>"""

CVAT_CASES = {
    "truncated": ("<annotations><version>1.1</version>\n<image id='0' name='a.jpg' width='1'", r"line 2, column \d+.*malformed XML"),
    "empty": ("", r"empty file"),
    "bomb": (BOMB, r"DOCTYPE.*entity declaration 'lol' refused"),
    "external": (EXTERNAL, r"DOCTYPE.*entity declaration 'xxe' refused"),
    "bad_number": (f'<annotations>{GOOD_IMAGE}<box label="a" xtl="abc" ytl="1" xbr="2" ybr="2"/></image></annotations>',
                   r'<image #0 id="0" name="a.jpg"> <box #0 label="a">\): attribute xtl=\'abc\' is not a number'),
    "missing_width": ('<annotations><image id="0" name="a.jpg" height="10"/></annotations>', r"missing attribute 'width'"),
    "missing_coord": (f'<annotations>{GOOD_IMAGE}<box label="a" xtl="1" ytl="1" xbr="2"/></image></annotations>', r"missing attribute 'ybr'"),
    "bad_points": (f'<annotations>{GOOD_IMAGE}<polygon label="a" points="1,2;3"/></image></annotations>', r"<polygon #0.*bad geometry"),
    "bad_rle": (f'<annotations>{GOOD_IMAGE}<mask label="a" rle="1,x" left="0" top="0" width="2" height="2"/></image></annotations>', r"<mask #0.*bad geometry"),
    "bad_id": ('<annotations><image id="zero" name="a.jpg" width="1" height="1"/></annotations>', r"id\): 'zero' is not an integer"),
    "no_label": (f'<annotations>{GOOD_IMAGE}<box xtl="1" ytl="1" xbr="2" ybr="2"/></image></annotations>', r"missing attribute 'label'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CVAT_CASES))
def test_cvat_malformed(tmp_path, case):
    text, pattern = CVAT_CASES[case]
    path = tmp_path / f"{case}.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=pattern) as info:
        read_cvat(path)
    assert str(path) in str(info.value)


COCO_CASES = {
    "truncated": ('{"images": [\n{"id": 1,', r"line 2, column \d+\): malformed JSON"),
    "empty": ("  \n", r"empty file"),
    "not_object": ("[1, 2]", r"expected a JSON object"),
    "no_images": ('{"categories": [], "annotations": []}', r"\(images\): expected key 'images'"),
    "bbox_len": ('{"images":[{"id":1,"file_name":"a","width":5,"height":5}],"categories":[{"id":1,"name":"a"}],'
                 '"annotations":[{"image_id":1,"category_id":1,"bbox":[1,2,3]}]}', r"annotations\[0\].bbox\): expected bbox"),
    "bbox_type": ('{"images":[{"id":1,"file_name":"a","width":5,"height":5}],"categories":[{"id":1,"name":"a"}],'
                  '"annotations":[{"image_id":1,"category_id":1,"bbox":[1,"x",3,4]}]}', r"annotations\[0\].bbox\): expected a number, got 'x'"),
    "missing_key": ('{"images":[{"id":1,"file_name":"a","height":5}],"categories":[],"annotations":[]}', r"images\[0\]\): missing key 'width'"),
    "bad_image_ref": ('{"images":[],"categories":[{"id":1,"name":"a"}],"annotations":[{"image_id":9,"category_id":1,"bbox":[0,0,1,1]}]}',
                      r"annotations\[0\].image_id\): image_id 9 is not in 'images'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_coco_malformed(tmp_path, case):
    text, pattern = COCO_CASES[case]
    path = tmp_path / f"{case}.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=pattern):
        read_coco(path)


def test_coco_results_malformed(tmp_path, tiny_dataset):
    path = tmp_path / "r.json"
    path.write_text('[{"image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, {"image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1]}]')
    with pytest.raises(InputError, match=r"r.json \(\[1\]\): image_id 77 matches no sample"):
        read_coco_results(path, tiny_dataset)


def test_yolo_malformed(tmp_path):
    from PIL import Image

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "data.yaml").write_text("names: [a]\ntrain: images/train\n")
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 zero 0.2 0.2\n")
    with pytest.raises(InputError, match=r"a.txt \(line 2\): expected 'class cx cy w h'"):
        read_yolo(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a\ntrain: images/train\n")
    with pytest.raises(InputError, match=r"data.yaml \(line \d+, column \d+\): malformed YAML"):
        read_yolo(tmp_path)


def test_voc_malformed(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text("<annotation><filename>a.jpg</filename><size><width>5</width><height>5</height></size>"
                    "<object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>two</xmax><ymax>3</ymax></bndbox></object></annotation>")  # fmt: skip
    with pytest.raises(InputError, match=r"a.xml \(<object #0>\): <bndbox><xmax> is 'two'"):
        read_voc(path)
    path.write_text("<annotation><filename>a.jpg</filename><object><name>x</name></object></annotation>")
    with pytest.raises(InputError, match=r"<object> without <bndbox>"):
        read_voc(path)


def test_cli_prints_one_line_and_exits_1(tmp_path, capsys):
    path = tmp_path / "bomb.xml"
    path.write_text(BOMB)
    assert main(["data", "stats", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "refused" in err[0]


def test_read_dataset_unknown_thing(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match="unknown annotation file type"):
        read_dataset(path)

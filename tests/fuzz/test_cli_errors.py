"""The CLI turns every hostile input into ONE line naming the file, never an exception class name.

Each case is a file that crashed, hung or slipped through before (issue #14): the command must exit
1 with a single bounded line that contains the file's name and no ``SomethingError:``.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from sitesight.cli.main import error_line, main

CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Invalid|Warning)\b")
MAX_LINE = 420  # "error: " + the 400-character message


def _png(path: Path, w: int = 8, h: int = 6) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(3 * w) for _ in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))  # fmt: skip
    return path


COCO_OK = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], "categories": [{"id": 1, "name": "p"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}  # fmt: skip
CVAT_HEAD = '<annotations><meta><task><labels><label><name>p</name></label></labels></task></meta>'


def _cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, the file name the message must carry)."""
    cases: dict[str, tuple[list[str], str]] = {}

    def add(name: str, filename: str, content: str | bytes, argv: list[str]) -> None:
        path = tmp / name / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        cases[name] = ([a.replace("{f}", str(path)).replace("{d}", str(path.parent)) for a in argv], filename)

    validate, convert = ["data", "validate", "{f}", "--no-images"], ["data", "convert", "{f}", "{d}/out.json", "--to", "coco"]
    add("deep_json", "deep.json", "[" * 100_000 + "]" * 100_000, validate)
    add("deep_json_in_key", "deep2.json", '{"images": ' + "[" * 5000 + "]" * 5000 + ', "categories": []}', validate)
    add("huge_int", "huge.json", json.dumps(COCO_OK).replace('"width": 8', '"width": ' + "9" * 5000), validate)
    add("int_2_63", "i63.json", json.dumps(COCO_OK).replace('"id": 1, "file_name"', '"id": 9223372036854775808, "file_name"'), convert)
    add("negative_size", "neg.json", json.dumps(COCO_OK).replace('"width": 8', '"width": -8'), convert)
    add("nan_bbox_coco", "nanbox.json", json.dumps(COCO_OK).replace("[1, 1, 2, 2]", "[1, NaN, 2, 2]"), convert)
    add("long_file_name", "longname.json", json.dumps(COCO_OK).replace('"a.png"', json.dumps("x" * 5_000_000)),
        ["data", "convert", "{f}", "{d}/yolo", "--to", "yolo", "--images", "none"])  # a 5 MB name is never echoed whole
    add("cvat_inf_width", "infw.xml", CVAT_HEAD + '<image id="0" name="a.png" width="inf" height="6"/></annotations>', convert)
    add("cvat_nan_box", "nanbox.xml", CVAT_HEAD + '<image id="0" name="a.png" width="8" height="6">'
        '<box label="p" xtl="nan" ytl="1" xbr="2" ybr="2"/></image></annotations>', convert)  # fmt: skip
    add("cvat_z_order_inf", "zinf.xml", CVAT_HEAD + '<image id="0" name="a.png" width="8" height="6">'
        '<box label="p" xtl="1" ytl="1" xbr="2" ybr="2" z_order="inf"/></image></annotations>', convert)  # fmt: skip
    add("cvat_mask_width_nan", "mask.xml", CVAT_HEAD + '<image id="0" name="a.png" width="8" height="6">'
        '<mask label="p" rle="1, 2" left="0" top="0" width="nan" height="2"/></image></annotations>', convert)  # fmt: skip
    add("xml_entity_bomb", "bomb.xml", '<!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><annotations><meta></meta>&b;</annotations>',
        convert)  # fmt: skip
    add("voc_inf_box", "voc.xml", "<annotation><filename>a.png</filename><size><width>8</width><height>6</height></size>"
        "<object><name>p</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>inf</xmax><ymax>2</ymax></bndbox></object></annotation>",
        convert)  # fmt: skip
    add("yaml_alias_bomb", "data.yaml", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "names: *c\n", ["data", "validate", "{d}", "--no-images"])  # fmt: skip
    add("yaml_duplicate_names", "data.yaml", "names: [helmet, head, helmet]\n", ["data", "validate", "{d}", "--no-images"])
    # a YOLO class id that would size a 99,999,999,999-entry name list
    (tmp / "yolo_big_id" / "images").mkdir(parents=True)
    _png(tmp / "yolo_big_id" / "images" / "a.png")
    add("yolo_big_id", "a.txt", "99999999999 0.5 0.5 0.1 0.1\n", ["data", "validate", str(tmp / "yolo_big_id")])
    (tmp / "yolo_big_id" / "a.txt").rename(tmp / "yolo_big_id" / "images" / "a.txt")
    add("results_nan_score", "res.json", '[{"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "score": NaN}]',
        ["eval", "coco", "--gt", str(tmp / "gt.json"), "--pred", "{f}"])  # fmt: skip
    add("cls_nan_probability", "cls.csv", "label,a,b\na,nan,0.5\n", ["eval", "cls", "--pred", "{f}"])
    add("anomaly_inf_score", "an.csv", "label,score\nnormal,0.1\nanomalous,inf\n", ["eval", "anomaly", "--scores", "{f}"])
    add("csv_huge_cell", "big.csv", 'label,score\nnormal,"' + "9" * 300_000 + '"\n', ["eval", "anomaly", "--scores", "{f}"])
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[list[str], str]]:
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "gt.json").write_text(json.dumps(COCO_OK))
    return _cases(tmp)


CASE_NAMES = [
    "deep_json", "deep_json_in_key", "huge_int", "int_2_63", "negative_size", "nan_bbox_coco", "long_file_name",
    "cvat_inf_width", "cvat_nan_box", "cvat_z_order_inf", "cvat_mask_width_nan", "xml_entity_bomb", "voc_inf_box",
    "yaml_alias_bomb", "yaml_duplicate_names", "yolo_big_id", "results_nan_score", "cls_nan_probability",
    "anomaly_inf_score", "csv_huge_cell",
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_one_line_naming_the_file(cases, name, capsys):
    argv, filename = cases[name]
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 1, (name, captured.err[-2000:])
    assert len(errors) == 1, (name, lines[-5:])
    line = errors[0]
    assert filename in line, (name, line)
    assert not CLASS_NAME.search(line), (name, line)
    assert "Traceback" not in captured.err and len(line) <= MAX_LINE, (name, len(line))


def test_error_line_of_library_exceptions_drops_class_names():
    assert error_line(FileNotFoundError(2, "No such file or directory", "/data/x.json")) == "/data/x.json: no such file or directory"
    assert error_line(ValueError("ArrowInvalid: Parquet magic bytes not found")) == "Parquet magic bytes not found"
    assert len(error_line(ValueError("y" * 10_000))) <= 400


def test_validate_flags_non_finite_and_degenerate_boxes():
    """A dataset built in code (readers refuse these) still gets every bad box flagged."""
    import numpy as np

    from sitesight.dataset import Dataset, Sample
    from sitesight.detections import Detections
    from sitesight.validation import validate_dataset

    xyxy = np.array([[1, 1, 5, 5], [np.nan, 1, 5, 5], [1, 1, np.inf, 5], [5, 1, 1, 5], [1, 3, 5, 3]], np.float32)
    ds = Dataset(class_names=("p",), samples=(Sample(path="a.png", image_wh=(10, 10), gt=Detections(xyxy=xyxy, class_id=[0] * 5)),))
    issues = validate_dataset(ds, check_images=False)
    flagged = {(i.code, i.where.split()[1]) for i in issues if i.code in ("non_finite_box", "zero_area")}
    assert flagged == {("non_finite_box", "#1"), ("non_finite_box", "#2"), ("zero_area", "#3"), ("zero_area", "#4")}


def test_convert_never_writes_negative_or_non_finite_coco_boxes(tmp_path, capsys):
    """An inverted CVAT box (xbr < xtl) reads (validate flags it); COCO output refuses it, naming the image."""
    src = tmp_path / "inv.xml"
    src.write_text(CVAT_HEAD + '<image id="0" name="a.png" width="8" height="6"><box label="p" xtl="5" ytl="1" xbr="2" ybr="4"/></image></annotations>')
    code = main(["data", "convert", str(src), str(tmp_path / "out.json"), "--to", "coco"])
    err = capsys.readouterr().err
    assert code == 1 and "a.png" in err and "negative" in err and not (tmp_path / "out.json").exists(), err
    assert main(["data", "validate", str(src), "--no-images"]) == 1
    assert "zero_area" in capsys.readouterr().out

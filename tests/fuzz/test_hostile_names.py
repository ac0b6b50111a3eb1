"""Every command that writes files, fed hostile names (``..``, absolute paths, NUL, very long): nothing
is created outside its output folder, and each run ends in exit 0 or one clear error line.

Names come from the data (CVAT ``subset`` and image ``name``, COCO ``file_name``, label names) and from
the command line (split names, part prefixes). A sandbox holds the inputs and the output folder; after
each command, the sandbox outside the output folder and the absolute targets must be untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fuzz.hostile import ABSOLUTE, TAG
from tests.fuzz.hostile import NAMES as HOSTILE

from sitesight.cli.main import main

NAMES = {k: v for k, v in HOSTILE.items() if k != "newline"}  # (a line break: tests/fuzz/test_hostile_names_runs.py)


def _cvat(subset: str, image: str, label: str) -> str:
    from xml.sax.saxutils import quoteattr

    def attr(text: str) -> str:
        return quoteattr(text.replace("\u0000", ""))  # XML 1.0 cannot carry NUL: the COCO sources do

    return (f'<annotations><version>1.1</version><meta><task><name>{TAG}</name><labels><label><name>person</name></label>'
            f'<label><name>{label.replace(chr(0), "").replace("<", "")}</name></label></labels></task></meta>'
            f'<image id="0" name={attr(image)} width="8" height="6" subset={attr(subset)}>'
            f'<box label="person" xtl="1" ytl="1" xbr="4" ybr="4"/></image>'
            f'<image id="1" name="good.png" width="8" height="6" subset={attr(subset)}>'
            f'<box label="person" xtl="2" ytl="2" xbr="5" ybr="5"/></image></annotations>')  # fmt: skip


def _coco(file_name: str) -> str:
    return json.dumps({"images": [{"id": 1, "file_name": file_name, "width": 8, "height": 6},
                                  {"id": 2, "file_name": "good.png", "width": 8, "height": 6}],
                       "categories": [{"id": 1, "name": "person"}],
                       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]},
                                       {"id": 2, "image_id": 2, "category_id": 1, "bbox": [2, 2, 3, 3]}]})  # fmt: skip


def _commands(src: Path, out: Path, hostile: str) -> dict[str, list[str]]:
    cmds = {f"convert_{fmt}": ["data", "convert", str(src), str(out / f"conv_{fmt}"), "--to", fmt] for fmt in ("cvat", "coco", "yolo", "voc")}
    cmds |= {
        "split_yolo": ["data", "split", str(src), str(out / "split_yolo"), "--to", "yolo", "--fraction", "train=0.5", "--fraction", f"{hostile}=0.5", "--group-by", "none"],
        "split_voc": ["data", "split", str(src), str(out / "split_voc"), "--to", "voc", "--fraction", "a=0.5", "--fraction", f"{hostile}=0.5", "--group-by", "none"],
        "filter": ["data", "filter", str(src), str(out / "filter"), "--to", "voc"],
        "mix": ["data", "mix", str(out / "mix"), "--source", f"s={src}", "--to", "yolo"],
        "tile": ["data", "tile", str(src), str(out / "tile"), "--to", "yolo", "--slice", "4x4"],
        "package": ["data", "package", str(src), str(out / "pkg"), "--zip", "--max-images", "1"],
        "package_prefix": ["data", "package", str(src), str(out / "pkg2"), "--prefix", hostile],
        "stats": ["data", "stats", str(src), "--json", str(out / "stats.json")],
        "validate": ["data", "validate", str(src), "--json", str(out / "validate.json")],
    }  # fmt: skip
    return cmds


def _snapshot(root: Path, skip: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in root.rglob("*") if not p.is_relative_to(skip) and not p.is_symlink()}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(NAMES))
@pytest.mark.parametrize("source", ["cvat_subset", "cvat_image", "coco_file_name"])
def test_nothing_written_outside_the_output_folder(sandbox, kind, source, capsys):
    hostile = NAMES[kind]
    case = sandbox / f"{source}-{kind}"
    data, out = case / "data" / "inner", case / "out"
    data.mkdir(parents=True)
    for name in ("good.png", "x", "abs"):  # images a hostile name might reach inside the sandbox
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(data / f"{name}.png" if name != "good.png" else data / name, format="PNG")
    (case / "secret.txt").write_text("not for the output")  # what "../" names would reach
    if source == "coco_file_name":
        src = data / "annotations.json"
        src.write_text(_coco(hostile))
    else:
        src = data / "annotations.xml"
        subset, image = (hostile, "good2.png") if source == "cvat_subset" else ("train", hostile)
        src.write_text(_cvat(subset, image, "car"))
    before = _snapshot(sandbox.parent, out)
    outcomes = {}
    for name, argv in _commands(src, out, hostile).items():
        code = main(argv)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert "Traceback" not in err, (name, err[-1500:])
        assert code in (0, 1), (name, code, err[-1500:])
        if code == 1 and name != "validate":  # (validate exits 1 when it lists problems)
            assert len(errors) == 1 and len(errors[0]) <= 420, (name, errors)
        outcomes[name] = code
        after = _snapshot(sandbox.parent, out)
        assert after == before, (name, sorted(set(after) ^ set(before))[:5])
        assert not ABSOLUTE.exists(), (name, list(ABSOLUTE.rglob("*"))[:5])
        for escaped in (out.parent / "escaped", out.parent.parent / "escaped"):
            assert not escaped.exists(), (name, escaped)
    # the test is not vacuous: harmless names still convert
    if kind == "long" and source == "cvat_subset":
        assert outcomes["convert_coco"] == 0 and outcomes["convert_cvat"] == 0


def teardown_module() -> None:
    shutil.rmtree(ABSOLUTE, ignore_errors=True)


def test_output_path_refuses_every_escape(tmp_path):
    import os

    from sitesight.errors import InputError
    from sitesight.pathsafe import input_path, output_path, safe_component

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    os.symlink(tmp_path, out / "link")  # a link inside the output folder that points out of it
    assert output_path(out, "sub/../a.jpg") == out / "a.jpg"
    for bad in ("../a", "/etc/passwd", "C:\\x", "a\x00b", "", "..", "sub/../../a", "x" * 300, "link/a.jpg", "\\\\srv\\share"):
        with pytest.raises(InputError):
            output_path(out, bad, source="labels.xml")
    for bad in ("a/b", "..", ".", "", "a\x00"):
        with pytest.raises(InputError):
            safe_component(bad)
    with pytest.raises(InputError, match="allow-outside-root"):
        input_path(out / "sub", "../../secret.txt")
    assert input_path(out / "sub", "../../secret.txt", allow_outside=True) == out / "sub" / "../../secret.txt"

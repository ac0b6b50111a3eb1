"""Frames named by storage URLs (pyarrow filesystems), run here through file:// on the local disk."""

from __future__ import annotations

import numpy as np
import pytest
from tests.engines.scenes import write_frames

from sitesight.engines.storage import list_uri_frames, read_uri_frame
from sitesight.errors import InputError
from sitesight.images import read_image_rgb


def test_urls_list_and_decode_like_local_files(tmp_path):
    paths = write_frames(tmp_path / "frames" / "cam1", 3)
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    keys = list_uri_frames([f"file://{tmp_path / 'frames'}", f"file://{paths[0]}"])  # a folder, then a file again
    assert keys == [f"file://{p}" for p in paths]
    np.testing.assert_array_equal(read_uri_frame(keys[1]), read_image_rgb(paths[1]))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match=r"^file://.*broken\.png: not a readable image"):
        read_uri_frame(f"file://{tmp_path / 'broken.png'}")
    with pytest.raises(InputError, match="no such file or folder"):
        list_uri_frames([f"file://{tmp_path / 'missing'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image under this URL"):
        list_uri_frames([f"file://{tmp_path / 'empty'}"])


def test_missing_ray_extra_names_the_pip_line(monkeypatch, tmp_path, capsys):
    import sys

    from sitesight.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the [ray] extra
    write_frames(tmp_path / "frames", 1)
    assert main(["detect", str(tmp_path / "frames"), "--model", "onnx:" + str(tmp_path / "m.onnx"), "--out",
                 str(tmp_path / "run"), "--engine", "ray"]) == 1  # the spec is checked first: no such model file
    (tmp_path / "m.onnx").write_bytes(b"")
    assert main(["detect", str(tmp_path / "frames"), "--model", "onnx:" + str(tmp_path / "m.onnx"), "--out",
                 str(tmp_path / "run"), "--engine", "ray"]) == 1
    assert "pip install 'sitesight[ray]'" in capsys.readouterr().err

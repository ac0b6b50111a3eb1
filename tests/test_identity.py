"""One identity: the frame aligner's rule and class matching by name, on hand-written cases."""

from __future__ import annotations

import pytest

from sitesight.errors import InputError
from sitesight.identity import align_paths, class_lookup, frame_root, parse_class_map, relative_key


def test_a_frame_matches_when_the_shorter_relative_path_is_the_tail_of_the_longer():
    keys = ["/data/site/cam1/000.jpg", "/data/site/cam2/000.jpg", "/data/site/cam2/001.jpg", "/data/other/007.jpg"]
    gt = ["cam1/000.jpg", "cam2/000.jpg", "001.jpg", "cam9/007.jpg", "never.jpg"]
    a = align_paths(keys, gt, key_root="/data/site", gt_root="/labels")
    # cam1/000 and cam2/000 by their folder; 001.jpg by its unique name; cam9/007 is another camera's frame
    assert a.sample.tolist() == [0, 1, 2, -1]
    assert a.coverage.to_dict() == {"run": 4, "gt": 5, "both": 3, "gt_only": 2, "run_only": 1}
    assert a.gt_only(5).tolist() == [3, 4]


def test_ambiguities_are_errors_that_list_the_candidates():
    with pytest.raises(InputError, match=r"matches 2 ground-truth images by '000.jpg': a/000.jpg, b/000.jpg"):
        align_paths(["/x/000.jpg"], ["a/000.jpg", "b/000.jpg"], key_root="/x")
    with pytest.raises(InputError, match=r"ground-truth image '000.jpg' matches 2 run frames"):
        align_paths(["/x/cam1/000.jpg", "/x/cam2/000.jpg"], ["000.jpg"], key_root="/x")


def test_relative_keys_and_roots():
    assert relative_key("/data/site/cam1/000.jpg", "/data/site") == "cam1/000.jpg"
    assert relative_key("/elsewhere/a.jpg", "/data/site") == "/elsewhere/a.jpg"
    assert frame_root(["/d/s/c1/a.jpg", "/d/s/c2/b.jpg", "/d/s/v.mp4#frame=3"]) == "/d/s"


def test_classes_match_by_name_through_the_map():
    assert parse_class_map("With Helmet=helmet, vehicle=") == (("With Helmet", "helmet"), ("vehicle", ""))
    lookup = class_lookup(["person", "With Helmet", "vehicle"], ["helmet", "person"],
                          class_map=parse_class_map("With Helmet=helmet,vehicle="))
    assert lookup.tolist() == [1, 0, -1]
    with pytest.raises(InputError, match=r"\['vehicle'\] are not ground-truth classes; model classes \['person', 'vehicle'\], "
                                         r"ground-truth classes \['helmet', 'person'\]"):
        class_lookup(["person", "vehicle"], ["helmet", "person"])
    assert class_lookup(["a", "b"], ["x"], class_agnostic=True).tolist() == [0, 0]
    with pytest.raises(InputError, match="class ids 0..2 but the ground truth has 2 classes"):
        class_lookup(None, ["a", "b"], num_source=3)

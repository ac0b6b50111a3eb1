"""sitesight.synth: determinism, ground truth that matches the drawn pixels, ranges, metadata.

Tightness and rope visibility are checked against the pixels themselves: a frame rendered with a
worker is compared with the same frame without it (or without its rope), so the reference is the
image, not the boxes the renderer reported.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from sitesight.errors import InputError
from sitesight.synth import (
    ROPE_VALUES,
    SITE_CLASSES,
    Conditions,
    SiteLayout,
    compose_frame,
    make_site_dataset,
    render_site_frame,
    sample_workers,
    write_site_dataset,
)

PERSON, HELMET, HEAD = (SITE_CLASSES.index(c) for c in ("person", "helmet", "head"))
NEUTRAL = Conditions(darkness=0.0, tint=(1.0, 1.0, 1.0), light_xy=(0.5, 0.5), blur_sigma=0.0, noise_sigma=0.0, noise_seed=0)


@pytest.fixture(scope="module")
def frames_1080p():
    """Six full-size frames with their ground truth (rendered once for the module)."""
    return [render_site_frame(np.random.default_rng(seed)) for seed in range(6)]


def _plain_layout(wh=(640, 360)) -> SiteLayout:
    return SiteLayout(image_wh=wh, horizon_y=-40.0, person_scale=0.45, ground="gravel", texture_seed=3,
                      scaffolds=(), clutter=())


def _one_worker(rope: str, helmet=True, seed: int = 1):
    layout = _plain_layout()
    wk = sample_workers(np.random.default_rng(seed), layout, 1)[0]
    wk = replace(wk, x=320.0, foot_y=300.0, height=150.0, depth_y=300.0, scaffold=-1, level=0, rope=rope,
                 harness=rope != "none", rope_side=1, helmet=(250, 210, 20) if helmet else None,
                 anchor_xy=(330.5, 300.0 - 150.0 * 1.1) if rope == "correct" else (330.5, 298.0),
                 facing=0.7, arms=(0.1, 0.1))  # the narrowest figure: its box is the tightest around the rope
    return layout, wk


def test_same_seed_same_pixels_and_boxes_different_seed_differs():
    a_rgb, a_gt = render_site_frame(np.random.default_rng(7), (800, 450), overlay_text="2024-05-06 08:00:00  CAM01")
    b_rgb, b_gt = render_site_frame(np.random.default_rng(7), (800, 450), overlay_text="2024-05-06 08:00:00  CAM01")
    c_rgb, c_gt = render_site_frame(np.random.default_rng(8), (800, 450))
    assert a_rgb.shape == (450, 800, 3) and a_rgb.dtype == np.uint8
    assert np.array_equal(a_rgb, b_rgb) and a_gt.equals(b_gt)
    assert not np.array_equal(a_rgb, c_rgb)


def test_boxes_inside_frame_classes_and_attributes_consistent(frames_1080p):
    for rgb, gt in frames_1080p:
        h, w = rgb.shape[:2]
        assert (w, h) == (1920, 1080)
        b = gt.xyxy
        assert len(gt) > 0
        assert np.all(b[:, 0] >= 0) and np.all(b[:, 1] >= 0) and np.all(b[:, 2] <= w) and np.all(b[:, 3] <= h)
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        assert set(np.unique(gt.class_id)) <= {PERSON, HELMET, HEAD}
        rope, occluded = gt.attributes["safety_rope"], gt.attributes["occluded"]
        assert rope.dtype == object and occluded.dtype == object
        for cls, r, o in zip(gt.class_id, rope, occluded, strict=True):
            assert o in ("true", "false")
            assert (r in ROPE_VALUES) if cls == PERSON else (r is None)
        n_person = int(np.sum(gt.class_id == PERSON))
        assert 3 <= n_person <= 40
        assert np.sum(gt.class_id == HEAD) <= n_person and np.sum(gt.class_id == HELMET) <= np.sum(gt.class_id == HEAD)


def _contains(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(M, N) bool: outer box m contains inner box n."""
    return ((outer[:, None, 0] <= inner[None, :, 0]) & (outer[:, None, 1] <= inner[None, :, 1])
            & (outer[:, None, 2] >= inner[None, :, 2]) & (outer[:, None, 3] >= inner[None, :, 3]))


def test_heads_inside_upper_part_of_a_person_and_helmets_inside_heads(frames_1080p):
    for _, gt in frames_1080p:
        persons = gt[gt.class_id == PERSON]
        heads, helmets = gt.xyxy[gt.class_id == HEAD], gt.xyxy[gt.class_id == HELMET]
        inside = _contains(persons.xyxy, heads)
        assert inside.any(axis=0).all(), "every head lies inside a person box"
        assert _contains(heads, helmets).any(axis=0).all(), "every helmet lies inside a head box"
        clear = persons.attributes["occluded"] == "false"
        for m in np.flatnonzero(clear):
            p = persons.xyxy[m]
            mine = heads[inside[m]]
            mine = mine[(mine[:, 1] - p[1]) < 0.3 * (p[3] - p[1])]
            assert len(mine) >= 1, f"unoccluded person {p} has a head in its top 30 %"
            cy = (mine[:, 1] + mine[:, 3]) / 2
            assert np.any((cy - p[1]) / (p[3] - p[1]) < 0.15)


def test_sizes_20_to_200_px_and_smaller_further_up(frames_1080p):
    heights, bottoms = [], []
    for _, gt in frames_1080p:
        persons = gt[(gt.class_id == PERSON) & (gt.attributes["occluded"] == "false")]
        heights += list(persons.xyxy[:, 3] - persons.xyxy[:, 1])
        bottoms += list(persons.xyxy[:, 3])
    heights, bottoms = np.array(heights), np.array(bottoms)
    # figure height 20..200 px; a helmet adds 2 % and the boots' last row 1 px
    assert heights.min() >= 19 and heights.max() <= 200 * 1.02 + 2
    assert np.sum(heights < 40) >= 5 and np.sum(heights > 100) >= 3, "both small and large workers occur"
    # perspective: feet lower in the frame → taller (scaffold workers stand on decks, so not perfect)
    assert np.corrcoef(heights, bottoms)[0, 1] > 0.6


def test_dark_frames_are_darker():
    def luma(rgb: np.ndarray) -> float:
        return float((rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).mean())

    bright, _ = render_site_frame(np.random.default_rng(3), (640, 360), darkness=0.05)
    dark, _ = render_site_frame(np.random.default_rng(3), (640, 360), darkness=0.8)
    assert luma(dark) < 0.5 * luma(bright)


def test_person_head_helmet_boxes_are_tight_to_the_drawn_pixels():
    layout, wk = _one_worker("none")
    empty, _ = compose_frame(layout, (), NEUTRAL)
    rgb, gt = compose_frame(layout, (wk,), NEUTRAL)
    assert list(gt.class_id) == [PERSON, HEAD, HELMET]
    assert list(gt.attributes["safety_rope"]) == ["unknown", None, None]
    diff = np.any(rgb != empty, axis=2)
    shadow_top = int(wk.foot_y - 0.035 * wk.height) - 1  # the ground shadow also changes pixels, below this row
    x1, y1, x2, y2 = gt.xyxy[0].astype(int)
    ys, xs = np.nonzero(diff[:shadow_top])
    assert ys.min() == y1 and xs.min() == x1 and xs.max() + 1 == x2, "top/left/right edges touch drawn pixels"
    assert abs(y2 - (wk.foot_y + 1)) <= 1, "bottom edge at the soles"
    # the helmet: the coloured pixels above the skin head are inside the helmet and head boxes
    hx1, hy1, hx2, hy2 = gt.xyxy[2]
    assert hy1 == y1 and gt.xyxy[1][1] == y1, "helmet top = head top = person top"
    assert hx1 >= x1 and hx2 <= x2 and hy2 < y1 + 0.15 * (y2 - y1)


def test_rope_state_is_visible_in_the_expanded_person_region():
    for rope, label in (("correct", "correct"), ("dangling", "wrong"), ("anchored_low", "wrong")):
        layout, wk = _one_worker(rope)
        rgb, gt = compose_frame(layout, (wk,), NEUTRAL)
        no_rope, gt0 = compose_frame(layout, (replace(wk, rope="none"),), NEUTRAL)
        assert gt.attributes["safety_rope"][0] == label and gt0.attributes["safety_rope"][0] == "unknown"
        x1, y1, x2, y2 = gt.xyxy[0]
        bh = y2 - y1
        ys, xs = np.nonzero(np.any(rgb != no_rope, axis=2))
        assert len(ys) > 30
        # every rope pixel lies in the person box widened to top +0.2 h, bottom +1.5 h (x unchanged)
        assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 - 0.2 * bh and ys.max() < y2 + 1.5 * bh
        above = np.sum(ys < y1 + 0.1 * bh)
        below = np.sum(ys > y1 + 0.6 * bh)
        if rope == "correct":
            assert above > 5 and below == 0, "a correct rope runs up above the head"
        else:
            assert above == 0 and below > 5, "a wrong rope hangs or runs down"


def test_small_or_unharnessed_workers_are_unknown():
    layout, wk = _one_worker("correct")
    small = replace(wk, height=26.0, anchor_xy=(wk.x + 2, wk.foot_y - 29))
    _, gt = compose_frame(layout, (small,), NEUTRAL)
    assert gt.attributes["safety_rope"][0] == "unknown"


def test_every_rope_value_and_class_occur_in_a_few_frames(frames_1080p):
    ropes = np.concatenate([gt.attributes["safety_rope"][gt.class_id == PERSON] for _, gt in frames_1080p])
    assert set(ropes) == set(ROPE_VALUES)
    classes = np.concatenate([gt.class_id for _, gt in frames_1080p])
    assert set(classes) == {PERSON, HELMET, HEAD}
    occluded = np.concatenate([gt.attributes["occluded"] for _, gt in frames_1080p])
    assert 0.05 < np.mean(occluded == "true") < 0.9


def test_make_site_dataset_metadata_and_prefix_stability():
    images, ds = make_site_dataset(6, seed=4, image_wh=(480, 270))
    assert len(images) == len(ds) == 6 and ds.class_names == SITE_CLASSES
    spec = ds.attribute_schema["safety_rope"]
    assert spec.values == ROPE_VALUES and spec.input_type == "radio" and spec.default == "unknown"
    assert spec.labels == ("person",)
    assert [s.image_id for s in ds] == list(range(6))
    assert [s.camera_id for s in ds] == ["cam0", "cam1", "cam2", "cam3", "cam0", "cam1"]
    assert all(s.image_wh == (480, 270) and images[i].shape == (270, 480, 3) for i, s in enumerate(ds))
    for cam in ("cam0", "cam1"):
        t = [s.timestamp for s in ds if s.camera_id == cam]
        assert 2 <= t[1] - t[0] <= 300
    first, ds3 = make_site_dataset(3, seed=4, image_wh=(480, 270))
    assert all(np.array_equal(a, b) for a, b in zip(first, images, strict=False))
    assert all(a.gt.equals(b.gt) for a, b in zip(ds3, ds, strict=False))


def test_timestamp_overlay_is_optional_and_only_touches_the_corner():
    with_text, _ = make_site_dataset(1, seed=1, image_wh=(640, 360))
    without, _ = make_site_dataset(1, seed=1, image_wh=(640, 360), timestamp_overlay=False)
    ys, xs = np.nonzero(np.any(with_text[0] != without[0], axis=2))
    assert len(ys) > 100 and ys.max() < 0.1 * 360 and xs.max() < 0.6 * 640


def test_write_site_dataset_jpegs_with_absolute_paths(tmp_path):
    ds = write_site_dataset(tmp_path / "frames", n_frames=2, seed=2, image_wh=(320, 180))
    images, mem = make_site_dataset(2, seed=2, image_wh=(320, 180))
    assert ds.root == (tmp_path / "frames").resolve()
    for sample, rgb, m in zip(ds, images, mem, strict=True):
        path = ds.image_path(sample)
        assert path.is_absolute() and path.is_file() and path.suffix == ".jpg"
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (320, 180)
            decoded = np.asarray(im.convert("RGB"), np.float64)
        assert np.abs(decoded - rgb).mean() < 4.0
        assert sample.gt.equals(m.gt) and sample.camera_id == m.camera_id


def test_bad_input_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="image_wh"):
        render_site_frame(np.random.default_rng(0), (10, 10))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_site_dataset(blocker, n_frames=1, image_wh=(320, 180))


def test_render_speed_sanity_1080p():
    rng = np.random.default_rng(11)
    start = time.perf_counter()
    rgb, gt = render_site_frame(rng, n_workers=40)
    elapsed = time.perf_counter() - start
    print(f"1080p frame with {int(np.sum(gt.class_id == PERSON))} persons rendered in {elapsed:.3f} s")
    assert rgb.shape == (1080, 1920, 3)


def test_cli_synth_writes_frames_and_coco_that_pycocotools_reads(tmp_path, capsys):
    from pycocotools.coco import COCO

    from sitesight.cli.main import main

    out = tmp_path / "site"
    assert main(["synth", str(out), "-n", "2", "--size", "320x180", "--seed", "5", "-f", "coco"]) == 0
    _, ds = make_site_dataset(2, seed=5, image_wh=(320, 180))
    coco = COCO(str(out / "annotations.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for sample in ds:
        (img,) = [i for i in coco.loadImgs(coco.getImgIds()) if i["file_name"].endswith(str(sample.path))]
        assert (img["width"], img["height"]) == (320, 180) and (out / str(sample.path)).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        got = sorted((names[a["category_id"]], *np.round(a["bbox"], 2)) for a in anns)
        want = sorted((SITE_CLASSES[c], b[0], b[1], b[2] - b[0], b[3] - b[1])
                      for c, b in zip(sample.gt.class_id, sample.gt.xyxy.tolist(), strict=True))
        assert got == want
    assert main(["synth", str(tmp_path / "x"), "--size", "12"]) == 1
    assert "--size" in capsys.readouterr().err

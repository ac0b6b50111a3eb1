"""`sitesight.sliced.merge` against SAHI 0.12.8's own postprocess classes, plus hand-computed cases."""

from __future__ import annotations

import importlib
import itertools
import tracemalloc

import numpy as np
import pytest

from sitesight import Detections, merge
from sitesight.sliced.merge import merge_groups

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

combine = pytest.importorskip("sahi.postprocess.combine")
ObjectPrediction = pytest.importorskip("sahi.prediction").ObjectPrediction
# the tuning constants of the merge's internal paths live in these two modules
grouping = importlib.import_module("sitesight.sliced.grouping")
folding = importlib.import_module("sitesight.sliced.folding")

PEERS = {"nms": combine.NMSPostprocess, "nmm": combine.NMMPostprocess, "greedy_nmm": combine.GreedyNMMPostprocess}
COMBOS = list(itertools.product(["nms", "nmm", "greedy_nmm"], ["iou", "ios"], [False, True]))
N_CASES = 500


@pytest.fixture(scope="module", autouse=True)
def _sahi_numpy_backend():
    """SAHI's numpy backend, as it resolves on a CPU box, without importing torch to find out."""
    backends = importlib.import_module("sahi.postprocess.backends")
    previous = backends.get_postprocess_backend()
    backends.set_postprocess_backend("numpy")
    yield
    backends.set_postprocess_backend(previous)


def _random_case(rng: np.random.Generator) -> tuple[Detections, float]:
    """One random input: uniform, clustered, crowded or integer-grid boxes; ties and duplicates."""
    n = int(rng.choice([0, 1, 2, rng.integers(3, 12), rng.integers(12, 48)], p=[0.04, 0.06, 0.1, 0.35, 0.45]))
    layout = rng.choice(["uniform", "clustered", "crowded", "grid"])
    if layout == "uniform":
        xy, wh = rng.uniform(0, 200, (n, 2)), rng.uniform(1, 60, (n, 2))
    elif layout == "clustered":
        centres = rng.uniform(0, 150, (max(1, n // 4), 2))
        sizes = rng.uniform(5, 50, (len(centres), 2))
        pick = rng.integers(0, len(centres), n)
        xy = centres[pick] + rng.normal(0, 3, (n, 2))
        wh = sizes[pick] * rng.normal(1, 0.1, (n, 2)).clip(0.5)
    elif layout == "crowded":
        xy, wh = 100 + rng.normal(0, 3, (n, 2)), rng.uniform(15, 40, (n, 2))
    else:  # integer grid: exact threshold hits (e.g. IoU exactly 0.5) and coordinate ties
        xy, wh = rng.integers(0, 20, (n, 2)) * 5.0, rng.integers(1, 8, (n, 2)) * 5.0
    xy = xy.clip(0)
    xyxy = np.concatenate([xy, xy + wh], axis=1)
    if n and rng.random() < 0.1:
        xyxy[rng.integers(0, n), 2] = xyxy[rng.integers(0, n), 0]  # maybe a zero-width box
        xyxy[:, 2] = np.maximum(xyxy[:, 2], xyxy[:, 0])
    if rng.random() < 0.5:
        score = rng.choice([0.25, 0.5, 0.75], n)  # many ties in score
    else:
        score = rng.uniform(0.05, 1, n)
    if n > 1 and rng.random() < 0.3:  # exact duplicates, some with the same score
        src, dst = rng.integers(0, n, n // 3 + 1), rng.integers(0, n, n // 3 + 1)
        xyxy[dst] = xyxy[src]
        same = rng.random(len(dst)) < 0.5
        score[dst[same]] = score[src[same]]
    class_id = rng.integers(0, int(rng.integers(1, 4)), n)
    threshold = float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, round(float(rng.uniform(0.05, 0.95)), 3)]))
    if threshold == 0.0 and rng.random() < 0.7:
        threshold = 0.5
    return Detections(xyxy=xyxy, score=score, class_id=class_id), threshold


def _sahi(d: Detections, method: str, metric: str, threshold: float, class_agnostic: bool):
    predictions = [
        ObjectPrediction(bbox=box, category_id=c, score=s)
        for box, c, s in zip(d.xyxy.tolist(), d.class_id.tolist(), d.score.tolist(), strict=True)
    ]
    peer = PEERS[method](match_threshold=threshold, match_metric=metric.upper(), class_agnostic=class_agnostic)
    out = peer(predictions)
    return (
        np.array([p.bbox.to_xyxy() for p in out], np.float64).reshape(-1, 4),
        np.array([p.score.value for p in out], np.float64),
        np.array([p.category.id for p in out], np.int64),
    )


def _canonical(xyxy, score, class_id):
    order = np.lexsort((class_id, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))
    return xyxy[order], score[order], class_id[order]


def _assert_same(ours: Detections, theirs, ordered: bool, context: str) -> None:
    mine = (ours.xyxy.astype(np.float64), ours.score.astype(np.float64), ours.class_id)
    if not ordered:  # class-aware SAHI lists its output class by class; ours is score-ordered
        mine, theirs = _canonical(*mine), _canonical(*theirs)
    assert len(mine[0]) == len(theirs[0]), f"{context}: {len(mine[0])} boxes, sahi {len(theirs[0])}"
    np.testing.assert_allclose(mine[0], theirs[0], atol=1e-4, rtol=0, err_msg=context)
    np.testing.assert_allclose(mine[1], theirs[1], atol=1e-4, rtol=0, err_msg=context)
    np.testing.assert_array_equal(mine[2], theirs[2], err_msg=context)


@pytest.fixture(scope="module")
def cases() -> list[tuple[Detections, float]]:
    rng = np.random.default_rng(20240611)
    return [_random_case(rng) for _ in range(N_CASES)]


@pytest.fixture(scope="module")
def references(cases) -> dict:
    """SAHI's answer for every case and combination, computed once and shared by the tests."""
    return {
        (k, combo): _sahi(d, *combo[:2], threshold, combo[2]) for k, (d, threshold) in enumerate(cases) for combo in COMBOS
    }


@pytest.mark.parametrize("method,metric,class_agnostic", COMBOS)
def test_merge_equals_sahi_on_random_cases(cases, references, method, metric, class_agnostic):
    assert sum(len(d) == 0 for d, _ in cases) > 5 and sum(len(d) == 1 for d, _ in cases) > 5
    for k, (d, threshold) in enumerate(cases):
        ours = merge(d, method=method, metric=metric, threshold=threshold, class_agnostic=class_agnostic)
        context = f"case {k}: n={len(d)} thr={threshold}"
        _assert_same(ours, references[(k, (method, metric, class_agnostic))], class_agnostic, context)


@pytest.mark.parametrize(
    "setting,value",
    [("_SMALL", 0), ("_PAIR_BUDGET", 0), ("_MAX_ROUNDS", 1), ("_MIN_VECTOR_GROUPS", 1), ("_MIN_VECTOR_GROUPS", 10**9)],
)
def test_every_internal_path_equals_sahi(cases, references, monkeypatch, setting, value):
    """The strip sweep, the row-by-row path, the one-by-one keeper finish, both fold loops."""
    monkeypatch.setattr(folding if setting == "_MIN_VECTOR_GROUPS" else grouping, setting, value)
    for k, (d, threshold) in enumerate(cases[:50]):
        for combo in COMBOS:
            ours = merge(d, method=combo[0], metric=combo[1], threshold=threshold, class_agnostic=combo[2])
            _assert_same(ours, references[(k, combo)], combo[2], f"{setting}={value} case {k} {combo}")


def _clustered(n: int, seed: int, image_wh=(1920, 1080)) -> Detections:
    """Sliced-detection-like clusters: jittered, sometimes cut copies of objects, three classes."""
    rng = np.random.default_rng(seed)
    n_obj = n // 4
    size = np.exp(rng.uniform(np.log(15), np.log(150), (n_obj, 1))) * np.array([[0.5, 1.0]])
    corner = rng.uniform(0, 1, (n_obj, 2)) * (np.array(image_wh) - size)
    parent = rng.integers(0, n_obj, n)
    xyxy = np.concatenate([corner, corner + size], 1)[parent] + rng.normal(0, 0.05, (n, 4)) * np.tile(size, 2)[parent]
    cut = rng.random(n) < 0.2
    xyxy[cut, 2] = xyxy[cut, 0] + (xyxy[cut, 2] - xyxy[cut, 0]) * 0.5
    xyxy = np.maximum(xyxy.clip(0), np.concatenate([np.zeros((n, 2)), xyxy[:, :2] + 1], 1))
    return Detections(xyxy=xyxy, score=rng.uniform(0.1, 1, n), class_id=rng.choice(3, n, p=[0.8, 0.1, 0.1]))


@pytest.mark.parametrize("method,metric", list(itertools.product(["nms", "nmm", "greedy_nmm"], ["iou", "ios"])))
def test_merge_equals_sahi_on_large_clustered_input(method, metric):
    """Past 2000 boxes of one class SAHI switches to its STRtree paths; we use the strip sweep."""
    d = _clustered(2600, seed=7)
    ours = merge(d, method=method, metric=metric, threshold=0.5, class_agnostic=False)
    _assert_same(ours, _sahi(d, method, metric, 0.5, False), False, f"{method}/{metric}")


def test_hand_computed_greedy_nmm_nms_and_nmm():
    xyxy = [[0, 0, 10, 10], [1, 0, 11, 10], [8, 0, 18, 10], [50, 50, 60, 60]]
    d = Detections(xyxy=xyxy, score=[0.9, 0.8, 0.7, 0.6], class_id=[0, 1, 0, 0], attributes={"source": [3, 4, 5, -1]})
    # IoU(0,1) = 90/110 matches, IoU(0,2) = 20/180 does not, IoU(1,2) = 30/170 does not.
    nms = merge(d, method="nms", metric="iou", threshold=0.5, class_agnostic=True)
    assert nms.xyxy.tolist() == [[0, 0, 10, 10], [8, 0, 18, 10], [50, 50, 60, 60]]
    greedy = merge(d, method="greedy_nmm", metric="iou", threshold=0.5, class_agnostic=True)
    assert greedy.xyxy.tolist() == [[0, 0, 11, 10], [8, 0, 18, 10], [50, 50, 60, 60]]
    assert greedy.score.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert greedy.class_id.tolist() == [0, 0, 0] and greedy.attributes["source"].tolist() == [3, 5, -1]
    # With IoS 0.25 box 2 matches box 1 (30/100) but not box 0 (20/100): only nmm chains it in,
    # and then only if it still matches the union [0, 0, 11, 10]: 30/100 >= 0.25, so it does.
    chained = merge(d, method="nmm", metric="ios", threshold=0.25, class_agnostic=True)
    assert chained.xyxy.tolist() == [[0, 0, 18, 10], [50, 50, 60, 60]]
    greedy_ios = merge(d, method="greedy_nmm", metric="ios", threshold=0.25, class_agnostic=True)
    assert greedy_ios.xyxy.tolist() == [[0, 0, 11, 10], [8, 0, 18, 10], [50, 50, 60, 60]]
    # Class-aware: box 1 (class 1) stays alone.
    assert len(merge(d, method="greedy_nmm", metric="iou", threshold=0.5)) == 4


def test_merge_groups_reports_membership():
    d = Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 11]], score=[0.5, 0.9, 0.8])
    g = merge_groups(d, method="greedy_nmm", metric="iou", threshold=0.5)
    assert g.keep.tolist() == [1, 2] and g.group.tolist() == [1, 0, 1] and g.merged.all()
    g = merge_groups(d, method="nms", metric="iou", threshold=0.5)
    assert g.keep.tolist() == [1, 2] and g.merged.tolist() == [False, True, True]


def test_tied_score_takes_the_later_members_class_as_sahi_does():
    d = Detections(xyxy=[[0, 0, 10, 10], [0, 0, 10, 10]], score=[0.5, 0.5], class_id=[2, 7])
    out = merge(d, method="greedy_nmm", metric="iou", threshold=0.5, class_agnostic=True)
    assert len(out) == 1 and out.class_id.tolist() == [7]
    _assert_same(out, _sahi(d, "greedy_nmm", "iou", 0.5, True), True, "tie")


def test_empty_single_and_no_mutation():
    empty = Detections.empty(["source"])
    for method in ("nms", "nmm", "greedy_nmm"):
        for threshold in (0.5, 0.0):
            out = merge(empty, method=method, metric="iou", threshold=threshold)
            assert len(out) == 0 and set(out.attributes) == {"source"}
    one = Detections(xyxy=[[1, 2, 3, 4]], score=[0.3], class_id=[5])
    assert merge(one).equals(one)
    d = _clustered(400, seed=1)
    before = (d.xyxy.copy(), d.score.copy(), d.class_id.copy())
    merge(d, method="nmm", metric="ios", threshold=0.3)
    assert all(np.array_equal(a, b) for a, b in zip(before, (d.xyxy, d.score, d.class_id), strict=True))


def test_bad_arguments_fail_with_the_choices():
    d = Detections(xyxy=[[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="nms, nmm, greedy_nmm"):
        merge(d, method="soft_nms")
    with pytest.raises(ValueError, match="iou, ios"):
        merge(d, metric="giou")
    with pytest.raises(ValueError, match="finite"):
        merge(d, threshold=float("nan"))
    with pytest.raises(ValueError, match=r"rows \[0\]"):
        merge(Detections(xyxy=[[0, 0, np.inf, 1]]))
    with pytest.raises(TypeError, match="Detections"):
        merge(np.zeros((1, 4)))  # type: ignore[arg-type]


def test_crowded_20k_boxes_stay_small_in_memory():
    """20k boxes: no N x N matrix (1.6 GB as float32); a stack of duplicates takes the row path."""
    d = _clustered(20000, seed=3, image_wh=(3840, 2160))
    tracemalloc.start()
    out = merge(d, method="greedy_nmm", metric="ios", threshold=0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0 < len(out) < len(d) and peak < 150e6
    stack = Detections(xyxy=np.tile([[10, 10, 50, 90]], (20000, 1)), score=np.linspace(0.1, 0.9, 20000))
    for method in ("nms", "nmm", "greedy_nmm"):
        out = merge(stack, method=method, metric="iou", threshold=0.5)
        assert out.xyxy.tolist() == [[10, 10, 50, 90]] and out.score.tolist() == pytest.approx([0.9])

"""VOC AP equals a line-by-line port of the Pascal VOC devkit's ``voc_eval.py`` on random cases,
with and without the +1 pixel convention, and does not depend on the order of images or boxes."""

from __future__ import annotations

import numpy as np
import pytest

from sitesight import Detections
from sitesight.evaluation.voc import voc_average_precision


def _devkit_voc_ap(rec, prec, use_07_metric):
    # voc_eval.py: voc_ap
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _devkit_eval(gts, preds, keys, classname, ovthresh, use_07_metric, plus_one):
    """voc_eval.py's loop. Its input order is fixed by the documented tie-break first (ground truth
    by x1, y1, x2, y2; detections by key then box, stable-sorted by score), as a user would do."""
    one = 1.0 if plus_one else 0.0
    class_recs, npos = {}, 0
    for key, g in zip(keys, gts, strict=True):
        sel = np.flatnonzero(g.class_id == classname)
        bbox = g.xyxy[sel].astype(np.float64)
        o = np.lexsort(bbox.T[::-1]) if len(bbox) else np.zeros(0, int)
        difficult = np.array([str(v) == "1" for v in g.attributes["difficult"][sel]], bool)[o] \
            if "difficult" in g.attributes else np.zeros(len(sel), bool)
        class_recs[key] = {"bbox": bbox[o], "difficult": difficult, "det": [False] * len(sel)}
        npos += int(np.sum(~difficult))
    lines = []
    for key, p in zip(keys, preds, strict=True):
        for j in np.flatnonzero(p.class_id == classname):
            lines.append((key, float(p.score[j]), *(float(v) for v in p.xyxy[j])))
    lines.sort(key=lambda r: (r[0], r[2], r[3], r[4], r[5]))
    image_ids = [x[0] for x in lines]
    confidence = np.array([x[1] for x in lines])
    BB = np.array([x[2:] for x in lines]).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + one, 0.0)
            ih = np.maximum(iymax - iymin + one, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + one) * (bb[3] - bb[1] + one)
                   + (BBGT[:, 2] - BBGT[:, 0] + one) * (BBGT[:, 3] - BBGT[:, 1] + one) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return _devkit_voc_ap(rec, prec, use_07_metric)


def _case(rng, n_images, n_classes, integer):
    gts, preds = [], []
    for _ in range(n_images):
        ng, npred = rng.integers(0, 8), rng.integers(0, 12)
        xy = rng.uniform(0, 80, (ng, 2))
        g = np.concatenate([xy, xy + rng.uniform(2, 40, (ng, 2))], 1)
        # predictions: jittered copies of ground truth (some duplicates) plus background boxes
        src = g[rng.integers(0, ng, npred)] if ng else rng.uniform(0, 80, (npred, 4))
        p = src + rng.normal(0, 4, (npred, 4))
        p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)
        if integer:
            g, p = np.round(g), np.round(p)
        gts.append(Detections(xyxy=g, class_id=rng.integers(0, n_classes, ng),
                              attributes={"difficult": np.array(["1" if v else "0" for v in rng.random(ng) < 0.15], object)}))
        preds.append(Detections(xyxy=p, class_id=rng.integers(0, n_classes, npred), score=rng.random(npred)))
    return gts, preds


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("method", "plus_one"), [("voc12", True), ("voc12", False), ("voc07", True), ("voc07", False)])
def test_equals_devkit_on_random_cases(seed, method, plus_one):
    rng = np.random.default_rng(seed)
    gts, preds = _case(rng, n_images=int(rng.integers(1, 15)), n_classes=3, integer=seed % 2 == 0)
    keys = [f"img_{i:03d}.jpg" for i in range(len(gts))]
    names = ["a", "b", "c"]
    result = voc_average_precision(gts, preds, class_names=names, iou=0.5, method=method, pixel_inclusive=plus_one,
                                   image_keys=keys)
    for k, name in enumerate(names):
        npos = sum(int(np.sum((g.class_id == k) & (g.attributes["difficult"] != "1"))) for g in gts)
        if npos == 0:
            assert result.per_class[name] is None
            continue
        ref = _devkit_eval(gts, preds, keys, k, 0.5, method == "voc07", plus_one)
        assert result.per_class[name] == pytest.approx(ref, abs=1e-12), name


def test_plus_one_changes_small_boxes():
    gt = [Detections(xyxy=[[0, 0, 3, 3]])]
    pred = [Detections(xyxy=[[1, 1, 4, 4]], score=[0.9])]  # IoU 4/14 continuous, 9/23 with +1... both < 0.5
    pred_close = [Detections(xyxy=[[0, 0, 3, 2]], score=[0.9])]  # IoU 6/9 continuous, 12/16 with +1
    for plus_one in (False, True):
        assert voc_average_precision(gt, pred, class_names=["x"], pixel_inclusive=plus_one).map == 0.0
        assert voc_average_precision(gt, pred_close, class_names=["x"], pixel_inclusive=plus_one).map == 1.0
    # 2x2 GT vs a 2x1 box inside it: IoU 0.5 exactly without +1 (not > 0.5), 6/9 with it
    gt = [Detections(xyxy=[[0, 0, 2, 2]])]
    half = [Detections(xyxy=[[0, 0, 2, 1]], score=[0.9])]
    assert voc_average_precision(gt, half, class_names=["x"]).map == 0.0
    assert voc_average_precision(gt, half, class_names=["x"], pixel_inclusive=True).map == 1.0


def test_independent_of_image_and_box_order():
    rng = np.random.default_rng(5)
    gts, preds = _case(rng, n_images=10, n_classes=2, integer=True)
    preds = [p.replace(score=np.round(p.score, 1)) for p in preds]  # ties in score across and within images
    keys = [f"f{i}.jpg" for i in range(len(gts))]
    ref = voc_average_precision(gts, preds, class_names=["a", "b"], image_keys=keys, pixel_inclusive=True)
    perm = rng.permutation(len(gts))
    shuffled = []
    for i in perm:
        bp, bg = rng.permutation(len(preds[i])), rng.permutation(len(gts[i]))
        shuffled.append((gts[i][bg], preds[i][bp], keys[i]))
    got = voc_average_precision([s[0] for s in shuffled], [s[1] for s in shuffled], class_names=["a", "b"],
                                image_keys=[s[2] for s in shuffled], pixel_inclusive=True)
    assert got.per_class == ref.per_class and got.counts == ref.counts

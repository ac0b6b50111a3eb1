"""Single-model hard samples against hand-built ground truth."""

from __future__ import annotations

import numpy as np

from sitesight import Detections
from sitesight.mining.single import rank_hard_frames, single_model_hard


def test_confident_fp_miss_and_low_margin_by_hand():
    gts = [
        Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]], class_id=[0, 0, 0]),
        Detections(xyxy=[[0, 0, 10, 10]], class_id=[0]),
        Detections.empty(),
    ]
    probs = np.array([[0.5, 0.45, 0.05], [0.9, 0.05, 0.05], [np.nan] * 3, [0.34, 0.33, 0.33]], np.float32)
    preds = [
        # matched (low margin), matched (clear), faint FP (not confident), GT 3 seen only at 0.2 → miss
        Detections(xyxy=[[0, 0, 10, 10], [50, 50, 60, 60], [300, 300, 310, 310], [100, 100, 110, 110]],
                   score=[0.9, 0.8, 0.4, 0.2], class_id=[0, 0, 0, 0], attributes={"p": probs}),
        Detections(xyxy=[[0, 0, 10, 10]], score=[0.9], class_id=[1]),  # wrong class: confident FP and a miss
        Detections(xyxy=[[0, 0, 10, 10]], score=[0.65], class_id=[0]),  # confident FP on an empty frame
    ]
    r = single_model_hard(gts, preds, conf_hi=0.6, conf_lo=0.3, probs_name="p", margin=0.2, attribute_weight=0.5)
    assert r.fp.tolist() == [0, 1, 1]
    assert r.miss.tolist() == [1, 1, 0]
    assert r.low_margin.tolist() == [1, 0, 0]
    assert r.gt_miss[0].tolist() == [False, False, True]
    assert r.pred_low_margin[0].tolist() == [True, False, False, False]  # the 4th is below conf_lo: never flagged
    assert r.score.tolist() == [1.5, 2.0, 1.0]
    assert rank_hard_frames(r).tolist() == [1, 0, 2]
    assert rank_hard_frames(r, top_k=1).tolist() == [1]

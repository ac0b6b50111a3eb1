"""Hard-sample mining: where models disagree (MAD), what to label next, and which model wins.

* `sitesight.mining.pool`: stored runs → flat arrays over a pool of frames (`load_pool`).
* `sitesight.mining.flat`: `FlatDetections`, one model's boxes over the pool as one table.
* `sitesight.mining.confident`: what "confident" means for each model (its operating point or its own scores).
* `sitesight.mining.discrepancy`: detection / classification / cross-task discrepancy per frame.
* `sitesight.mining.pairing`: which boxes of two models are the same object (pairs per frame, greedy matching).
* `sitesight.mining.select`: top-k under a budget with camera/time/near-duplicate diversity.
* `sitesight.mining.handoff`: disputed boxes and CVAT task packages of the selection.
* `sitesight.mining.verdict`: pair winners, aggressiveness/resistance, Bradley–Terry ranking, drop.
* `sitesight.mining.single`: one model's confident errors against ground truth.
* `sitesight.mining.mad`: `mine_pool` writes ``MINED/``.
* `sitesight.mining.mined`: the ``MINED/`` folder at rest (its boxes file); `verdict_dir` judges it once labelled.
"""

from __future__ import annotations

from sitesight.mining.confident import ConfidentPoint, confident_points
from sitesight.mining.discrepancy import (
    CrossTaskRules,
    DiscrepancyWeights,
    PairDiscrepancy,
    all_pairs,
    pair_discrepancy,
)
from sitesight.mining.mad import MiningResult, mine_pool
from sitesight.mining.mined import verdict_dir
from sitesight.mining.pool import FlatDetections, Pool, load_pool, pool_from_detections
from sitesight.mining.select import Diversity, Selection, random_control, select_top
from sitesight.mining.single import SingleHard, rank_hard_frames, single_model_hard
from sitesight.mining.verdict import Verdict, bradley_terry, verdict

__all__ = [
    "ConfidentPoint",
    "CrossTaskRules",
    "DiscrepancyWeights",
    "Diversity",
    "FlatDetections",
    "MiningResult",
    "PairDiscrepancy",
    "Pool",
    "Selection",
    "SingleHard",
    "Verdict",
    "all_pairs",
    "bradley_terry",
    "confident_points",
    "load_pool",
    "mine_pool",
    "pair_discrepancy",
    "pool_from_detections",
    "random_control",
    "rank_hard_frames",
    "select_top",
    "single_model_hard",
    "verdict",
    "verdict_dir",
]

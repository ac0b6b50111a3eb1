"""Calibration of the paired bootstrap: on simulated paired data whose true difference is known, the 95 %
interval covers it in >= 93 % of >= 200 simulations, and under no difference the verdict says "better"
in <= 5 % of them. Truths are analytic (F1 of counts, AUROC of normal scores, macro F1 of a symmetric
classifier) or, for detection AP, the value on a pool of frames 200x larger than one simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sitesight.compare import compare_anomaly, compare_classifications, run_comparison
from sitesight.compare.bootstrap import paired_bootstrap
from sitesight.compare.detection_table import detection_table

from . import simulate as sim

N_SIMS = 240


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _f1_statistic(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
    return (2 * tp / (2 * tp + fp + fn))[:, None]


def _count_tables(rng: np.random.Generator, n: int, skills: tuple[float, float], fp_rates: tuple[float, float]) -> list[np.ndarray]:
    """Per-frame TP/FP/FN of two models sharing each frame's difficulty."""
    n_gt = rng.poisson(4, n)
    d = rng.normal(0, 0.8, n)
    out = []
    for skill, lam in zip(skills, fp_rates, strict=True):
        tp = rng.binomial(n_gt, _sigmoid(skill - d))
        fp = rng.poisson(lam * np.exp(0.5 * d))
        out.append(np.column_stack([tp, fp, n_gt - tp]).astype(np.float64))
    return out


def _true_f1(skill: float, lam: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)  # E over d ~ N(0, 0.8²)
    w = w / w.sum()
    e_tp = 4 * float(np.sum(w * _sigmoid(skill - 0.8 * x)))
    e_fp = lam * math.exp(0.5**2 * 0.8**2 / 2)
    return 2 * e_tp / (e_tp + e_fp + 4)


def test_f1_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(1)
    skills, rates = (0.6, 0.9), (1.2, 1.0)
    truth = _true_f1(skills[1], rates[1]) - _true_f1(skills[0], rates[0])
    covered = 0
    for s in range(N_SIMS):
        ta, tb = _count_tables(rng, 300, skills, rates)
        cmp = run_comparison(kind="detection", names=["F1"], primary="F1", table_a=ta, table_b=tb, statistic_a=_f1_statistic,
                             statistic_b=_f1_statistic, n_resamples=600, seed=s)
        h = cmp.headline
        covered += h.lo <= truth <= h.hi
    assert covered / N_SIMS >= 0.93, (covered, truth)


def test_f1_false_better_rate_under_no_difference() -> None:
    rng = np.random.default_rng(2)
    verdicts = []
    for s in range(N_SIMS):
        ta, tb = _count_tables(rng, 300, (0.8, 0.8), (1.0, 1.0))
        cmp = run_comparison(kind="detection", names=["F1"], primary="F1", table_a=ta, table_b=tb, statistic_a=_f1_statistic,
                             statistic_b=_f1_statistic, n_resamples=600, seed=s)
        verdicts.append(cmp.verdict)
    assert verdicts.count("better") / N_SIMS <= 0.05
    assert verdicts.count("no detectable difference") / N_SIMS >= 0.90


@pytest.fixture(scope="module")
def detection_pool() -> dict[str, object]:
    """Tables of 200 simulations x 120 frames, for a model pair with a true difference and a pair without."""
    rng = np.random.default_rng(3)
    n = N_SIMS * 120
    fr = sim.frames(rng, n)
    gts, d = fr["gts"], fr["difficulty"]
    preds = {name: sim.detect(rng, gts, d, skill=skill) for name, skill in (("a", 1.0), ("b", 1.35), ("a2", 1.0))}
    all_range = {"all": (0.0, 1e10)}
    tables = {k: detection_table(gts, p, class_names=("person",), conf=0.5, area_ranges=all_range) for k, p in preds.items()}
    return {"tables": tables, "frames_per_sim": 120}


@pytest.mark.slow
@pytest.mark.parametrize(("b", "check"), [("b", "coverage"), ("a2", "false_better")])
def test_detection_ap_and_f1_intervals(detection_pool: dict, b: str, check: str) -> None:
    tables, per = detection_pool["tables"], detection_pool["frames_per_sim"]
    ta, tb = tables["a"], tables[b]
    names = ta.metric_names()[:3]  # AP, AP50, F1
    # the population value of each estimator: the same statistic on the whole pool (200x one simulation)
    truth = tb.statistic(tb.counts.sum(0, keepdims=True, dtype=np.float64))[0, :3] - ta.statistic(ta.counts.sum(0, keepdims=True, dtype=np.float64))[0, :3]
    if check == "false_better":
        truth = np.zeros(3)  # both models are the same model: the true difference is 0
    covered = np.zeros(3)
    better = np.zeros(3)
    for s in range(N_SIMS):
        rows = slice(s * per, (s + 1) * per)
        pa, pb, deltas = paired_bootstrap(ta.counts[rows], tb.counts[rows], ta.statistic, tb.statistic, n_resamples=600, seed=s)
        lo, hi = np.nanpercentile(deltas[:, :3], [2.5, 97.5], axis=0)
        covered += (lo <= truth) & (truth <= hi)
        better += lo > 0
    rate = covered / N_SIMS
    assert (rate >= 0.93).all(), dict(zip(names, rate, strict=True))
    if check == "false_better":
        assert (better / N_SIMS <= 0.05).all(), dict(zip(names, better / N_SIMS, strict=True))
    else:
        assert truth[0] > 0.01  # a real difference was simulated


@pytest.mark.slow
def test_auroc_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(4)
    mu = (1.0, 1.5)
    sd = math.sqrt(0.7**2 + 0.7**2)
    truth = _normal_cdf(mu[1] / (sd * math.sqrt(2))) - _normal_cdf(mu[0] / (sd * math.sqrt(2)))
    covered, better_when_equal = 0, 0
    for s in range(N_SIMS):
        y = np.zeros(200, bool)
        y[:50] = True
        shared = rng.normal(0, 0.7, 200)
        sa = mu[0] * y + shared + rng.normal(0, 0.7, 200)
        sb = mu[1] * y + shared + rng.normal(0, 0.7, 200)
        h = compare_anomaly(y, sa, sb, n_resamples=500, seed=s).headline
        covered += h.lo <= truth <= h.hi
        sc = mu[0] * y + shared + rng.normal(0, 0.7, 200)
        better_when_equal += compare_anomaly(y, sa, sc, n_resamples=300, seed=s).headline.verdict == "better"
    assert covered / N_SIMS >= 0.93, (covered, truth)
    assert better_when_equal / N_SIMS <= 0.05


def test_macro_f1_interval_covers_the_true_difference() -> None:
    """Three balanced classes, a symmetric classifier right with probability c: every class's F1 is c,
    so the true Δ macro F1 is c_B − c_A."""
    rng = np.random.default_rng(5)
    c = (0.6, 0.7)
    covered = 0
    for s in range(N_SIMS):
        n = 450
        y = rng.integers(0, 3, n)
        u = rng.random(n)  # shared item difficulty: B is right wherever A is
        preds = []
        for cm in c:
            wrong = (y + rng.integers(1, 3, n)) % 3
            preds.append(np.where(u < cm, y, wrong))
        images = [f"f{i // 3}" for i in range(n)]
        h = compare_classifications(y, preds[0], preds[1], class_names=("a", "b", "c"), images=images, n_resamples=500, seed=s).headline
        covered += h.lo <= c[1] - c[0] <= h.hi
    assert covered / N_SIMS >= 0.93, covered

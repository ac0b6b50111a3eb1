"""The order-statistic threshold from normals (finite-sample promise) against scipy's Beta / binomial /
beta-binomial, a coverage simulation, and defect masks of every colour."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from sitesight.errors import InputError
from sitesight.evaluation.anomaly import min_normals, normal_threshold, read_mask


@pytest.mark.parametrize(("rate", "confidence"), [(0.05, 0.95), (0.01, 0.95), (0.1, 0.9), (0.02, 0.99)])
def test_min_normals_is_the_smallest_n_whose_maximum_keeps_the_promise(rate, confidence):
    n = min_normals(rate, confidence)
    # the maximum of n normals leaves an exceedance Beta(1, n): P(p > rate) = (1 - rate)^n
    assert stats.beta.sf(rate, 1, n) <= 1 - confidence < stats.beta.sf(rate, 1, n - 1)
    assert min_normals(0.05) == 59 and min_normals(0.01) == 299


@pytest.mark.parametrize("n", [59, 60, 100, 250, 1000])
def test_rank_is_the_smallest_that_keeps_the_promise(n):
    scores = np.random.default_rng(n).normal(size=n)
    t = normal_threshold(scores, false_alarm_rate=0.05, confidence=0.95)
    sf = [stats.beta.sf(0.05, n + 1 - k, k) for k in range(1, n + 1)]  # P(exceedance > 5 %) per rank k
    k_ref = 1 + next(i for i, v in enumerate(sf) if v <= 0.05)
    assert t.k == k_ref and t.enough and t.value == np.sort(scores)[k_ref - 1]
    assert t.achieved_confidence == pytest.approx(1 - sf[k_ref - 1])


def test_too_few_normals_take_the_maximum_and_say_so():
    t = normal_threshold(np.arange(20.0), false_alarm_rate=0.05)
    assert (t.k, t.value, t.enough, t.min_normals) == (20, 19.0, False, 59)
    assert t.achieved_confidence == pytest.approx(1 - 0.95**20)
    with pytest.raises(InputError):
        normal_threshold(np.arange(5.0), false_alarm_rate=0.0)


def test_promise_holds_in_simulation_and_is_not_vacuous():
    """Uniform normal scores: the true false-alarm rate of threshold t is 1 - t exactly."""
    rng = np.random.default_rng(0)
    violations = []
    for _ in range(3000):
        t = normal_threshold(rng.random(150), false_alarm_rate=0.05, confidence=0.9)
        violations.append(1 - t.value > 0.05)
    rate = float(np.mean(violations))
    expected = 1 - t.achieved_confidence  # the rank is discrete: this is what it keeps, <= 1 - confidence
    assert expected <= 0.1
    assert abs(rate - expected) <= 3 * np.sqrt(expected * (1 - expected) / 3000), (rate, expected)


def test_alarm_bound_is_the_beta_binomial_quantile_and_covers():
    t = normal_threshold(np.random.default_rng(1).random(200), false_alarm_rate=0.05)
    for m in (10, 130, 1000):
        assert t.alarm_bound(m) == int(stats.betabinom.ppf(0.95, m, t.n + 1 - t.k, t.k))
    rng = np.random.default_rng(2)
    inside = []
    for _ in range(2000):
        u = rng.random(200 + 130)
        rule = normal_threshold(u[:200], false_alarm_rate=0.05)
        inside.append((u[200:] >= rule.value).sum() <= rule.alarm_bound(130))
    assert np.mean(inside) >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / 2000)


@pytest.mark.parametrize("colour", [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0),
                                    (255, 255, 255), (0, 0, 40)])
def test_masks_of_every_colour_are_defects(tmp_path, colour):
    a = np.zeros((20, 30, 3), np.uint8)
    a[5:9, 10:20] = colour
    Image.fromarray(a).save(tmp_path / "m.png")
    want = np.zeros((20, 30), bool)
    want[5:9, 10:20] = True
    assert (read_mask(tmp_path / "m.png", (20, 30)) == want).all()
    # palette and grey files alike
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert (read_mask(tmp_path / "p.png") == want).all()
    Image.fromarray((want * 255).astype(np.uint8), "L").save(tmp_path / "l.png")
    assert (read_mask(tmp_path / "l.png") == want).all()


def test_mask_alpha_stated_colour_size_and_empty_warning(tmp_path, caplog):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., :3] = (0, 200, 0)
    a[2:4, 2:4, 3] = 255  # only these pixels are opaque
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    assert read_mask(tmp_path / "rgba.png").sum() == 4
    b = np.zeros((10, 10, 3), np.uint8)
    b[:2] = (255, 0, 0)
    b[5:] = (0, 255, 0)
    Image.fromarray(b).save(tmp_path / "two.png")
    assert read_mask(tmp_path / "two.png", colour=(0, 255, 0)).sum() == 50
    with caplog.at_level(logging.WARNING):
        assert not read_mask(tmp_path / "two.png", colour=(0, 0, 255)).any()
    assert "reads as empty" in caplog.text
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "blank.png")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert not read_mask(tmp_path / "blank.png").any()
    assert "reads as empty" not in caplog.text
    with pytest.raises(InputError, match="mask is 10x10"):
        read_mask(tmp_path / "blank.png", (20, 10))

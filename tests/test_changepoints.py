"""change_points on plain series: level, variance and slope changes found; trends, drifts, random
walks and noise not cut into pieces (what keeps TCPD's F1 up: bench/bench_tcpd.py)."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.analyzers import change_points
from driftline.analyzers._changepoints import noise_scale


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("seed", range(5))
def test_level_shift_is_found_near_its_index(seed: int) -> None:
    r = _rng(seed)
    series = np.r_[r.normal(10, 1, 90), r.normal(13, 1, 60)]
    cps = change_points(series)
    assert len(cps) == 1
    assert abs(cps[0] - 90) <= 3


def test_two_level_shifts_are_the_first_index_of_each_new_segment() -> None:
    r = _rng(0)
    series = np.r_[r.normal(0, 1, 60), r.normal(5, 1, 40), r.normal(-2, 1, 50)]
    assert change_points(series) == [60, 100]
    assert change_points(list(series[:60])) == []


@pytest.mark.parametrize("seed", range(5))
def test_variance_shift_is_found(seed: int) -> None:
    r = _rng(seed)
    series = np.r_[r.normal(5, 1, 100), r.normal(5, 4, 80)]  # same mean, 4x the spread
    cps = change_points(series)
    assert len(cps) == 1
    assert abs(cps[0] - 100) <= 5


def test_level_shift_is_found_next_to_a_noisier_segment() -> None:
    r = _rng(0)
    series = np.r_[r.normal(0, 1, 50), r.normal(3, 1, 50), r.normal(0, 3, 50)]
    cps = change_points(series)
    assert len(cps) == 2
    assert abs(cps[0] - 50) <= 5 and abs(cps[1] - 100) <= 5


@pytest.mark.parametrize("seed", range(10))
def test_linear_trend_with_noise_is_one_segment(seed: int) -> None:
    r = _rng(seed)
    series = 0.2 * np.arange(200) + r.normal(0, 1, 200)  # rises 40 noise sd over the window
    assert len(change_points(series)) <= 1


def test_slope_change_is_found() -> None:
    r = _rng(3)
    series = np.r_[np.zeros(100), 0.1 * np.arange(1, 101)] + r.normal(0, 1, 200)
    cps = change_points(series)
    assert 1 <= len(cps) <= 2
    assert any(abs(k - 100) <= 15 for k in cps)


def test_random_walk_is_not_cut_into_dozens() -> None:
    counts = [len(change_points(np.cumsum(_rng(s).normal(0, 1, 150)))) for s in range(20)]
    assert max(counts) < 20
    assert np.mean(counts) < 12


def test_noise_with_slow_drift_gives_few_change_points() -> None:
    counts = []
    for s in range(20):
        r = _rng(s)
        counts.append(len(change_points(r.normal(0, 1, 150) + np.cumsum(r.normal(0, 0.1, 150)))))
    assert max(counts) <= 3


@pytest.mark.parametrize("seed", range(20))
def test_pure_noise_has_no_change_point(seed: int) -> None:
    assert change_points(_rng(seed).normal(100, 5, 150)) == []


def test_integer_counts_without_change_have_none() -> None:
    counts = [len(change_points(_rng(s).poisson(3, 150).astype(float))) for s in range(20)]
    assert max(counts) <= 1 and sum(counts) <= 3  # discrete values: a rare short run of ties may cut


def test_smooth_curve_is_not_chopped() -> None:
    t = np.linspace(0, 1, 300)
    series = 1e6 * np.exp(2 * t) + _rng(0).normal(0, 10, 300)  # curvature >> noise
    assert len(change_points(series)) <= 2


def test_nans_are_interpolated() -> None:
    r = _rng(4)
    series = np.r_[r.normal(0, 1, 80), r.normal(4, 1, 80)]
    series[[0, 10, 11, 12, 100, 159]] = np.nan
    cps = change_points(series)
    assert len(cps) == 1 and abs(cps[0] - 80) <= 3
    with pytest.raises(ValueError):
        change_points(np.full(20, np.nan))


def test_two_dimensional_input() -> None:
    r = _rng(1)
    series = np.c_[np.r_[r.normal(0, 1, 50), r.normal(4, 1, 50)], r.normal(0, 1, 100)]
    series[10, 0] = np.nan
    assert change_points(series) == [50]
    quiet = np.c_[r.normal(0, 1, 100), r.normal(0, 1, 100)]
    assert change_points(quiet) == []
    with pytest.raises(ValueError):
        change_points(np.zeros((4, 3, 2)))


def test_short_and_constant_series() -> None:
    assert change_points([1.0, 2.0, 3.0]) == []
    assert change_points(np.full(50, 7.0)) == []
    assert change_points(np.r_[np.zeros(30), np.ones(30)]) == [30]


def test_min_size_and_explicit_penalty_are_honoured() -> None:
    r = _rng(5)
    series = np.r_[r.normal(0, 1, 100), r.normal(3, 1, 6), r.normal(0, 1, 100)]
    assert any(abs(k - 100) <= 2 for k in change_points(series, min_size=3))
    bounds = [0, *change_points(series, min_size=10), len(series)]
    assert min(np.diff(bounds)) >= 10
    assert change_points(series, penalty=1e6) == []


def test_other_ruptures_models_still_work() -> None:
    r = _rng(6)
    series = np.r_[r.normal(0, 1, 80), r.normal(5, 1, 80)]
    assert change_points(series, model="l2") == [80]
    assert change_points(series, model="normal") == [80]


def test_noise_scale_ignores_trends_and_shifts() -> None:
    r = _rng(7)
    noise = r.normal(0, 2, 500)
    trended = noise + 0.5 * np.arange(500) + np.r_[np.zeros(250), 50 * np.ones(250)]
    assert noise_scale(trended) == pytest.approx(2.0, rel=0.15)
    assert noise_scale(np.full(10, 3.0)) == 0.0


def test_a_few_thousand_points_with_a_level_and_a_variance_change() -> None:
    r = _rng(8)
    series = np.r_[r.normal(0, 1, 1500), r.normal(2, 1, 1500), r.normal(0, 3, 1000)]
    cps = change_points(series)
    assert len(cps) == 2 and abs(cps[0] - 1500) <= 10 and abs(cps[1] - 3000) <= 10

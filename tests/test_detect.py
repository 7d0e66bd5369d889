"""Detection: change points (TCPD convention), regressions judged against the baseline's own
variability, robust to daily traffic swings and to a handful of calls; over the real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.analyzers import Filters, Regression, Window, change_points, detect
from driftline.analyzers._detect import DetectionSettings, find_regression
from driftline.analyzers._render import render_report
from driftline.analyzers._report import incident_report
from driftline.analyzers._signals import get_signal
from driftline.analyzers.evaluation._scenarios import BUCKET
from driftline.collector import AnalysisError, NoDataError, Store

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _frame(values: np.ndarray, calls: np.ndarray) -> pd.DataFrame:
    times = pd.date_range(T0, periods=len(values), freq="10min", tz="UTC")
    return pd.DataFrame({"time": times, "value": values, "calls": calls.astype(int)})


def test_change_points_are_the_first_index_of_each_new_segment() -> None:
    rng = np.random.default_rng(0)
    series = np.r_[rng.normal(0, 1, 60), rng.normal(5, 1, 40), rng.normal(-2, 1, 50)]
    assert change_points(series) == [60, 100]
    assert change_points(list(series[:60])) == []


def test_change_points_fill_gaps_and_take_several_dimensions() -> None:
    rng = np.random.default_rng(1)
    series = np.c_[np.r_[rng.normal(0, 1, 50), rng.normal(4, 1, 50)], rng.normal(0, 1, 100)]
    series[10, 0] = np.nan
    assert change_points(series) == [50]
    with pytest.raises(ValueError):
        change_points(np.full(20, np.nan))


def test_a_quality_drop_is_found_at_its_start_with_size_and_confidence() -> None:
    rng = np.random.default_rng(2)
    values = np.r_[0.85 + rng.normal(0, 0.01, 80), 0.74 + rng.normal(0, 0.01, 40)]
    found = find_regression(get_signal("quality:faithfulness"), _frame(values, np.full(120, 200)))
    assert found is not None
    assert found.started_at == T0 + 80 * timedelta(minutes=10)
    assert found.direction == "down" and found.relative_change == pytest.approx(-0.13, abs=0.01)
    assert found.confidence > 0.99 and found.calls == 40 * 200 and found.ended_at is None


def test_an_improvement_is_no_regression_and_a_recovery_sets_ended_at() -> None:
    rng = np.random.default_rng(3)
    better = np.r_[0.80 + rng.normal(0, 0.01, 60), 0.90 + rng.normal(0, 0.01, 60)]
    assert find_regression(get_signal("quality:faithfulness"), _frame(better, np.full(120, 200))) is None
    blip = np.r_[0.02 + rng.normal(0, 0.002, 60), 0.10 + rng.normal(0, 0.002, 20), 0.02 + rng.normal(0, 0.002, 40)]
    found = find_regression(get_signal("error_rate"), _frame(blip, np.full(120, 200)))
    assert found is not None and found.ended_at == T0 + 80 * timedelta(minutes=10)


@pytest.mark.parametrize("seed", range(8))
def test_a_regression_that_partly_recovers_goes_on_from_where_it_began(seed: int) -> None:
    """TTFT x5 for 20 buckets, then x2 from there on: it came down by more than half, yet is still
    twice what it was, so it has not ended; it started where it first moved, neither at the partial
    recovery (read against a baseline holding the worst of it) nor a quiet bucket early."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0, 0.1, 120) * np.r_[np.ones(80), np.full(20, 5.0), np.full(20, 2.0)]
    found = find_regression(get_signal("ttft_p50"), _frame(values, np.full(120, 30)).assign(squares=np.nan))
    assert found is not None and found.started_at == T0 + 80 * timedelta(minutes=10) and found.ended_at is None


def test_daily_traffic_swing_raises_no_alarm() -> None:
    """Night buckets hold a tenth of the calls, so their rates are noisier; nothing changed."""
    rng = np.random.default_rng(4)
    calls = (220 + 200 * np.sin(np.arange(288) * 2 * np.pi / 144)).astype(int)
    values = rng.binomial(calls, 0.05) / calls
    assert find_regression(get_signal("error_rate"), _frame(values, calls)) is None


def test_a_handful_of_bad_calls_raises_no_alarm() -> None:
    rng = np.random.default_rng(5)
    values = np.r_[0.85 + rng.normal(0, 0.01, 100), np.full(10, 0.1)]
    calls = np.r_[np.full(100, 200), np.full(10, 2)]
    assert find_regression(get_signal("quality:faithfulness"), _frame(values, calls)) is None


def _failures(bad: np.ndarray, calls: int = 115) -> pd.DataFrame:
    """Buckets of a 0/1 rate (failed validations): their rate, calls and sum of squares (= failures)."""
    return _frame(bad / calls, np.full(len(bad), calls)).assign(squares=bad.astype(float))


def test_a_clean_start_by_chance_is_no_regression_but_a_real_break_is() -> None:
    """2.9% of outputs fail throughout, but none did in the first 345 calls (a 1 in 10,000 chance):
    the exact test reads that as 3.8 standard errors, under the bar (the arcsine scale read 4.7).
    A break from 1% to 10% is found at its start."""
    steady = np.array([0, 0, 0, 3, 3, 4, 3, 3, 4, 3, 3, 3, 4, 3, 7])
    assert find_regression(get_signal("validation_failure_rate"), _failures(steady)) is None
    found = find_regression(get_signal("validation_failure_rate"), _failures(np.r_[np.full(8, 1), np.full(7, 12)]))
    assert found is not None and found.started_at == T0 + timedelta(minutes=80) and found.current > 0.1 > found.baseline


@pytest.mark.parametrize("seed", range(3))
def test_a_dip_inside_a_failure_that_comes_back_is_no_recovery(seed: int) -> None:
    """Validation fails for 1% of 60 outputs a bucket, then 17% from bucket 60 on, but for four
    buckets at 3% halfway through: the failure started at bucket 60 and is still going on, not a
    failure that ended at the dip followed by another one."""
    rng = np.random.default_rng(seed)
    rate = np.r_[np.full(60, 0.01), np.full(15, 0.17), np.full(4, 0.03), np.full(30, 0.17)]
    found = find_regression(get_signal("validation_failure_rate"), _failures(rng.binomial(60, rate), calls=60))
    assert found is not None and found.started_at == T0 + timedelta(minutes=600) and found.ended_at is None


def _scored(rng: np.random.Generator, means: np.ndarray, calls: np.ndarray, sd: float) -> pd.DataFrame:
    """Buckets of per-call scores: the mean, the count and the sum of squares, as the store gives them."""
    scores = [np.clip(rng.normal(m, sd, int(n)), 0, 1) for m, n in zip(means, calls)]
    frame = _frame(np.array([x.mean() for x in scores]), calls)
    return frame.assign(squares=[float((x**2).sum()) for x in scores])


@pytest.mark.parametrize("seed", range(3))
def test_a_small_steady_drop_over_many_calls_is_found(seed: int) -> None:
    """0.05 off 0.80 in buckets of 25 noisy scores: under 2x one bucket's spread (3x was needed), obvious from 40 buckets."""
    rng = np.random.default_rng(seed)
    means = np.r_[np.full(60, 0.80), np.full(40, 0.75)]
    regression = find_regression(get_signal("quality:judge"), _scored(rng, means, np.full(100, 25), sd=0.15))
    assert regression is not None and abs(regression.started_at - (T0 + timedelta(minutes=600))) <= timedelta(minutes=30)
    assert regression.current == pytest.approx(0.75, abs=0.02) and regression.confidence > 0.999


@pytest.mark.parametrize("seed", range(3))
def test_noise_and_a_short_blip_that_ended_are_no_regression(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert find_regression(get_signal("quality:judge"), _scored(rng, np.full(100, 0.8), np.full(100, 25), sd=0.15)) is None
    blip = np.full(100, 0.8)
    blip[50:51] = 0.6  # one bucket (10 minutes) of bad scores, then back
    assert find_regression(get_signal("quality:judge"), _scored(rng, blip, np.full(100, 25), sd=0.15)) is None


def test_detect_finds_each_scenario_incident_within_two_buckets(scenario_store: tuple[Store, list]) -> None:  # type: ignore[type-arg]
    store, scenarios = scenario_store
    for s in (s for s in scenarios if s.incident_start is not None):
        found = detect(store, Window(s.start, s.end), filters=Filters(service=s.service), bucket=BUCKET)
        regression = next(r for r in found if r.signal == s.signal)
        assert abs(regression.started_at - s.incident_start) <= 2 * BUCKET, s.name
        assert found == sorted(found, key=lambda r: (r.ended_at is not None, -r.confidence, -abs(r.relative_change)))


def test_detect_raises_nothing_on_harmless_changes(scenario_store: tuple[Store, list]) -> None:  # type: ignore[type-arg]
    store, scenarios = scenario_store
    calm = next(s for s in scenarios if s.cause == "none")
    assert detect(store, Window(calm.start, calm.end), filters=Filters(service=calm.service)) == []


def test_detect_says_when_there_is_no_data_or_too_little(scenario_store: tuple[Store, list]) -> None:  # type: ignore[type-arg]
    store, scenarios = scenario_store
    s = scenarios[0]
    with pytest.raises(NoDataError):
        detect(store, Window(s.start - timedelta(days=400), s.start - timedelta(days=399)))
    with pytest.raises(AnalysisError, match="too little data"):
        detect(store, Window(s.start, s.start + timedelta(minutes=4)), filters=Filters(service=s.service))


def test_detect_filters_narrow_the_search_to_the_route_that_broke(scenario_store: tuple[Store, list]) -> None:  # type: ignore[type-arg]
    store, scenarios = scenario_store
    s = next(s for s in scenarios if s.cause == "prompt_edit")
    broken = next(target for _, kind, target, _, _ in s.changes if kind == "prompt")
    healthy = next(r for r in ("/chat/answer", "/search", "/summarize") if r != broken)
    on = detect(store, Window(s.start, s.end), filters=Filters(service=s.service, route=broken), bucket=BUCKET)
    off = detect(store, Window(s.start, s.end), filters=Filters(service=s.service, route=healthy), bucket=BUCKET)
    assert [r.signal for r in on] == ["quality:faithfulness"]
    assert "quality:faithfulness" not in [r.signal for r in off]


def _insert_calls(store: Store, times: list[datetime], **columns: Any) -> None:
    """Insert one llm_calls row per time (trace t<i>, span s<i>): successful 1 s calls of service
    bot on /chat, unless a column (a list, one value per call) says otherwise."""
    n = len(times)
    rows = {"time": times, "trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)], "service": ["bot"] * n,
            "route": ["/chat"] * n, "status": ["Unset"] * n, "duration_s": [1.0] * n, "span_name": ["chat"] * n} | columns  # fmt: skip
    store.insert("llm_calls", list(rows.values()), list(rows))


def _traffic(store: Store, rng: np.random.Generator, *, small_errors_after: float) -> datetime:
    """Six hours of calls, 20 a minute over three providers, 5% of them on provider `small`; its
    error rate goes from 1% to `small_errors_after` for the last two hours. Returns the change time."""
    start, change, n = T0, T0 + timedelta(hours=4), 6 * 60 * 20
    times = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))]
    providers = rng.choice(["openai", "anthropic", "small"], size=n, p=[0.6, 0.35, 0.05])
    rates = np.where((providers == "small") & (np.array(times) >= change), small_errors_after, 0.01)
    _insert_calls(store, times, provider=list(providers), status=list(np.where(rng.random(n) < rates, "Error", "Unset")))
    return change


@pytest.mark.parametrize("seed", range(2))
def test_a_regression_hidden_in_the_whole_is_found_in_its_slice_and_named(store: Store, seed: int) -> None:
    """Errors x20 on a provider carrying 5% of the calls: under the whole's noise, plain in its own slice."""
    change = _traffic(store, np.random.default_rng(seed), small_errors_after=0.2)
    window = Window(T0, T0 + timedelta(hours=6))
    [found] = [r for r in detect(store, window, signals=["error_rate"])]
    assert found.slice is not None and (found.slice.dimension, found.slice.value) == ("provider", "small")
    assert found.where == "provider=small" and found.evidence.parameters["slice"] == "provider=small"
    assert abs(found.started_at - change) <= timedelta(minutes=15) and found.current > 0.1 > found.baseline


@pytest.mark.parametrize("seed", range(2))
def test_a_few_bad_calls_on_a_clean_slice_are_no_regression(store: Store, seed: int) -> None:
    """1% errors everywhere: slices are many chances for noise, and a rate's handful of errors is no shift."""
    _traffic(store, np.random.default_rng(seed), small_errors_after=0.01)
    assert detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["error_rate"]) == []


@pytest.mark.parametrize("seed", range(3))
def test_percentiles_move_on_every_bucket_not_on_a_slow_spike(seed: int) -> None:
    """A p95 bucket value is heavy-tailed: two buckets at 15 s among 1 s ones are no shift, a 30% rise of every bucket is."""
    rng = np.random.default_rng(seed)
    calls = np.full(120, 60)
    spiky = rng.lognormal(0, 0.1, 120)
    spiky[[70, 95]] = 15.0
    assert find_regression(get_signal("ttft_p95"), _frame(spiky, calls).assign(squares=np.nan)) is None
    steady = rng.lognormal(0, 0.1, 120) * np.r_[np.ones(80), np.full(40, 1.3)]
    found = find_regression(get_signal("ttft_p95"), _frame(steady, calls).assign(squares=np.nan))
    assert found is not None and found.ended_at is None and abs(found.started_at - (T0 + timedelta(minutes=800))) <= timedelta(minutes=20)


@pytest.mark.parametrize("seed", range(3))
def test_a_percentile_climbing_all_day_is_no_regression_but_a_step_out_of_the_climb_is(seed: int) -> None:
    """A p95 that climbs 60% over twenty hours, bucket by bucket: its late buckets beat its early
    ones by any rank test, yet nothing changed. The same climb with a 40% step two thirds in is
    a regression, found at the step."""
    rng = np.random.default_rng(seed)
    calls, climb = np.full(120, 60), np.linspace(1.0, 1.6, 120)
    climbing = rng.lognormal(0, 0.1, 120) * climb
    assert find_regression(get_signal("ttft_p95"), _frame(climbing, calls).assign(squares=np.nan)) is None
    stepped = rng.lognormal(0, 0.1, 120) * climb * np.r_[np.ones(80), np.full(40, 1.4)]
    found = find_regression(get_signal("ttft_p95"), _frame(stepped, calls).assign(squares=np.nan))
    assert found is not None and abs(found.started_at - (T0 + timedelta(minutes=800))) <= timedelta(minutes=20)


def _creeping_calls(store: Store, rng: np.random.Generator, *, step: float = 1.0) -> datetime:
    """Six hours of calls, 20 a minute: latency (lognormal, median 2 s) creeps up 25% from the first
    call to the last with load, cost per call 15% with prompt growth; from 5 h in, latency is
    `step` times that. Returns the step's time."""
    n, change = 6 * 60 * 20, T0 + timedelta(hours=5)
    offsets = np.sort(rng.uniform(0, 6 * 3600, n))
    times = [T0 + timedelta(seconds=float(s)) for s in offsets]
    creep = offsets / (6 * 3600)
    latency = np.exp(rng.normal(np.log(2.0), 0.4, n)) * (1 + 0.25 * creep) * np.where(offsets >= 5 * 3600, step, 1.0)
    cost = np.exp(rng.normal(np.log(0.004), 0.5, n)) * (1 + 0.15 * creep)
    _insert_calls(store, times, duration_s=list(latency), cost_usd=list(cost))
    return change


HEAVY = ["latency_p50", "latency_p95", "cost_per_call"]


@pytest.mark.parametrize("seed", range(2))
def test_a_creep_of_latency_and_spend_with_load_is_no_regression(store: Store, seed: int) -> None:
    """Latency up a quarter and spend up a seventh over six hours, gradually: significant over
    thousands of calls, and a step detector splits it into a before and an after a tenth apart, but
    nothing changed; a heavy-tailed signal must move a fifth (`min_relative_heavy`) and step out
    of the trend its baseline was on."""
    _creeping_calls(store, np.random.default_rng(seed))
    assert detect(store, Window(T0, T0 + timedelta(hours=6)), signals=HEAVY) == []


@pytest.mark.parametrize("seed", range(2))
def test_a_latency_step_on_top_of_a_creep_is_found(store: Store, seed: int) -> None:
    change = _creeping_calls(store, np.random.default_rng(seed), step=1.5)
    found = {r.signal: r for r in detect(store, Window(T0, T0 + timedelta(hours=6)), signals=HEAVY)}
    assert set(found) == {"latency_p50", "latency_p95"}
    assert abs(found["latency_p50"].started_at - change) <= timedelta(minutes=15) and found["latency_p50"].relative_change > 0.3


def _opening_hours(store: Store, rng: np.random.Generator, *, slower: float = 1.0) -> datetime:
    """Six hours of calls of one service: /chat (openai, median 1 s, $0.001) and /search
    (anthropic, median 2 s) at 8 and 4 a minute all day; /letters (openai, median 6 s, $0.01),
    whose users start work at hour four, at 4 an hour until then and 10 a minute after. No call
    runs slower than before, unless `slower` makes /chat's take that many times longer from hour
    four. Returns hour four."""
    opening, hour = T0 + timedelta(hours=4), 3600
    rates = {"/chat": (8 * 60, 8 * 60), "/search": (4 * 60, 4 * 60), "/letters": (4, 10 * 60)}  # calls an hour before, after
    medians, costs = {"/chat": 1.0, "/search": 2.0, "/letters": 6.0}, {"/chat": 0.001, "/search": 0.003, "/letters": 0.01}
    offsets, routes = [], []
    for route, (before, after) in rates.items():
        for lo, hi, rate in ((0, 4 * hour, before), (4 * hour, 6 * hour, after)):
            at = rng.uniform(lo, hi, rng.poisson(rate * (hi - lo) / hour))
            offsets.append(at)
            routes.append(np.full(len(at), route))
    offset, route = np.concatenate(offsets), np.concatenate(routes)
    order = np.argsort(offset)
    offset, route = offset[order], route[order]
    median = np.array([medians[r] for r in route]) * np.where((route == "/chat") & (offset >= 4 * hour), slower, 1.0)
    latency = np.exp(rng.normal(np.log(median), 0.3))
    cost = np.array([costs[r] for r in route]) * np.exp(rng.normal(0, 0.2, len(route)))
    _insert_calls(store, [T0 + timedelta(seconds=float(x)) for x in offset], route=list(route), duration_s=list(latency), cost_usd=list(cost),
                  provider=list(np.where(route == "/search", "anthropic", "openai")))  # fmt: skip
    return opening


def _assert_only_the_mix_stepped(store: Store, moment: datetime, factor: float, signals: list[str], **where: str) -> None:
    """The median latency of the calls matching `where` (one column = value) rose `factor` times at
    `moment`, and detection over `signals` finds no regression."""
    [(column, value)] = where.items()
    [(before, after)] = store.rows(f"SELECT quantileIf(0.5)(duration_s, time < {{t:DateTime64(9)}}), quantileIf(0.5)(duration_s, time >= {{t:DateTime64(9)}}) "
                                   f"FROM llm_calls WHERE {column} = {{v:String}}", {"t": moment, "v": value})  # fmt: skip
    assert after > factor * before  # the aggregate the tests read did step
    assert detect(store, Window(T0, T0 + timedelta(hours=6)), signals=signals) == []


@pytest.mark.parametrize("seed", range(2))
def test_a_slow_route_opening_for_the_day_raises_no_latency_or_cost_alarm(store: Store, seed: int) -> None:
    """At hour four a slow, costly route's users start work: the scope's median latency doubles
    and its cost per call triples, and so do openai's (the route is one of its two), with every
    route's calls as before. A shift of traffic between routes is no regression of any call."""
    opening = _opening_hours(store, np.random.default_rng(seed))
    _assert_only_the_mix_stepped(store, opening, 2, HEAVY, provider="openai")


def _thin_routes_opening(store: Store, rng: np.random.Generator) -> None:
    """Six hours on seven routes: six fast ones (median 1 s) at 3 calls a minute each until hour four,
    then 10; /slow (median 4 s) 5% of the calls until then, 30% after (its users start work). No
    call gets slower."""
    offsets, routes = [], []
    for lo, hi, per_minute, slow in ((0, 4 * 3600, 18, 0.05), (4 * 3600, 6 * 3600, 60, 0.3)):
        at = rng.uniform(lo, hi, rng.poisson(per_minute * (hi - lo) / 60))
        offsets.append(at)
        routes.append(np.where(rng.random(len(at)) < slow, "/slow", rng.choice([f"/r{i}" for i in range(6)], len(at))))
    order = np.argsort(np.concatenate(offsets))
    offset, route = np.concatenate(offsets)[order], np.concatenate(routes)[order]
    latency = np.exp(rng.normal(np.log(np.where(route == "/slow", 4.0, 1.0)), 0.5))
    _insert_calls(store, [T0 + timedelta(seconds=float(x)) for x in offset], route=list(route), duration_s=list(latency))


@pytest.mark.parametrize("seed", range(2))
def test_a_slow_route_opening_raises_no_tail_latency_alarm_over_routes_too_thin_to_read(store: Store, seed: int) -> None:
    """The scope's p99 steps up as the slow route's users start work. A p99 needs 200 calls a bucket,
    which no route's buckets hold before the opening, even merged: the routes cannot show whether
    any call got slower, and the slow route's growth alone holds under half the calls. A tail
    over routes too thin to read is not taken as the whole scope's (it may be any one route's, or
    the mix); the routes' own slices judge it, and none of them moved."""
    _thin_routes_opening(store, np.random.default_rng(seed))
    assert detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["latency_p99"]) == []


@pytest.mark.parametrize("seed", range(2))
def test_a_route_slowing_down_as_another_opens_is_found_on_that_route(store: Store, seed: int) -> None:
    """/chat's calls take 1.6 times as long from the hour /letters opens: the scope's shift is mostly
    the mix, so it is no regression of the whole, and /chat's own slice finds it."""
    opening = _opening_hours(store, np.random.default_rng(seed), slower=1.6)
    found = {r.signal: r for r in detect(store, Window(T0, T0 + timedelta(hours=6)), signals=HEAVY)}
    assert "latency_p50" in found and abs(found["latency_p50"].started_at - opening) <= timedelta(minutes=15)
    assert found["latency_p50"].slice is not None and found["latency_p50"].where == "route=/chat"


def _retrieval_route(store: Store, rng: np.random.Generator, *, chat_share: tuple[float, float] = (0.45, 0.55),
                     slower: tuple[float, float] = (1.0, 1.0)) -> datetime:  # fmt: skip
    """Six hours of one service: /chat (median 1 s) at 6 a minute, and /ask, a retrieval route
    whose questions make an embeddings call (median 0.08 s, $0.00001) and a chat call (median 6 s,
    $0.01), 8 calls a minute. Until hour four `chat_share[0]` of /ask's calls are chat calls, after
    it `chat_share[1]` (more retries, answers cached at retrieval): by default /ask's median moves
    from its embeddings to its chat calls. From hour four, too, service version 1.2 answers (1.1
    before); with `slower`, /ask's chat and embeddings calls take that many times longer. Returns hour four."""
    change, hour = T0 + timedelta(hours=4), 3600
    offset = np.sort(rng.uniform(0, 6 * hour, rng.poisson(14 * 60 * 6)))
    after = offset >= 4 * hour
    route = np.where(rng.random(len(offset)) < 6 / 14, "/chat", "/ask")
    chat = (route == "/chat") | (rng.random(len(offset)) < np.where(after, chat_share[1], chat_share[0]))
    median = np.where(route == "/chat", 1.0, np.where(chat, 6.0, 0.08) * np.where(after, np.where(chat, *slower), 1.0))
    cost = np.where(chat, 0.01, 0.00001) * np.exp(rng.normal(0, 0.2, len(offset)))
    _insert_calls(store, [T0 + timedelta(seconds=float(x)) for x in offset], route=list(route), operation=list(np.where(chat, "chat", "embeddings")),
                  duration_s=list(np.exp(rng.normal(np.log(median), 0.3))), cost_usd=list(cost),
                  service_version=list(np.where(after, "1.2", "1.1")))  # fmt: skip
    return change


@pytest.mark.parametrize("seed", range(2))
def test_more_chat_calls_on_a_retrieval_route_raise_no_latency_or_cost_alarm(store: Store, seed: int) -> None:
    """/ask's median latency and cost per call step up at hour four, as a deploy lands, with
    neither kind of call slower or dearer than before: a shift between a route's operations is no
    regression, found neither by the search nor by the test at the deploy's moment."""
    change = _retrieval_route(store, np.random.default_rng(seed))
    _assert_only_the_mix_stepped(store, change, 5, HEAVY, route="/ask")


@pytest.mark.parametrize("seed", range(2))
def test_a_retrieval_route_whose_chat_calls_creep_raises_no_median_alarm(store: Store, seed: int) -> None:
    """/ask's chat calls go from 40% to 48% of its calls and take 4% longer (load, not a change):
    its median, among the embeddings calls' slowest, rises by a quarter or more. The chat calls' few
    percent count for nothing in seconds (less than half the smallest shift reported), so the
    rise is the mix: no alarm."""
    change = _retrieval_route(store, np.random.default_rng(seed), chat_share=(0.40, 0.48), slower=(1.04, 1.0))
    _assert_only_the_mix_stepped(store, change, 1.2, ["latency_p50"], route="/ask")


@pytest.mark.parametrize("seed", range(2))
def test_a_retrieval_route_slower_under_load_than_it_shows_raises_no_median_alarm(store: Store, seed: int) -> None:
    """The same shift of /ask's operations, with every call on it 12% slower from hour four (under
    the 20% a latency must move to be reported): its median rises by 40% or more. In seconds the
    chat calls' 12% (0.7 s) would make all of that rise; in proportion the calls moved 12%, under
    half the rise, so it is the mix: no alarm."""
    change = _retrieval_route(store, np.random.default_rng(seed), chat_share=(0.40, 0.48), slower=(1.12, 1.12))
    _assert_only_the_mix_stepped(store, change, 1.3, ["latency_p50"], route="/ask")


@pytest.mark.parametrize("seed", range(2))
def test_chat_calls_slowing_on_a_retrieval_route_are_still_found(store: Store, seed: int) -> None:
    """The same shift of /ask's operations, and its chat calls 1.5 times slower from the deploy:
    their own calls show it, so the p95 latency regression (the chat calls' tail) stands."""
    change = _retrieval_route(store, np.random.default_rng(seed), slower=(1.5, 1.0))
    found = {r.signal: r for r in detect(store, Window(T0, T0 + timedelta(hours=6)), signals=HEAVY)}
    assert "latency_p95" in found and abs(found["latency_p95"].started_at - change) <= timedelta(minutes=15)
    assert found["latency_p95"].relative_change > 0.3


def _night_then_day(store: Store, rng: np.random.Generator, *, step: float) -> datetime:
    """Eight hours of calls (latency lognormal, median 2 s): 3 per 5 minutes for five hours of
    night, then 60 per 5 minutes; from 7h latency is `step` times that. Returns 7h."""
    night, day = rng.uniform(0, 5 * 3600, 5 * 12 * 3), rng.uniform(5 * 3600, 8 * 3600, 3 * 12 * 60)
    offsets = np.sort(np.concatenate([night, day]))
    latency = np.exp(rng.normal(np.log(2.0), 0.3, len(offsets))) * np.where(offsets >= 7 * 3600, step, 1.0)
    _insert_calls(store, [T0 + timedelta(seconds=float(x)) for x in offsets], duration_s=list(latency))
    return T0 + timedelta(hours=7)


@pytest.mark.parametrize("seed", range(2))
def test_a_step_in_the_busy_hours_after_a_thin_night_is_found(store: Store, seed: int) -> None:
    """Latency doubles for the last hour of a day that followed a thin night. The night's buckets
    are too thin for a median and are read in groups; the day's are read one by one, so the step
    keeps its twelve buckets (merging every bucket to the night's size left it three, under the
    search's bar), and a day without the step raises nothing."""
    window = Window(T0, T0 + timedelta(hours=8))
    change = _night_then_day(store, np.random.default_rng(seed), step=2.0)
    found = {r.signal: r for r in detect(store, window, signals=["latency_p50"])}
    assert "latency_p50" in found and abs(found["latency_p50"].started_at - change) <= timedelta(minutes=10)
    store.command("TRUNCATE TABLE llm_calls")
    _night_then_day(store, np.random.default_rng(seed), step=1.0)
    assert detect(store, window, signals=["latency_p50"]) == []


def _judged_routes(store: Store, rng: np.random.Generator, *, small_drop: float, new_prompt: bool = False, storm: bool = False) -> datetime:
    """Six hours of judged calls, 10 a minute over three routes, 8% of them on /small; from hour
    four /small scores `small_drop` lower and, with `new_prompt`, carries prompt v2 (v1 before and
    elsewhere). With `storm`, 40% of all calls fail from 4h30 to 5h. Judge scores come two minutes
    after their calls. Returns the change time."""
    n = 6 * 60 * 10
    times = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))]
    routes = rng.choice(["/chat", "/search", "/small"], size=n, p=[0.6, 0.32, 0.08])
    change = T0 + timedelta(hours=4)
    changed = (routes == "/small") & (np.array(times) >= change)
    stormy = storm & (np.array(times) >= change + timedelta(minutes=30)) & (np.array(times) < change + timedelta(hours=1))
    status = np.where(stormy & (rng.random(n) < 0.4), "Error", "Unset")
    _insert_calls(store, times, route=list(routes), status=list(status), prompt_name=["answer"] * n,
                  prompt_version=list(np.where(changed & new_prompt, "v2", "v1")))  # fmt: skip
    scores = np.clip(rng.normal(np.where(changed, 0.85 - small_drop, 0.85), 0.15), 0, 1)
    judged = {"time": [t + timedelta(minutes=2) for t in times], "trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)],
              "service": ["bot"] * n, "evaluation": ["faithfulness"] * n, "score": list(scores)}  # fmt: skip
    store.insert("llm_scores", list(judged.values()), list(judged))
    return change


def test_a_quality_drop_on_one_route_is_found_through_scores_given_after_their_calls(store: Store) -> None:
    """Judge scores recorded later carry no route: detection reads the whole from the scores alone,
    and where that shows nothing, joins them to their calls to judge each route."""
    change = _judged_routes(store, np.random.default_rng(3), small_drop=0.25)
    [found] = detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["quality:faithfulness"])
    assert found.where == "route=/small" and abs(found.started_at - change) <= timedelta(minutes=15)


def test_scores_an_evaluation_job_gave_count_for_the_service_whose_calls_they_judge(store: Store) -> None:
    """An evaluation job, a service of its own, scores the calls of service `bot` two minutes after
    them (its rows carry the job's service and no call time, as a score on a span linked to the
    call does); from hour four they score 0.1 lower. Over `bot`'s calls the drop is found as over
    the whole store: a service filter reads the scores through the calls they judge."""
    rng, n, change = np.random.default_rng(5), 6 * 60 * 10, T0 + timedelta(hours=4)
    times = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))]
    _insert_calls(store, times)
    scores = np.clip(rng.normal(np.where(np.array(times) >= change, 0.75, 0.85), 0.1), 0, 1)
    judged = {"time": [t + timedelta(minutes=2) for t in times], "trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)],
              "service": ["evals"] * n, "evaluation": ["faithfulness"] * n, "score": list(scores)}  # fmt: skip
    store.insert("llm_scores", list(judged.values()), list(judged))
    for filters in (Filters(), Filters(service="bot")):
        [found] = detect(store, Window(T0, T0 + timedelta(hours=6)), filters=filters, signals=["quality:faithfulness"])
        assert found.slice is None and abs(found.started_at - change) <= timedelta(minutes=10)


@pytest.mark.parametrize("seed", range(4))
def test_a_small_drop_a_new_prompt_brought_to_one_route_is_found_at_its_first_appearance(store: Store, seed: int) -> None:
    """A 0.06 drop on 8% of the calls: below the bar of the search over every split of every slice,
    plain at the moment prompt v2 first appeared on /small, a split known before looking."""
    change = _judged_routes(store, np.random.default_rng(seed), small_drop=0.06, new_prompt=True)
    window = Window(T0, T0 + timedelta(hours=6))
    assert detect(store, window, signals=["quality:faithfulness"], settings=DetectionSettings(anchored_alpha=0)) == []
    [found] = detect(store, window, signals=["quality:faithfulness"])
    assert found.where == "route=/small" and change <= found.started_at <= change + timedelta(minutes=5)
    assert found.current < found.baseline - 0.03 and found.anchor == "prompt_version=v2"


def test_a_finding_only_the_test_at_a_change_found_comes_after_the_others(store: Store) -> None:
    """Its evidence is weaker (one split, a lower bar): an error storm that already ended still leads."""
    _judged_routes(store, np.random.default_rng(0), small_drop=0.06, new_prompt=True, storm=True)
    found = detect(store, Window(T0, T0 + timedelta(hours=6)))
    assert [(r.signal, r.anchor, r.ended_at is not None) for r in found] == [("error_rate", None, True), ("quality:faithfulness", "prompt_version=v2", False)]


@pytest.mark.parametrize("seed", range(3))
def test_a_harmless_new_prompt_raises_nothing(store: Store, seed: int) -> None:
    """The same new prompt with no effect: testing at its moment finds no regression in any signal."""
    _judged_routes(store, np.random.default_rng(seed), small_drop=0.0, new_prompt=True)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


def _two_models(store: Store, rng: np.random.Generator, *, drop: float, arm: str) -> datetime:
    """Six hours of judged calls on /chat, 10 a minute, half on request model m-weak (scores 0.78),
    half on m-strong (0.92), answered by the model asked for. From hour four one arm carries a
    change and scores `drop` lower: `arm="ab"` a random half of the calls gets prompt v2 (v1
    before and elsewhere); `arm="snapshot"` m-weak's calls are answered by m-weak-2. Returns the
    first changed call's time."""
    n = 6 * 60 * 10
    times = np.array([T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))])
    models = rng.choice(["m-weak", "m-strong"], size=n)
    changed = (times >= T0 + timedelta(hours=4)) & ((rng.random(n) < 0.5) if arm == "ab" else (models == "m-weak"))
    answered = np.where(changed & (arm == "snapshot"), "m-weak-2", models)
    _insert_calls(store, list(times), request_model=list(models), response_model=list(answered), prompt_name=["answer"] * n,
                  prompt_version=list(np.where(changed & (arm == "ab"), "v2", "v1")))  # fmt: skip
    scores = np.clip(rng.normal(np.where(models == "m-weak", 0.78, 0.92) - np.where(changed, drop, 0.0), 0.1), 0, 1)
    judged = {"time": [t + timedelta(minutes=2) for t in times], "trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)],
              "service": ["bot"] * n, "evaluation": ["faithfulness"] * n, "score": list(scores)}  # fmt: skip
    store.insert("llm_scores", list(judged.values()), list(judged))
    return min(times[changed])


@pytest.mark.parametrize("seed", range(3))
def test_a_drop_an_ab_test_brought_to_half_a_route_is_found_in_the_calls_that_carry_it(store: Store, seed: int) -> None:
    """Prompt v2 on a random half of /chat scores 0.04 lower: on the whole route that is a 0.02
    drop, under the 3% a finding must reach; the calls carrying v2, against the route's before,
    show all of it."""
    first = _two_models(store, np.random.default_rng(seed), drop=0.04, arm="ab")
    [found] = detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["quality:faithfulness"])
    assert found.anchor == "prompt_version=v2" and found.anchor_calls_only and found.started_at == first
    assert found.baseline - found.current == pytest.approx(0.04, abs=0.015)


@pytest.mark.parametrize(("seed", "arm"), [(0, "ab"), (1, "ab"), (0, "snapshot"), (1, "snapshot")])
def test_a_harmless_change_on_part_of_a_route_raises_nothing(store: Store, seed: int, arm: str) -> None:
    """No effect: neither an A/B arm nor a new snapshot of the weaker model is a regression. The
    snapshot's calls (m-weak's, 0.78) are compared with m-weak's before it, not with the route's
    (0.85), which would read the weaker model's own level as a drop."""
    _two_models(store, np.random.default_rng(seed), drop=0.0, arm=arm)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


def _snapshot_behind_three_routes(store: Store, rng: np.random.Generator, *, drop: float) -> datetime:
    """Six hours of judged calls: /a and /b (service bot) and /c (service desk) ask model m, two a
    minute each, /d (bot) asks model n, twelve a minute. In the last hour m is answered by
    snapshot m-2, which scores `drop` lower (0.85 before, sd 0.12). Returns its first call's time."""
    n = 6 * 60 * 18
    times = np.array([T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))])
    routes = rng.choice(["/a", "/b", "/c", "/d"], size=n, p=[2 / 18, 2 / 18, 2 / 18, 12 / 18])
    asked = np.where(routes == "/d", "n", "m")
    changed = (asked == "m") & (times >= T0 + timedelta(hours=5))
    _insert_calls(store, list(times), route=list(routes), service=list(np.where(routes == "/c", "desk", "bot")), provider=["openai"] * n,
                  request_model=list(asked), response_model=list(np.where(changed, "m-2", np.where(asked == "m", "m-1", "n-1"))))  # fmt: skip
    scores = np.clip(rng.normal(0.85 - np.where(changed, drop, 0.0), 0.12), 0, 1)
    judged = {"time": [t + timedelta(minutes=1) for t in times], "trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)],
              "service": list(np.where(routes == "/c", "desk", "bot")), "evaluation": ["faithfulness"] * n, "score": list(scores)}  # fmt: skip
    store.insert("llm_scores", list(judged.values()), list(judged))
    return min(times[changed])


@pytest.mark.parametrize("seed", range(3))
def test_a_new_snapshot_behind_several_routes_is_found_over_all_of_them(store: Store, seed: int) -> None:
    """A 0.035 drop on each of three thin routes of two services (a third of the traffic): too
    little for each route's own test at the snapshot's moment, and diluted below 3% in the whole;
    the snapshot's calls over all three routes, against those routes' calls of the same model
    before it, show it, as a regression of the whole scope."""
    first = _snapshot_behind_three_routes(store, np.random.default_rng(seed), drop=0.035)
    [found] = detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["quality:faithfulness"])
    assert found.anchor == "response_model=m-2" and found.anchor_calls_only and found.slice is None
    assert found.started_at == first and found.baseline - found.current == pytest.approx(0.035, abs=0.015)


@pytest.mark.parametrize("seed", range(3))
def test_a_harmless_snapshot_behind_several_routes_raises_nothing(store: Store, seed: int) -> None:
    _snapshot_behind_three_routes(store, np.random.default_rng(seed), drop=0.0)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


def _tenant_surge(store: Store, rng: np.random.Generator, *, gap: float, growth: float = 1.0, share: float = 0.04, climb: bool = False,
                  lasting: float = 2.0, scans: bool = False) -> datetime:  # fmt: skip
    """Six hours of judged calls on /chat, 10 a minute over four tenants, `share` of them tenant
    `small`, whose answers always score `gap` lower (0.85 against 0.85 - gap, sd 0.15); from hour
    four, for `lasting` hours, `small` sends `growth` times its calls (the extra on top of the others', or fewer). With
    `climb`, its share instead climbs steadily from 2% to 12% over the six hours. Nobody's answers
    get worse. Judge scores come two minutes after their calls. With `scans`, the calls read
    scanned documents instead, unjudged: the OCR's mean word confidence is 0.88 (sd 0.06), `gap`
    lower on `small`'s (poorer scans). Returns the step's time."""
    change, n = T0 + timedelta(hours=4), 6 * 60 * 10
    offsets = np.sort(rng.uniform(0, 6 * 3600, n))
    small = rng.random(n) < (0.02 + 0.10 * offsets / (6 * 3600) if climb else share)
    tenants = np.where(small, "small", rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]))
    extra = rng.uniform(4 * 3600, (4 + lasting) * 3600, rng.poisson(max(growth - 1, 0) * share * 10 * 60 * lasting))
    kept = ~small | (offsets < 4 * 3600) | (offsets >= (4 + lasting) * 3600) | (rng.random(n) < growth if growth < 1 else True)
    tenants = tenants[kept]
    offsets, tenants = np.concatenate([offsets[kept], extra]), np.concatenate([tenants, np.full(len(extra), "small")])
    times, total = [T0 + timedelta(seconds=float(s)) for s in offsets], len(offsets)
    if scans:
        _insert_calls(store, times, tenant=list(tenants), confidence_mean=list(np.clip(rng.normal(np.where(tenants == "small", 0.88 - gap, 0.88), 0.06), 0, 1)))
        return change
    _insert_calls(store, times, tenant=list(tenants))
    scores = np.clip(rng.normal(np.where(tenants == "small", 0.85 - gap, 0.85), 0.15), 0, 1)
    judged = {"time": [t + timedelta(minutes=2) for t in times], "trace_id": [f"t{i}" for i in range(total)],
              "span_id": [f"s{i}" for i in range(total)], "service": ["bot"] * total, "evaluation": ["faithfulness"] * total, "score": list(scores)}  # fmt: skip
    store.insert("llm_scores", list(judged.values()), list(judged))
    return change


@pytest.mark.parametrize("seed", range(3))
def test_a_weak_tenant_growing_is_found_where_its_share_stepped(store: Store, seed: int) -> None:
    """A tenant scoring 0.18 lower grows from 4% to 14% of the calls: the score falls by about 0.02,
    under the floor and the noise of every test of the score alone; the tenant's share steps far
    beyond its own noise, and there the move that step explains is tested."""
    change = _tenant_surge(store, np.random.default_rng(seed), gap=0.18, growth=4)
    found = _found_only_at_the_share_step(store, change, "quality:faithfulness")
    assert f"tenant=small's share of the calls stepped from {found.share_step[0]:.1%} to {found.share_step[1]:.1%}" in found.anchor_note


def _found_only_at_the_share_step(store: Store, change: datetime, signal: str) -> Regression:
    """The one regression of `_tenant_surge`'s six hours: `signal` falling, found by the test at
    tenant small's share step (4% to 11-17% of the calls) and by nothing else."""
    window = Window(T0, T0 + timedelta(hours=6))
    assert detect(store, window, settings=DetectionSettings(anchored_alpha=0)) == []
    [found] = detect(store, window)
    assert found.signal == signal and found.anchor == "tenant=small" and found.current < found.baseline
    assert abs(found.started_at - change) <= timedelta(minutes=5) and found.share_step is not None
    before, after = found.share_step
    assert 0.03 < before < 0.05 and 0.11 < after < 0.17
    return found


def test_the_report_names_the_growing_tenant_and_where_its_share_stepped(store: Store) -> None:
    _tenant_surge(store, np.random.default_rng(7), gap=0.18, growth=4)
    report = incident_report(store, Window(T0, T0 + timedelta(hours=6)))
    [finding] = report.findings
    assert finding.attribution is not None and finding.attribution.suspects[0].values == ("small",)
    assert finding.regression.share_step is not None
    stepped = "share of the calls stepped from {:.1%} to {:.1%}".format(*finding.regression.share_step)
    assert stepped in render_report(report, "md") and stepped in render_report(report, "html")


def test_a_tenant_step_is_found_on_buckets_too_fine_for_the_share_search_to_read_one_by_one(store: Store) -> None:
    """30-second buckets: 720 with calls, summed in pairs for the search over every start and end."""
    change = _tenant_surge(store, np.random.default_rng(0), gap=0.18, growth=4)
    found = detect(store, Window(T0, T0 + timedelta(hours=6)), signals=["quality:faithfulness"], bucket=timedelta(seconds=30))
    assert [r.anchor for r in found] == ["tenant=small"] and abs(found[0].started_at - change) <= timedelta(minutes=5)


@pytest.mark.parametrize("seed", range(2))
def test_a_weak_tenants_surge_that_ended_is_found_with_its_end(store: Store, seed: int) -> None:
    """The same growth for one hour, then back: one split at its start reads it diluted by the
    hour after it; the hour itself is the step, and the regression ends with it."""
    change = _tenant_surge(store, np.random.default_rng(seed), gap=0.18, growth=5, lasting=1.0)
    [found] = detect(store, Window(T0, T0 + timedelta(hours=6)))
    assert found.anchor == "tenant=small" and abs(found.started_at - change) <= timedelta(minutes=5)
    assert found.ended_at is not None and abs(found.ended_at - (change + timedelta(hours=1))) <= timedelta(minutes=10)


@pytest.mark.parametrize("seed", range(2))
def test_a_strong_tenant_leaving_is_found_where_its_share_fell(store: Store, seed: int) -> None:
    """A tenant with 30% of the calls, scoring 0.1 higher, sends 30% of its calls from hour four:
    the score falls by about 0.015, found where the tenant's share fell."""
    change = _tenant_surge(store, np.random.default_rng(seed), gap=-0.1, growth=0.3, share=0.3)
    [found] = detect(store, Window(T0, T0 + timedelta(hours=6)))
    assert found.anchor == "tenant=small" and abs(found.started_at - change) <= timedelta(minutes=5) and found.current < found.baseline
    assert found.share_step is not None and found.share_step[1] < found.share_step[0] / 2


@pytest.mark.parametrize("seed", range(3))
def test_a_tenant_growing_that_scores_as_the_others_do_raises_nothing(store: Store, seed: int) -> None:
    _tenant_surge(store, np.random.default_rng(seed), gap=0.0, growth=4)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_weak_tenants_share_climbing_all_day_raises_nothing(store: Store, seed: int) -> None:
    """From 2% to 12% of the calls in six hours: the halves of the day differ by more than twice,
    no moment does."""
    _tenant_surge(store, np.random.default_rng(seed), gap=0.18, climb=True)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


@pytest.mark.parametrize("seed", range(3))
def test_a_tenant_with_poorer_scans_growing_is_found_in_input_confidence_where_its_share_stepped(store: Store, seed: int) -> None:
    """A tenant whose scans read 0.1 less sure grows from 4% to 14% of the calls (a backlog upload):
    every call's confidence, not a sample of judged ones, shows the move its share step explains,
    about 0.01, far under any test of the mean alone. Confidence measures what came in, so like a
    score it gets the tenant-mix test (latency and cost do not)."""
    change = _tenant_surge(store, np.random.default_rng(seed), gap=0.1, growth=4, scans=True)
    _found_only_at_the_share_step(store, change, "input_confidence")


def test_the_report_names_the_tenant_whose_poorer_scans_grew(store: Store) -> None:
    _tenant_surge(store, np.random.default_rng(5), gap=0.1, growth=4, scans=True)
    [finding] = incident_report(store, Window(T0, T0 + timedelta(hours=6))).findings
    assert finding.regression.signal == "input_confidence" and finding.regression.share_step is not None
    assert finding.attribution is not None and finding.attribution.suspects[0].values == ("small",)


@pytest.mark.parametrize("seed", range(3))
def test_a_tenant_with_scans_as_good_as_the_others_growing_raises_nothing(store: Store, seed: int) -> None:
    _tenant_surge(store, np.random.default_rng(seed), gap=0.0, growth=4, scans=True)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


def _voice_calls(store: Store, rng: np.random.Generator, *, shift: float, hours: int = 6, calls: int = 6 * 60,
                 deploy_after: float = 5.0) -> datetime:  # fmt: skip
    """`hours` of transcribed calls, one a minute by default (a small voice route): mean word
    confidence ~0.83 (sd 0.1); a deploy `deploy_after` hours in moves it by `shift`. Returns the
    deploy time."""
    n, change = calls, T0 + timedelta(hours=deploy_after)
    times = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
    after = np.array(times) >= change
    confidence = np.clip(rng.normal(0.83 + np.where(after, shift, 0.0), 0.1), 0, 1)
    _insert_calls(store, times, service=["voice"] * n, route=["/voice"] * n, service_version=list(np.where(after, "1.1", "1.0")),
                  confidence_mean=list(confidence))  # fmt: skip
    return change


@pytest.mark.parametrize("seed", range(3))
def test_a_deploy_that_lowers_asr_confidence_is_found_by_its_mean(store: Store, seed: int) -> None:
    """60 calls after a deploy that costs 0.08 of confidence: only a handful more fall under the
    low-confidence line, too few for the search over every split to find in its share (a test
    at the deploy's moment sometimes can); their mean says it plainly."""
    change = _voice_calls(store, np.random.default_rng(seed), shift=-0.08)
    found = {r.signal: r for r in detect(store, Window(T0, T0 + timedelta(hours=6)), settings=DetectionSettings(anchored_alpha=0))}
    assert "low_confidence_share" not in found
    confidence = found["input_confidence"]
    assert abs(confidence.started_at - change) <= timedelta(minutes=10) and confidence.current < confidence.baseline - 0.05


@pytest.mark.parametrize("seed", range(3))
def test_a_drop_on_a_service_too_thin_for_buckets_is_still_reported(store: Store, seed: int) -> None:
    """90 calls in 3 hours, a few per bucket: detect once said "too little data" here and dropped the
    confidence regression its test had found (a thinner service that kept steady still says it)."""
    change = _voice_calls(store, np.random.default_rng(seed), shift=-0.2, hours=3, calls=90, deploy_after=1.5)
    found = detect(store, Window(T0, T0 + timedelta(hours=3)), settings=DetectionSettings(anchored_alpha=0))
    confidence = next(r for r in found if r.signal == "input_confidence")
    assert abs(confidence.started_at - change) <= timedelta(minutes=20) and confidence.current < confidence.baseline - 0.1


@pytest.mark.parametrize("seed", range(3))
def test_a_service_too_thin_for_buckets_that_kept_steady_has_too_little_data(store: Store, seed: int) -> None:
    """50 calls in 3 hours: even merged, no signal has six buckets of ten calls to judge."""
    _voice_calls(store, np.random.default_rng(seed), shift=0.0, hours=3, calls=50, deploy_after=1.5)
    with pytest.raises(AnalysisError, match="too little data"):
        detect(store, Window(T0, T0 + timedelta(hours=3)))


@pytest.mark.parametrize("seed", range(3))
def test_a_deploy_that_keeps_asr_confidence_raises_nothing(store: Store, seed: int) -> None:
    _voice_calls(store, np.random.default_rng(seed), shift=0.0)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []


def _streamed_calls(store: Store, rng: np.random.Generator, *, slower: float) -> datetime:
    """Six hours of streamed calls, one a minute (a small voice route): TTFT ~0.4 s (lognormal, sd
    0.25 on the log scale); a deploy 5 h in multiplies it by `slower`. Returns the deploy time."""
    n, change = 6 * 60, T0 + timedelta(hours=5)
    times = [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 6 * 3600, n))]
    after = np.array(times) >= change
    ttft = np.exp(rng.normal(np.log(0.4), 0.25, n)) * np.where(after, slower, 1.0)
    _insert_calls(store, times, service=["voice"] * n, route=["/voice"] * n, service_version=list(np.where(after, "1.1", "1.0")),
                  stream=[True] * n, ttft_s=list(ttft), duration_s=list(ttft + 2.0))  # fmt: skip
    return change


@pytest.mark.parametrize("seed", range(3))
def test_a_deploy_that_buffers_a_small_routes_streams_is_found_at_its_first_appearance(store: Store, seed: int) -> None:
    """TTFT x2.5 on the 60 calls since a deploy: each of their six buckets (ten calls to a p50) is
    above nearly every earlier one, which the rank test over every split cannot tell from noise,
    and a test at the deploy's moment, known before looking, can."""
    change = _streamed_calls(store, np.random.default_rng(seed), slower=2.5)
    window = Window(T0, T0 + timedelta(hours=6))
    assert detect(store, window, signals=["ttft_p50"], settings=DetectionSettings(anchored_alpha=0)) == []
    [found] = detect(store, window, signals=["ttft_p50"])
    assert found.anchor == "service_version=1.1" and change <= found.started_at <= change + timedelta(minutes=15)
    assert found.current > 2 * found.baseline


@pytest.mark.parametrize("seed", range(3))
def test_a_deploy_that_keeps_ttft_raises_nothing(store: Store, seed: int) -> None:
    _streamed_calls(store, np.random.default_rng(seed), slower=1.0)
    assert detect(store, Window(T0, T0 + timedelta(hours=6))) == []

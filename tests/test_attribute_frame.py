"""attribute_frame's root-cause set: the elements that together explain a change are marked, on
additive KPIs (RiskLoc/Squeeze-style leaves) and on rates (errors or scores per call)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from driftline.analyzers import attribute_frame

COLUMNS = {"dimensions", "values", "label", "explained_share", "within_share", "mix_share", "effect", "baseline_value",
           "current_value", "baseline_count", "current_count", "coverage", "score", "root_cause"}  # fmt: skip


def _kpi(seed: int, causes: list[tuple[dict[str, str], float]], noise: float = 0.01) -> pd.DataFrame:
    """A bigger additive frame (4 dims, 6x8x5x4 leaves, skewed sizes) with ripple-effect causes."""
    rng = np.random.default_rng(seed)
    dims = {"a": 6, "b": 8, "c": 5, "d": 4}
    frame = pd.DataFrame(list(itertools.product(*[[f"{d}{i}" for i in range(n)] for d, n in dims.items()])), columns=list(dims))
    frame["predict"] = rng.lognormal(3, 1.5, len(frame))
    factor = np.ones(len(frame))
    for cause, f in causes:
        factor[np.logical_and.reduce([frame[d] == v for d, v in cause.items()])] = f
    frame["real"] = frame["predict"] * factor * rng.normal(1, noise, len(frame))
    return frame


def _marked(ranked: pd.DataFrame) -> set[str]:
    return set(ranked.loc[ranked["root_cause"], "label"])


def _run(frame: pd.DataFrame, **kw) -> pd.DataFrame:
    return attribute_frame(frame, dimensions=["a", "b", "c", "d"], baseline="predict", current="real", **kw)


# --- the root-cause set, additive KPI ----------------------------------------------------------


def test_a_single_value_cause_is_marked_alone_and_first() -> None:
    ranked = _run(_kpi(0, [({"b": "b3"}, 0.5)]))
    assert _marked(ranked) == {"b=b3"}
    assert ranked.iloc[0]["label"] == "b=b3" and ranked.iloc[0]["root_cause"]
    assert set(ranked.columns) >= COLUMNS and ranked["root_cause"].dtype == bool


def test_a_two_dimensional_cause_is_marked_not_its_parents_or_children() -> None:
    ranked = _run(_kpi(1, [({"a": "a2", "c": "c4"}, 1.8)]))
    assert _marked(ranked) == {"a=a2 & c=c4"}


def test_a_three_dimensional_cause_is_found_by_default() -> None:
    ranked = _run(_kpi(2, [({"a": "a1", "b": "b5", "d": "d0"}, 0.3)]))
    assert _marked(ranked) == {"a=a1 & b=b5 & d=d0"}
    assert ranked.iloc[0]["label"] == "a=a1 & b=b5 & d=d0" and ranked.iloc[0]["explained_share"] > 0.3


def test_two_disjoint_causes_are_both_marked() -> None:
    ranked = _run(_kpi(3, [({"a": "a0"}, 0.6), ({"b": "b6", "c": "c1"}, 0.2)]))
    assert _marked(ranked) == {"a=a0", "b=b6 & c=c1"}
    assert set(ranked.iloc[:2]["label"]) == {"a=a0", "b=b6 & c=c1"}


def test_causes_of_different_layers_and_sizes_are_all_marked() -> None:
    ranked = _run(_kpi(4, [({"d": "d3"}, 0.7), ({"a": "a4", "b": "b1", "c": "c0"}, 0.0), ({"a": "a5", "c": "c2"}, 0.5)]))
    assert _marked(ranked) == {"d=d3", "a=a4 & b=b1 & c=c0", "a=a5 & c=c2"}


def test_a_three_dimensional_cause_among_whole_values_is_found_not_its_pair() -> None:
    """Three whole values tripled, so the pairs that pay most up front all lie inside them, and one
    triple doubled: the pair taken for it holds other leaves and gives way to the triple inside it."""
    ranked = _run(_kpi(0, [({"d": "d1"}, 3.0), ({"c": "c2"}, 3.0), ({"b": "b3"}, 3.0), ({"a": "a1", "b": "b1", "c": "c1"}, 2.0)]))
    assert _marked(ranked) == {"b=b3", "c=c2", "d=d1", "a=a1 & b=b1 & c=c1"}
    assert ranked["label"].is_unique


def test_a_single_leaf_cause_is_found_below_the_three_dimensions_searched_up_front() -> None:
    """One leaf of four dimensions (RiskLoc's L and S sets place causes there): the triple holding it
    is taken first, and gives way to the leaf, since the triple's other leaves did not move."""
    for seed, leaf in [(6, {"a": "a2", "b": "b4", "c": "c1", "d": "d2"}), (7, {"a": "a5", "b": "b0", "c": "c3", "d": "d1"})]:
        ranked = _run(_kpi(seed, [(leaf, 0.2)], noise=0.05))
        assert _marked(ranked) == {" & ".join(f"{d}={v}" for d, v in leaf.items())}


def test_a_three_dimensional_cause_is_not_split_by_one_small_leaf_inside_that_moved_most() -> None:
    """The triple's leaves with volume dropped by half; of its two tiny ones (1 call expected), one
    held and one dropped to nothing, the largest relative move (Squeeze B0 has such cases). The rest
    of the triple moved too, so the triple stays the cause, not that leaf."""
    frame = _kpi(2, [({"a": "a1", "b": "b5", "d": "d0"}, 0.5)])
    triple = (frame["a"] == "a1") & (frame["b"] == "b5") & (frame["d"] == "d0")
    frame.loc[triple & (frame["c"] == "c3"), ["predict", "real"]] = [1.0, 1.0]
    frame.loc[triple & (frame["c"] == "c4"), ["predict", "real"]] = [1.0, 0.0]
    assert _marked(_run(frame)) == {"a=a1 & b=b5 & d=d0"}


def test_a_forecast_off_for_every_leaf_blames_no_value_beside_the_cause() -> None:
    """Squeeze's noisier sets perturb the forecast of every leaf (here by 20%), which biases every
    relative deviation a little the same way. Over 30,000 leaves that shared bias would pay for a
    whole value as a cause; only the value that really dropped is marked."""
    rng = np.random.default_rng(8)
    dims = {"a": 10, "b": 30, "c": 10, "d": 10}
    frame = pd.DataFrame(list(itertools.product(*[[f"{d}{i}" for i in range(n)] for d, n in dims.items()])), columns=list(dims))
    frame["real"] = rng.lognormal(3, 1.5, len(frame)) * np.where(frame["c"] == "c7", 0.5, 1.0)
    frame["predict"] = frame["real"] / np.where(frame["c"] == "c7", 0.5, 1.0) * rng.normal(1, 0.2, len(frame)).clip(0.2, None)
    assert _marked(_run(frame)) == {"c=c7"}


def test_an_element_working_against_the_change_is_not_a_cause() -> None:
    ranked = _run(_kpi(4, [({"d": "d3"}, 0.5), ({"a": "a5", "c": "c2"}, 1.3)]))
    assert _marked(ranked) == {"d=d3"}
    assert ranked.set_index("label").loc["a=a5 & c=c2", "effect"] == "better"


def test_no_change_marks_nothing() -> None:
    for seed in range(5):
        assert _marked(_run(_kpi(10 + seed, []))) == set()
        assert _marked(_run(_kpi(20 + seed, [], noise=0.05))) == set()


def test_frame_without_noise_still_works() -> None:
    frame = _kpi(5, [({"c": "c2"}, 0.5)], noise=0.0)
    assert _marked(_run(frame)) == {"c=c2"}
    assert _marked(_run(frame.assign(real=frame["predict"]))) == set()


# --- rate mode -----------------------------------------------------------------------------------


def _calls(seed: int, rates: dict[str, float] | None = None, worse: dict[tuple[str, str], float] | None = None,
           grow: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Errors/calls per tenant x model x route, baseline and current; `worse` multiplies the error rate
    of calls with a value, `grow` their current volume."""
    rng = np.random.default_rng(seed)
    rates = rates or {f"t{i}": 0.01 + 0.01 * i for i in range(6)}
    rows = []
    for t, m, r in itertools.product(rates, ["m0", "m1", "m2"], ["r0", "r1", "r2", "r3"]):
        vals = {"tenant": t, "model": m, "route": r}
        rate = rates[t]
        volume = rng.uniform(100, 400)
        b_calls = rng.poisson(volume)
        c_volume = volume * np.prod([f for (d, v), f in (grow or {}).items() if vals[d] == v] or [1.0])
        c_rate = min(rate * np.prod([f for (d, v), f in (worse or {}).items() if vals[d] == v] or [1.0]), 1.0)
        c_calls = rng.poisson(c_volume)
        rows.append(vals | {"b_calls": b_calls, "b_err": rng.binomial(b_calls, rate), "c_calls": c_calls,
                            "c_err": rng.binomial(c_calls, c_rate)})  # fmt: skip
    return pd.DataFrame(rows)


def _rate(frame: pd.DataFrame, **kw) -> pd.DataFrame:
    return attribute_frame(frame, dimensions=["tenant", "model", "route"], baseline="b_err", current="c_err",
                           baseline_count="b_calls", current_count="c_calls", **kw)  # fmt: skip


def test_rate_one_tenant_got_worse_is_marked() -> None:
    ranked = _rate(_calls(0, worse={("tenant", "t2"): 4.0}))
    assert _marked(ranked) == {"tenant=t2"}
    assert ranked.iloc[0]["label"] == "tenant=t2" and ranked.iloc[0]["effect"] == "worse"


def test_rate_a_tenant_on_one_model_got_worse() -> None:
    ranked = _rate(_calls(1, worse={("tenant", "t4"): 3.0}).pipe(
        lambda f: f.assign(c_err=np.where((f["tenant"] == "t4") & (f["model"] != "m1"), (f["c_err"] / 3).round(), f["c_err"]))))
    assert _marked(ranked) == {"model=m1 & tenant=t4"} or _marked(ranked) == {"tenant=t4 & model=m1"}


def test_rate_no_change_marks_nothing() -> None:
    for seed in range(5):
        assert _marked(_rate(_calls(30 + seed))) == set()


def test_rate_simpson_mix_shift_marks_the_segment_that_grew() -> None:
    """No tenant's rate moved; the error-prone tenant got 5x the calls: the overall rate went up."""
    ranked = _rate(_calls(2, grow={("tenant", "t5"): 5.0}))
    marked = ranked[ranked["root_cause"]]
    assert list(marked["label"]) == ["tenant=t5"]
    assert marked.iloc[0]["effect"] == "mix" and (ranked.loc[ranked["root_cause"], "effect"] != "worse").all()


def test_rate_new_model_with_more_errors_is_marked() -> None:
    frame = _calls(3)
    new = frame[frame["model"] == "m0"].assign(model="m9", b_calls=0, b_err=0)
    new["c_err"] = np.random.default_rng(0).binomial(new["c_calls"], 0.15)
    ranked = _rate(pd.concat([frame[frame["model"] != "m0"], new, frame[frame["model"] == "m0"].assign(c_calls=0, c_err=0)]))
    assert _marked(ranked) == {"model=m9"}


def test_rate_a_missing_value_is_never_the_cause() -> None:
    """Model m1's calls fail (4x); its failed calls carry no fingerprint (NULL) and the others carry
    one. The calls without a fingerprint are the failures themselves, so the cause marked is the
    model, not the missing fingerprint."""
    frame = _calls(4, worse={("model", "m1"): 4.0})
    failed, served = frame.assign(fingerprint=None), frame.assign(fingerprint="fp_1")
    for side in ("b", "c"):
        served[f"{side}_calls"] = frame[f"{side}_calls"] - frame[f"{side}_err"]
        served[f"{side}_err"] = 0
        failed[f"{side}_calls"] = frame[f"{side}_err"]
    ranked = attribute_frame(pd.concat([failed, served]), dimensions=["tenant", "model", "route", "fingerprint"], baseline="b_err",
                             current="c_err", baseline_count="b_calls", current_count="c_calls")  # fmt: skip
    assert _marked(ranked) and not any("(none)" in label for label in _marked(ranked))
    assert any("model=m1" in label for label in _marked(ranked))


def _tenant_hit(seed: int, tenant: str, factors: dict[str, float], rate: float) -> pd.DataFrame:
    """`_calls`, with the tenant's current error rate set to `rate` x its route's factor."""
    frame = _calls(seed)
    rng = np.random.default_rng(seed + 100)
    hit = frame["tenant"] == tenant
    rates = np.minimum(rate * frame.loc[hit, "route"].map(factors).to_numpy(dtype=float), 1.0)
    frame.loc[hit, "c_err"] = rng.binomial(frame.loc[hit, "c_calls"].to_numpy(dtype=int), rates)
    return frame


def test_rate_a_segment_hit_unevenly_on_most_of_its_calls_is_the_one_cause() -> None:
    """Tenant t2 fails 8x more on route r0, 5x on r1, 3x on r2, not at all more on r3. The pursuit's
    common shift takes its worst routes one by one; they hold most of its calls, so the tenant is
    the cause (as RobustSpot's real CDN incidents are labelled)."""
    ranked = _rate(_tenant_hit(0, "t2", {"r0": 8.0, "r1": 5.0, "r2": 3.0, "r3": 1.0}, rate=0.03))
    assert _marked(ranked) == {"tenant=t2"}


def test_rate_a_part_that_got_worse_than_its_whole_is_no_second_cause() -> None:
    """Tenant t3 fails twice as often everywhere, and 8x on route r1: the tenant explains its route."""
    ranked = _rate(_tenant_hit(0, "t3", {"r0": 2.0, "r1": 8.0, "r2": 2.0, "r3": 2.0}, rate=0.04))
    assert _marked(ranked) == {"tenant=t3"}


def _region_hit(seed: int) -> pd.DataFrame:
    """Errors/calls per tenant x model x route x region; tenant t2 on model m1 fails 10x more on route
    r0 in the east only and 6x more on route r1 everywhere."""
    rng = np.random.default_rng(seed)
    rows = []
    for t, m, r, g in itertools.product([f"t{i}" for i in range(6)], ["m0", "m1", "m2"], ["r0", "r1", "r2", "r3"], ["east", "west"]):
        rate, volume = 0.01 + 0.005 * int(t[1]), rng.uniform(100, 400)
        factor = {"r0": 10.0 if g == "east" else 1.0, "r1": 6.0}.get(r, 1.0) if (t, m) == ("t2", "m1") else 1.0
        b_calls, c_calls = rng.poisson(volume), rng.poisson(volume)
        rows.append({"tenant": t, "model": m, "route": r, "region": g, "b_calls": b_calls, "b_err": rng.binomial(b_calls, rate),
                     "c_calls": c_calls, "c_err": rng.binomial(c_calls, min(rate * factor, 1.0))})  # fmt: skip
    return pd.DataFrame(rows)


def test_rate_a_part_refined_past_three_dimensions_still_gives_way_to_its_segment() -> None:
    """The pursuit takes t2 & m1's two worst routes; inside route r0 only the east moved, so that pick
    goes one dimension deeper. The segment is still judged against its parts as they stood at three
    dimensions, which hold half its calls: the segment is the cause, not a four-dimensional part."""
    for seed in (3, 4):
        ranked = attribute_frame(_region_hit(seed), dimensions=["tenant", "model", "route", "region"], baseline="b_err",
                                 current="c_err", baseline_count="b_calls", current_count="c_calls")  # fmt: skip
        assert _marked(ranked) == {"tenant=t2 & model=m1"}


def test_rate_one_part_of_a_segment_stays_the_cause_not_the_segment() -> None:
    """Tenant t4 fails 6x more on route r0 only; nothing else moved: one part, the pair is the cause."""
    marked = _marked(_rate(_tenant_hit(0, "t4", {"r0": 6.0, "r1": 1.0, "r2": 1.0, "r3": 1.0}, rate=0.05)))
    assert marked in ({"tenant=t4 & route=r0"}, {"route=r0 & tenant=t4"})


def _provider_storm(seed: int, models: dict[str, tuple[str, float, float]]) -> pd.DataFrame:
    """429s/calls per tenant x route x model, each model with its provider, volume per leaf and
    current 429 rate (0.3% before, for every model)."""
    rng = np.random.default_rng(seed)
    rows = []
    for tenant, route, (model, (provider, volume, rate)) in itertools.product([f"t{i}" for i in range(8)], ["r0", "r1", "r2"], models.items()):
        b_calls, c_calls = rng.poisson(volume), rng.poisson(volume)
        rows.append({"tenant": tenant, "route": route, "provider": provider, "model": model, "b_calls": b_calls,
                     "b_err": rng.binomial(b_calls, 0.003), "c_calls": c_calls, "c_err": rng.binomial(c_calls, rate)})  # fmt: skip
    return pd.DataFrame(rows)


def test_rate_a_providers_storm_heavier_on_one_of_its_models_is_the_providers() -> None:
    """A provider rate-limits its big model's calls 20% of the time and its small model's 6%. The
    pursuit takes the big model first, then the rest of the provider's calls (by the provider's
    name or the small model's, whichever dimension comes first): together every call of the
    provider, so the provider is the cause. Where the provider also serves a bigger model the
    storm spared, its two models stay the causes."""
    models = {"sonnet": ("anthropic", 60, 0.20), "haiku": ("anthropic", 20, 0.06), "gpt": ("openai", 80, 0.003), "mini": ("openai", 40, 0.003)}
    spared = models | {"opus": ("anthropic", 180, 0.003)}
    for seed, dims in itertools.product((0, 1, 2), (["tenant", "route", "provider", "model"], ["tenant", "route", "model", "provider"])):
        ranked = attribute_frame(_provider_storm(seed, models), dimensions=dims, baseline="b_err", current="c_err",
                                 baseline_count="b_calls", current_count="c_calls")  # fmt: skip
        assert _marked(ranked) == {"provider=anthropic"}
        ranked = attribute_frame(_provider_storm(seed, spared), dimensions=dims, baseline="b_err", current="c_err",
                                 baseline_count="b_calls", current_count="c_calls")  # fmt: skip
        assert _marked(ranked) == {"model=sonnet", "model=haiku"}


def test_rate_causes_inside_a_value_every_call_has_do_not_give_way_to_it() -> None:
    """Routes r0 and r1 fail 6x and 3x more; every call runs on the one service version there is.
    The two routes hold half the calls, yet the version is the scope, not a cause they lie inside."""
    frame = _calls(5, worse={("route", "r0"): 6.0, ("route", "r1"): 3.0}).assign(version="1.4.0")
    ranked = attribute_frame(frame, dimensions=["tenant", "model", "route", "version"], baseline="b_err", current="c_err",
                             baseline_count="b_calls", current_count="c_calls")  # fmt: skip
    assert _marked(ranked) == {"route=r0", "route=r1"}


def _score_mix(seed: int) -> pd.DataFrame:
    """Judge scores (0..1, per-call sd 0.2) per tenant and model: tenant `weak` always scores 0.18
    lower and its share of traffic grows from 5% to 30%; no leaf's mean moves."""
    rng = np.random.default_rng(seed)
    tenants = {f"t{i}": 0.95 / 9 for i in range(9)} | {"weak": 0.05}
    rows = []
    for (tenant, share), model in itertools.product(tenants.items(), ["m0", "m1", "m2"]):
        mean = 0.8 - (0.18 if tenant == "weak" else 0.0)
        now = 0.30 if tenant == "weak" else share * 0.70 / 0.95
        b_calls, c_calls = round(1000 * share / 3), round(1000 * now / 3)
        rows.append({"tenant": tenant, "model": model, "b_calls": b_calls, "c_calls": c_calls,
                     "b_sum": rng.normal(mean, 0.2, b_calls).sum(), "c_sum": rng.normal(mean, 0.2, c_calls).sum()})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_mean_of_scores_is_judged_on_its_own_spread_so_a_grown_tenant_is_the_cause() -> None:
    """0/1 values would vary by sqrt(p(1-p)) = 0.4 per call; these scores vary by 0.2, so the
    drop the tenant's growth carries is well beyond noise and the tenant is marked."""
    ranked = attribute_frame(_score_mix(5), dimensions=["tenant", "model"], baseline="b_sum", current="c_sum",
                             baseline_count="b_calls", current_count="c_calls", spread=0.2)  # fmt: skip
    assert _marked(ranked) == {"tenant=weak"} and ranked.iloc[0]["effect"] == "mix"


def _thin_baseline_mix(seed: int) -> pd.DataFrame:
    """As `_score_mix`, but the weak tenant had 2% of the baseline (six calls per model), and those
    few happened to score 0.08 below its usual: its calls now look better than that thin baseline,
    while its growth to a third of the traffic carries the whole drop."""
    rng = np.random.default_rng(seed)
    rows = []
    for tenant, model in itertools.product([*(f"t{i}" for i in range(9)), "weak"], ["m0", "m1", "m2"]):
        weak = tenant == "weak"
        mean, b_calls, c_calls = (0.62, 6, 40) if weak else (0.8, 33, 9)
        b_sum = b_calls * (mean - 0.08) if weak else rng.normal(mean, 0.2, b_calls).sum()
        rows.append({"tenant": tenant, "model": model, "b_calls": b_calls, "c_calls": c_calls, "b_sum": b_sum,
                     "c_sum": rng.normal(mean, 0.2, c_calls).sum()})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_grown_tenant_with_a_thin_unlucky_baseline_is_still_the_cause() -> None:
    """Its within part (now against that thin baseline) and its mix part (its growth) use the same
    baseline rate, so the baseline's noise cancels between them and the share is the drop's."""
    for seed in range(3):
        ranked = attribute_frame(_thin_baseline_mix(seed), dimensions=["tenant", "model"], baseline="b_sum", current="c_sum",
                                 baseline_count="b_calls", current_count="c_calls", spread=0.2)  # fmt: skip
        top = ranked.iloc[0]
        assert top["label"] == "tenant=weak" and top["root_cause"] and top["effect"] == "mix", ranked.head(3)
        assert 0.5 < top["explained_share"] <= 1.5


def _deploy_shifting_confidence(seed: int) -> pd.DataFrame:
    """A deploy (v2 replaces v1) whose transcripts come out with lower confidence: medium-confidence
    calls (which score 0.13 lower) grow from 13% to 47% of the traffic, and every call of the deploy
    scores 0.08 lower besides."""
    rng = np.random.default_rng(seed)
    rows = []
    for version, conf, tenant in itertools.product(["v1", "v2"], ["high", "medium"], ["a", "b", "c"]):
        share = {"v1": {"high": 0.87, "medium": 0.13}, "v2": {"high": 0.53, "medium": 0.47}}[version][conf]
        mean = (0.80 if conf == "high" else 0.67) - (0.08 if version == "v2" else 0.0)
        calls = round(600 * share / 3)
        b_calls, c_calls = (calls, 0) if version == "v1" else (0, calls)
        rows.append({"version": version, "conf": conf, "tenant": tenant, "b_calls": b_calls, "c_calls": c_calls,
                     "b_sum": rng.normal(mean, 0.2, b_calls).sum(), "c_sum": rng.normal(mean, 0.2, c_calls).sum()})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_deploy_whose_calls_got_worse_leaves_no_shift_of_traffic_to_mark() -> None:
    """Where the pursuit marks nothing (here: a penalty nothing pays), a segment whose share moved
    is marked only if no segment's own calls got worse by half the change. The medium-confidence
    calls grew, but the deploy's calls are worse than calls like them were: the growth is its doing."""
    for seed in range(3):
        frame = _deploy_shifting_confidence(seed)
        ranked = attribute_frame(frame, dimensions=["version", "conf", "tenant"], baseline="b_sum", current="c_sum",
                                 baseline_count="b_calls", current_count="c_calls", spread=0.2, penalty=1e9)  # fmt: skip
        assert _marked(ranked) == set(), ranked.head(3)
        assert ranked.loc[ranked["label"] == "version=v2", "within_share"].item() >= 0.5

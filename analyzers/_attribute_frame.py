"""Attribution over a frame of leaf aggregates: which values and combinations explain a change,
and which set of them is its root cause. Pure arithmetic on a small DataFrame (the store's one
GROUP BY query, `_attribute.fetch_leaves`, or any multi-dimensional KPI such as RiskLoc/Squeeze data).

For a rate R = sum(num) / sum(den) going from R_b (baseline) to R_c (current), a candidate
(a value, or a pair of values) gets two parts, in units of the change R_c - R_b:
- *within* — its calls got worse: sum over its leaves l of w_c,l * (r_c,l - r~_b,l), where w_c
  are current call shares and r~_b,l the leaf's expected baseline rate (hierarchically shrunk,
  see `_counterfactual`). A leaf carrying a value the baseline never saw (a new response
  model) is compared with what calls with its other values did before the value came.
- *mix* — it merely grew or shrank: (w_c - w_b) * (r~_b - R_b) with its own call shares and
  the expected baseline rate its within part used (`_expected_rate`): the two parts then add up
  to what its calls did, and a thin baseline's noise, which a share that moves a lot would
  multiply, cancels between them instead of ruling the share. A value that is new (`is_new`)
  or looked average before has no mix part, so a version that replaced every call is not
  blamed for a shift of traffic between tenants.
Within parts add up to the total within change over the values of any dimension; with the
mix parts, the values of one dimension explain about all of R_c - R_b (Simpson's paradox: a
segment can explain the drop while no segment got worse). Candidates are ranked
by share^1.5 / coverage^0.5 — the share they explain, favouring the ones that explain it with
fewer calls (coverage = mean of baseline and current call share) — so a value that carries the
damage beats both the broader slices that merely contain it and the narrower ones inside it.

The boolean `root_cause` column marks the SET of candidates that together explain the change, found by
a greedy pursuit over standardized leaf deviations that trades explanatory power for succinctness:

- each leaf has a deviation y (additive: relative change 2(c-b)/(|c|+|b|); rate: current rate minus
  its expected baseline rate) with precision w (1; calls, discounted by baseline support), in units
  of a robust noise scale s (MAD over leaves; for rates at least sqrt(p(1-p)) per call);
- a candidate claims "all my leaves moved by one common shift" (the ripple effect Squeeze/HotSpot
  rely on); its gain is the drop in chi-square when that shift is fitted, (sum w y)^2 / (s^2 sum w),
  one bincount per cuboid. A broader slice is diluted by the leaves it does not move, a narrower one
  misses leaves, so the exact element gains most;
- take the best gain net of its cost, penalty x (1 + 0.5 per extra dimension), penalty = 2 ln(#
  candidates) + 6 (above the chance maximum of noise gains); remove its leaves from the search (as
  RiskLoc does: no sub-causes of an explained element); repeat until nothing pays for itself;
- triples are only searched inside the best pairs that pay for themselves (no combinatorial blow-up),
  and once the pursuit stops, inside each pick: with the other picks' leaves out, a candidate one
  dimension deeper that pays more replaces it (a pair taken early for a triple, with leaves of a
  whole value found later), and deeper again, past three dimensions only where the pick's other
  leaves did not move (one leaf of four or five dimensions, as RiskLoc's S and L sets place them);
- the chosen set is then made succinct: an element inside another chosen one gives way to it (a
  part that moved most was taken before its whole), and two or more inside one candidate that
  hold most of its volume give way to that candidate (a cause that hit a segment unevenly is the
  segment: real incidents, RobustSpot's among them, are rarely the one common shift fitted; a
  part refined past three dimensions counts as it stood at three); inside by calls, not only by
  name (a model is inside its provider);
- a candidate holding a missing value (NONE) is never chosen: it says who the calls are (failed
  calls have no fingerprint), not what changed; and for a 0/1 rate a dimension missing on (nearly)
  the extra bad calls is left out altogether (`_outcome_free`);
- marked are the chosen elements pushing in the direction the chosen set pushes as a whole; for a
  rate, if they explain under half of a significant change, the segment whose shift of traffic
  (mix, Simpson) explains it is marked. Root-cause rows are sorted first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NONE", "attribute_frame", "holds_missing", "is_new"]

NONE = "(none)"
"""How a missing dimension value (NULL) is labelled."""
PRIOR_CALLS = 5.0
"""Pseudo-calls shrinking a leaf's baseline rate towards the overall baseline rate."""
NEW_RATIO = 0.01
"""Baseline share under this fraction of the current share makes a value count as new."""
PAIR_FACTOR = 0.9
"""Per dimension beyond the first: a pair ranks below a single value that explains the same thing."""
MAX_CAUSES = 20
"""Upper bound on the size of the root-cause set (the pursuit usually stops far earlier)."""
MIN_LEAVES_FOR_NOISE = 20
"""Rates: with fewer leaves with calls, noise is the per-call bound sqrt(p(1-p)), not measured."""
MIN_SHIFT = 0.2
"""Additive KPIs: the least common shift a cause's leaves must show, in units of one leaf's noise s.
Over thousands of leaves a tiny shift they all share (a forecast off by a few percent for every leaf
of a value) pays for itself as surely as a real cause; Squeeze and RiskLoc likewise set small
deviations aside. Rates weigh each leaf by its calls instead, and have no such floor."""
UP_FRONT_ORDER = 3
"""Dimensions searched over all candidates by default (triples inside the best pairs); deeper ones
only inside the chosen causes, so the search never grows combinatorially."""
PROMISING_PAIRS = 40
"""3-dimensional candidates are searched only inside this many best-paying pairs."""
OUTCOME_SHARE = 0.9
"""A dimension missing on this share of a 0/1 rate's extra bad calls is left out (`_outcome_free`)."""
GENERAL_SHARE = 0.5
"""Elements inside one candidate give way to it (`_generalized`) only if it explains at least this
fraction of what they explain together: the rest of it did not undo them."""
MIX_MIN = 0.2
"""Rates: smallest mix share of a segment marked as the cause of a shift of traffic."""


def attribute_frame(frame: pd.DataFrame, *, dimensions: Sequence[str], baseline: str, current: str,
                    baseline_count: str | None = None, current_count: str | None = None, max_order: int | None = None,
                    min_count: float = 0, penalty: float | None = None, min_share: float = 0.0,
                    spread: float | None = None) -> pd.DataFrame:  # fmt: skip
    """Rank the dimension values and combinations that explain the change between two sets of leaves,
    and mark the set of them that together explain it (`root_cause`).

    As driftline's attribute_frame (additive KPI without counts, rate with counts; columns
    dimensions, values, label, explained_share, within_share, mix_share, effect, baseline_value,
    current_value, baseline_count, current_count, coverage, score), plus a boolean `root_cause`;
    root-cause rows come first. Candidates: every value, pair and triple (triples inside pairs that
    pay for themselves in the pursuit), and by default (`max_order` None) deeper ones inside the
    chosen causes where the data needs them; `max_order` k caps every candidate at k dimensions.
    `penalty` (cost of one more root cause, in chi-square units; default 2 ln(#candidates) + 6) and
    `min_share` (smallest |explained_share| a root cause may have) tune the stopping rule, see the
    module doc. `spread` is a rate's per-call standard deviation when its values are not 0 or 1 (a
    mean of scores, of costs); by default sqrt(p(1-p)), exact for 0/1 values.
    """
    import pandas as pd

    dims = list(dimensions)
    if not dims:
        raise ValueError("attribute_frame needs at least one dimension")
    missing = [c for c in [*dims, baseline, current, baseline_count, current_count] if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in the frame: {', '.join(missing)}")
    if (baseline_count is None) != (current_count is None):
        raise ValueError("give both baseline_count and current_count (a rate), or neither (an additive KPI)")
    if baseline_count is not None and current_count is not None and spread is None:
        dims = _outcome_free(frame, dims, (baseline, baseline_count, current, current_count))
    leaves = _leaf_parts(frame, dims, baseline, current, baseline_count, current_count, spread)
    total = leaves.change
    y, w, s = _deviations(leaves)
    searched = UP_FRONT_ORDER if max_order is None else max_order
    low = [g for order in range(1, min(searched, 2) + 1) for g in itertools.combinations(dims, order)]
    cubes = [_Cuboid.of(leaves, g, None, min_count) for g in low]
    n_cand = sum(c.n for c in cubes)
    pen = penalty if penalty is not None else 2.0 * math.log(max(n_cand, 2) * (len(dims) if searched >= 3 else 1)) + 6.0
    if searched >= 3 and len(dims) >= 3:
        cubes += _deep_cuboids(leaves, cubes, y, w, s, pen, dims, searched, min_count)
    deepest = len(dims) if max_order is None else max_order
    picks, shallow = _pursue(cubes, y, w, s, pen, deeper=lambda c, g: _inside(leaves, c, g, dims, deepest, min_count), searched=searched)
    cubes += [c for c, _ in picks + shallow if not any(c is known for known in cubes)]  # found inside a pick
    parts = [_candidates(c, total, min_count) for c in cubes]
    out = pd.DataFrame({c: list(itertools.chain.from_iterable(p[c] for p in parts)) if c in _OBJECT_COLUMNS
                        else np.concatenate([p[c] for p in parts]) for c in parts[0]}).drop_duplicates("label")  # fmt: skip
    # made succinct as they stood at `searched` dimensions (their deeper parts hold less of a segment
    # they may give way to), then each that stays is the deeper cause found inside it
    chosen, found = ([(c.dims, c.labels([g])[0]) for c, g in ps] for ps in (shallow, picks))
    deeper_cause = {frozenset(zip(*a)): frozenset(zip(*b)) for a, b in zip(chosen, found)}
    within = {frozenset(zip(*e)): frozenset(zip(*e)) | _implied(leaves, c.members(g)) for e, (c, g) in zip(chosen, shallow)}
    picked = {deeper_cause.get(e, e) for e in _generalized(out, _outermost(chosen, within), dims, within)}
    out["root_cause"] = out["label"].isin([_label(p, dims) for p in picked])
    # only causes that push in the direction the causes push together (that of the change, unless
    # the change is mostly noise or drift elsewhere), and explain a visible part of it
    share = out["explained_share"]
    share = share * (np.sign(float(share[out["root_cause"]].sum())) or 1.0)
    out["root_cause"] &= (share > 0) & (share.abs() >= min_share)
    if leaves.rate:
        _mark_mix(out, leaves)
    out = out.sort_values(["root_cause", "score", "explained_share"], ascending=False, kind="stable")
    return out[~_aliases(out)].reset_index(drop=True)


_OBJECT_COLUMNS = ("dimensions", "values", "label", "effect")
_Element = tuple[tuple[str, ...], tuple[Any, ...]]
"""A candidate as the pursuit names it: its dimensions and their values."""
_Pairs = frozenset[tuple[str, Any]]
"""A candidate as a set of (dimension, value) pairs, which containment compares."""


def holds_missing(ranked: pd.DataFrame) -> pd.Series:
    """Per candidate: whether one of its values is missing (NONE). Such a segment says who the calls
    are (failed calls have no fingerprint), not what changed: never a cause, nor a suspect."""
    return ranked["values"].map(lambda vs: NONE in vs).astype(bool)


def _aliases(ranked: pd.DataFrame) -> pd.Series:
    """Combinations with exactly the volumes and share of a candidate ranked above them: they say
    nothing that candidate does not. Single values and root causes are always kept."""
    import pandas as pd

    keys = pd.DataFrame({"b": ranked["baseline_count"].to_numpy(dtype=float).round(6), "c": ranked["current_count"].to_numpy(dtype=float).round(6),
                         "share": ranked["explained_share"].to_numpy(dtype=float).round(9)}, index=ranked.index)  # fmt: skip
    return keys.duplicated() & (ranked["dimensions"].map(len) > 1) & ~ranked["root_cause"].astype(bool)


def _outcome_free(frame: pd.DataFrame, dims: list[str], columns: tuple[str, str, str, str]) -> list[str]:
    """The dimensions but those missing (NONE) on OUTCOME_SHARE of a 0/1 rate's extra bad calls
    (those over the baseline rate), as the fingerprint of a failed call. No value of such a
    dimension can hold the cause, and where its missing value marks the outcome, leaves split by
    it are split by the outcome itself: every real cause would look like a mix of its failed and
    its served calls. That holds even where another provider's served calls carry no fingerprint
    either (there, a version new since the baseline, with no calls to split, looked the narrower
    cause of a provider's 429s than the provider). Counting only the extra bad calls keeps a
    dimension most calls lack when the new ones carry it (a snapshot's fingerprint among slow
    calls of providers that send none)."""
    b_bad, b_calls, c_bad, c_calls = (np.nan_to_num(frame[c].to_numpy(dtype=float)) for c in columns)
    excess = c_bad - c_calls * (b_bad.sum() / b_calls.sum() if b_calls.sum() > 0 else 0.0)
    if excess.sum() <= 0:
        return dims
    kept = [d for d in dims if excess[frame[d].isna().to_numpy() | frame[d].eq(NONE).fillna(False).to_numpy(dtype=bool)].sum()
            < OUTCOME_SHARE * excess.sum()]  # fmt: skip
    return kept or dims  # calls that carry nothing but their outcome: nothing better to split them by


@dataclass
class _Leaves:
    """Leaf arrays: dimension codes and labels, volumes, sums, and within/mix parts of the change."""

    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    rate: bool
    rate_b: float = 0.0
    spread: float = 0.0
    """A rate's per-call standard deviation (noise floor of its deviations, scale of its mix test)."""
    expected: np.ndarray | None = field(default=None)
    novel: np.ndarray | None = field(default=None)

    @property
    def change(self) -> float:
        """The total change: additive KPI sum(current - baseline), or R_c - R_b for a rate."""
        b, c = self.sums["b_den"].sum(), self.sums["c_den"].sum()
        if not self.rate:
            return float(self.sums["c_num"].sum() - self.sums["b_num"].sum())
        return float(self.sums["c_num"].sum() / c - self.sums["b_num"].sum() / b)

    def subset(self, rows: np.ndarray) -> _Leaves:
        return _Leaves({d: c[rows] for d, c in self.codes.items()}, self.labels,
                       {k: v[rows] for k, v in self.sums.items()}, self.rate, self.rate_b, self.spread)  # fmt: skip


def _present(array: np.ndarray | None) -> np.ndarray:
    """A rate's leaf array (`expected`, `novel`): always set when counts were given."""
    if array is None:
        raise ValueError("a rate's leaves have no baseline expectation")
    return array


def _leaf_parts(frame: pd.DataFrame, dims: list[str], baseline: str, current: str,
                baseline_count: str | None, current_count: str | None, spread: float | None) -> _Leaves:  # fmt: skip
    """Per leaf: volumes, sums, and its within and mix parts of the total change."""
    b_num, c_num = (frame[c].to_numpy(dtype=float, na_value=0.0) for c in (baseline, current))  # a missing sum adds nothing
    if baseline_count is None:
        b_den, c_den = np.abs(b_num), np.abs(c_num)
    else:
        b_den, c_den = (frame[c].to_numpy(dtype=float, na_value=0.0) for c in (baseline_count, current_count))
    codes, labels, sums = _grouped(frame, dims, {"b_num": b_num, "c_num": c_num, "b_den": b_den, "c_den": c_den})
    b_total, c_total = sums["b_den"].sum(), sums["c_den"].sum()
    sums["b_share"] = sums["b_den"] / b_total if b_total > 0 else np.zeros(len(sums["b_den"]))
    sums["c_share"] = sums["c_den"] / c_total if c_total > 0 else np.zeros(len(sums["b_den"]))
    expected = novel = None
    if baseline_count is None:
        sums["within"] = sums["c_num"] - sums["b_num"]
    else:
        if b_total <= 0 or c_total <= 0:
            raise ValueError("a rate needs counts in both the baseline and the current leaves")
        rate_b = sums["b_num"].sum() / b_total
        expected = _counterfactual(codes, sums, rate_b)
        novel = np.logical_or.reduce([_is_new(codes[d], sums) for d in dims])
        sums["within"] = (sums["c_num"] - sums["c_den"] * expected) / c_total
        sums["c_expected"], sums["b_expected"] = sums["c_den"] * expected, sums["b_den"] * expected
    rate_b = sums["b_num"].sum() / max(b_total, 1e-12)
    p = (sums["c_num"].sum() + sums["b_num"].sum()) / max(b_total + c_total, 1e-12)
    if spread is None:  # 0/1 values: the binomial spread; else, crudely, that of the leaves' current rates
        spread = math.sqrt(p * (1 - p)) if 0 < p < 1 else float(np.std(sums["c_num"] / np.maximum(sums["c_den"], 1e-12)))
    return _Leaves(codes, labels, sums, baseline_count is not None, rate_b, max(spread, 1e-12), expected, novel)


def _grouped(frame: pd.DataFrame, dims: list[str], columns: dict[str, np.ndarray]
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:  # fmt: skip
    """The rows summed per combination of dimension values, read as strings (a missing one as NONE),
    in order of first appearance: per dimension the leaves' codes and the values they stand for, and
    the summed columns. Integer codes, not pandas' groupby over strings, which cost most of an
    attribution's own time on thousands of leaves."""
    import pandas as pd

    raw, names = {}, {}
    for d in dims:
        found, values = pd.factorize(frame[d], sort=False)  # -1 where missing: the last name, NONE
        raw[d], names[d] = pd.factorize(np.array([*map(str, values), NONE], dtype=object)[found], sort=False)
    _, first, inverse = np.unique(_key(raw, dims), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    inverse, first = rank[inverse], np.sort(first)
    codes, labels = {}, {}
    for d in dims:
        codes[d], seen = pd.factorize(raw[d][first], sort=False)
        labels[d] = np.asarray(names[d], dtype=object)[seen]
    return codes, labels, {c: np.bincount(inverse, weights=v, minlength=len(first)) for c, v in columns.items()}


def _counterfactual(codes: dict[str, np.ndarray], sums: dict[str, np.ndarray], rate_b: float) -> np.ndarray:
    """Each leaf's expected baseline rate, by hierarchical shrinkage (unchanged from driftline)."""
    dims = sorted(codes, key=lambda d: -_baseline_spread(codes[d], sums, rate_b))
    novel = np.column_stack([_is_new(codes[d], sums) for d in dims])
    patterns = [(np.array(p), (novel == np.array(p)).all(axis=1)) for p in {tuple(row) for row in novel}]
    estimate = np.full(len(sums["b_den"]), rate_b)
    for depth in range(1, len(dims) + 1):
        refined = estimate.copy()
        for pattern, rows in patterns:
            kept = [d for d, is_new in zip(dims[:depth], pattern) if not is_new]
            if not kept:
                continue
            _, inverse = np.unique(_key(codes, kept), return_inverse=True)
            num, den = np.bincount(inverse, weights=sums["b_num"]), np.bincount(inverse, weights=sums["b_den"])
            cell = inverse[rows]
            refined[rows] = (num[cell] + PRIOR_CALLS * estimate[rows]) / (den[cell] + PRIOR_CALLS)
        estimate = refined
    return estimate


def _is_new(codes: np.ndarray, sums: dict[str, np.ndarray]) -> np.ndarray:
    """Per leaf: does its value of this dimension count as new (see `is_new`)?"""
    b_share, c_share = (np.bincount(codes, weights=sums[c]) for c in ("b_share", "c_share"))
    return is_new(b_share, c_share)[codes]


def is_new(b_share: np.ndarray, c_share: np.ndarray) -> np.ndarray:
    """A value is new when its baseline share is under NEW_RATIO of its current share."""
    return b_share < NEW_RATIO * c_share


def _baseline_spread(codes: np.ndarray, sums: dict[str, np.ndarray], rate_b: float) -> float:
    """How much a dimension's values differ in the baseline: sum of count * (rate - R_b)^2."""
    num, den = np.bincount(codes, weights=sums["b_num"]), np.bincount(codes, weights=sums["b_den"])
    seen = den > 0
    return float((den[seen] * (num[seen] / den[seen] - rate_b) ** 2).sum())


def _key(codes: dict[str, np.ndarray], dims: Sequence[str]) -> np.ndarray:
    """One int64 key per leaf for the combination of `dims` values."""
    key = np.zeros(len(codes[dims[0]]), dtype=np.int64)
    for d in dims:
        key = key * (int(codes[d].max(initial=0)) + 1) + codes[d]
    return key


def _candidates(cube: _Cuboid, total: float, min_count: float) -> dict[str, Any]:
    """The candidates of one dimension (or combination) with `min_count` current calls or more, as
    columns: shares, effect and score. The thin ones are dropped before their labels are built
    (most of a deep cuboid's are thin: their strings cost more than ranking them).

    The cuboid's leaves may be a subset of all leaves as long as it holds every leaf of each group
    in it (volume shares and within parts are those of the whole frame)."""
    leaves, dims, n = cube.leaves, cube.dims, cube.n
    rate = leaves.rate
    g = {name: np.bincount(cube.inverse, weights=col, minlength=n) for name, col in leaves.sums.items()}
    scale = total if total != 0 else math.nan
    rate_b = leaves.rate_b
    own_rate = _expected_rate(g) if rate else rate_b
    within = g["within"] / scale
    grew = (g["c_share"] - g["b_share"]) * (own_rate - rate_b) / scale if rate else np.zeros(n)
    mix = np.where(is_new(g["b_share"], g["c_share"]), 0.0, grew)
    share = within + mix
    coverage = np.clip((g["b_share"] + g["c_share"]) / 2, 1e-12, None)
    score = np.nan_to_num(np.clip(share, 0, None) ** 1.5 / coverage**0.5) * PAIR_FACTOR ** (len(dims) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_value = g["b_num"] / np.where(g["b_den"] > 0, g["b_den"], np.nan) if rate else g["b_num"]
        c_value = g["c_num"] / np.where(g["c_den"] > 0, g["c_den"], np.nan) if rate else g["c_num"]
    kept = np.flatnonzero(g["c_den"] >= min_count)
    values = cube.labels(kept)
    return {
        "dimensions": [dims] * len(kept), "values": values,
        "label": [_label(zip(dims, vs)) for vs in values],
        "explained_share": share[kept], "within_share": within[kept], "mix_share": mix[kept],
        "effect": np.where(share <= 0, "better", np.where(within >= mix, "worse", "mix"))[kept],
        "baseline_value": b_value[kept], "current_value": c_value[kept], "baseline_count": g["b_den"][kept],
        "current_count": g["c_den"][kept], "coverage": coverage[kept], "score": score[kept],
    }  # fmt: skip


def _expected_rate(g: dict[str, np.ndarray]) -> np.ndarray:
    """Per candidate: the baseline rate its within part compares its calls with (the leaves'
    expected rates, weighted by current calls; by baseline calls where it has none now). The mix
    part uses the same rate, so the two add up to what the candidate's calls did: a thin, noisy
    baseline moves one part as much as the other, and the explained share stays put."""
    with np.errstate(divide="ignore", invalid="ignore"):
        now, before = g["c_expected"] / g["c_den"], g["b_expected"] / g["b_den"]
    return np.nan_to_num(np.where(g["c_den"] > 0, now, before))


# --- the root-cause set -----------------------------------------------------------------------


def _deviations(leaves: _Leaves) -> tuple[np.ndarray, np.ndarray, float]:
    """Per leaf: deviation y, precision w (0: no evidence), and the noise scale s of y * sqrt(w)."""
    sm = leaves.sums
    if not leaves.rate:
        mag = np.abs(sm["b_num"]) + np.abs(sm["c_num"])
        w = (mag > 0).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(mag > 0, 2 * (sm["c_num"] - sm["b_num"]) / mag, 0.0)
        floor = 1e-3
    else:
        n_c, n_b = sm["c_den"], sm["b_den"]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(n_c > 0, sm["c_num"] / n_c - _present(leaves.expected), 0.0)
        support = np.where(_present(leaves.novel), np.inf, n_b + PRIOR_CALLS)  # a new value is judged against well-measured cells
        w = np.where(n_c > 0, 1.0 / (1.0 / np.maximum(n_c, 1e-12) + 1.0 / support), 0.0)
        floor = leaves.spread
    z = (y * np.sqrt(w))[w > 0]
    if leaves.rate and len(z) < MIN_LEAVES_FOR_NOISE:
        return y, w, floor  # too few leaves to measure the spread: trust the per-call bound
    mad = 1.4826 * float(np.median(np.abs(z - np.median(z)))) if len(z) else 0.0
    return y, w, max(mad, floor)


@dataclass
class _Cuboid:
    """One dimension combination for the pursuit: its leaves (all, or those of promising parents),
    group index per leaf, and which groups are eligible (min_count)."""

    dims: tuple[str, ...]
    leaves: _Leaves
    rows: np.ndarray | None
    inverse: np.ndarray
    n: int
    eligible: np.ndarray
    first: np.ndarray
    """Per group: one of its leaves (in `leaves`), whose codes name the group's values."""

    @classmethod
    def of(cls, leaves: _Leaves, dims: tuple[str, ...], rows: np.ndarray | None, min_count: float) -> _Cuboid:
        sub = leaves if rows is None else leaves.subset(rows)
        _, first, inverse = np.unique(_key(sub.codes, dims), return_index=True, return_inverse=True)
        n = len(first)
        # a missing value says who the calls are (failed calls have no fingerprint), not what changed
        missing = np.logical_or.reduce([(sub.labels[d] == NONE)[sub.codes[d][first]] for d in dims])
        eligible = (np.bincount(inverse, weights=sub.sums["c_den"], minlength=n) >= min_count) & ~missing
        return cls(dims, sub, rows, inverse, n, eligible, first)

    def labels(self, groups: Sequence[int] | np.ndarray) -> list[tuple[Any, ...]]:
        """The values of these groups, one tuple each (built only for the groups shown: a deep
        cuboid's are many)."""
        first = self.first[np.asarray(groups, dtype=int)]
        return list(zip(*(self.leaves.labels[d][self.leaves.codes[d][first]] for d in self.dims)))

    def gains(self, r: np.ndarray, prec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per group: fitted shift and chi-square gain of fitting it (none for an additive KPI's
        shift under MIN_SHIFT)."""
        if self.rows is not None:
            r, prec = r[self.rows], prec[self.rows]
        p = np.bincount(self.inverse, weights=prec, minlength=self.n)
        q = np.bincount(self.inverse, weights=prec * r, minlength=self.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(p > 0, q / p, 0.0)
            gain = np.where((p > 0) & self.eligible, q * shift, 0.0)
            if not self.leaves.rate:  # every leaf in the search weighs 1 / s^2, so shift * sqrt(p / leaves) is shift / s
                searched = np.bincount(self.inverse, weights=prec > 0, minlength=self.n)
                gain = np.where(np.abs(shift) * np.sqrt(p / np.maximum(searched, 1)) >= MIN_SHIFT, gain, 0.0)
        return shift, gain

    def members(self, group: int) -> np.ndarray:
        hit = np.flatnonzero(self.inverse == group)
        return hit if self.rows is None else self.rows[hit]


def _deep_cuboids(leaves: _Leaves, cubes: list[_Cuboid], y: np.ndarray, w: np.ndarray, s: float, pen: float,
                  dims: list[str], max_order: int, min_count: float) -> list[_Cuboid]:  # fmt: skip
    """Triples (and deeper, up to max_order), only inside pairs that pay for themselves."""
    prec = w / s**2
    scored = []
    for c in cubes:
        if len(c.dims) != 2:
            continue
        _, gain = c.gains(y, prec)
        for g in np.flatnonzero(gain > _cost(c, pen)):
            scored.append((gain[g], c, g))
    scored.sort(key=lambda t: -t[0])
    promising = scored[:PROMISING_PAIRS]
    out = []
    for order in range(3, max_order + 1):
        for combo in itertools.combinations(dims, order):
            rows = [c.members(int(g)) for _, c, g in promising if set(c.dims) <= set(combo)]
            if rows:
                out.append(_Cuboid.of(leaves, combo, np.unique(np.concatenate(rows)), min_count))
    return out


def _pursue(cubes: list[_Cuboid], y: np.ndarray, w: np.ndarray, s: float, pen: float, deeper: Callable[[_Cuboid, int], list[_Cuboid]],
            searched: int) -> tuple[list[tuple[_Cuboid, int]], list[tuple[_Cuboid, int]]]:  # fmt: skip
    """Greedy: take the candidate whose fitted shift lowers the chi-square most beyond its cost, take
    its leaves out of the search (explained: no sub-causes inside it, no parent scoring on its
    leaves), repeat until no candidate pays for itself. Then, with the other picks' leaves out,
    a candidate one dimension deeper inside a pick (`deeper`) that pays more replaces it: a pick
    taken early may have held the leaves of a cause taken after it (a pair holding a triple and
    part of a whole value found later), and the triples searched up front lie inside the pairs
    that paid most before anything was explained. Deeper than the `searched` order, which nothing
    up front competed with, it replaces the pick only if the pick's other leaves did not move too
    (`_rest_moved`): a cause of one leaf in RiskLoc's sets, not one tiny leaf of a moved triple.
    Returns the picks, and each as it stood at `searched` dimensions or fewer."""
    base = prec = w / s**2
    picks: list[tuple[_Cuboid, int]] = []
    for _ in range(MAX_CAUSES):
        best = _best(cubes, y, prec, pen)
        if best is None:
            break
        picks.append(best)
        prec = _without(prec, [best])
    shallow = list(picks)
    for i in range(len(picks)):
        if len(picks) == 1 and len(picks[0][0].dims) == 1:
            break  # a value alone, with nothing else out, already beat every pair inside it
        prec = _without(base, picks[:i] + picks[i + 1:])
        while (inner := _best(deeper(*picks[i]), y, prec, pen)) is not None \
                and _net(*inner, y, prec, pen) > _net(*picks[i], y, prec, pen) \
                and (len(inner[0].dims) <= searched or not _rest_moved(picks[i], inner, y, prec, pen)):  # fmt: skip
            picks[i] = inner  # and deeper again, as far as `deeper` goes
            shallow[i] = inner if len(inner[0].dims) <= searched else shallow[i]
    return picks, shallow


def _net(cube: _Cuboid, group: int, y: np.ndarray, prec: np.ndarray, pen: float) -> float:
    """What one candidate's fitted shift pays beyond its cost."""
    return float(cube.gains(y, prec)[1][group]) - _cost(cube, pen)


def _rest_moved(outer: tuple[_Cuboid, int], inner: tuple[_Cuboid, int], y: np.ndarray, prec: np.ndarray, pen: float) -> bool:
    """Whether the leaves of `outer` outside `inner` shifted too: their own fitted shift would pay
    for a cause. Then `outer` is the cause, however much more `inner` moved."""
    rest = np.setdiff1d(outer[0].members(outer[1]), inner[0].members(inner[1]))
    p = prec[rest].sum()
    return bool(p > 0 and (prec[rest] @ y[rest]) ** 2 / p > pen)


def _cost(cube: _Cuboid, pen: float) -> float:
    """What a candidate of this cuboid must pay for: the penalty, half again per extra dimension."""
    return pen * (1 + 0.5 * (len(cube.dims) - 1))


def _inside(leaves: _Leaves, cube: _Cuboid, group: int, dims: list[str], max_order: int, min_count: float) -> list[_Cuboid]:
    """The candidates one dimension deeper inside one group of a cuboid (none beyond max_order)."""
    if len(cube.dims) >= max_order:
        return []
    rows = cube.members(group)
    return [_Cuboid.of(leaves, tuple(d for d in dims if d in cube.dims or d == extra), rows, min_count)
            for extra in dims if extra not in cube.dims]  # fmt: skip


def _without(prec: np.ndarray, picks: list[tuple[_Cuboid, int]]) -> np.ndarray:
    """The precisions with the picked candidates' leaves out of the search."""
    out = prec.copy()
    for c, g in picks:
        out[c.members(g)] = 0.0
    return out


def _best(cubes: list[_Cuboid], y: np.ndarray, prec: np.ndarray, pen: float) -> tuple[_Cuboid, int] | None:
    """The candidate whose fitted shift pays most beyond its cost, if any does."""
    best: tuple[float, _Cuboid | None, int] = (0.0, None, -1)
    for c in cubes:
        _, gain = c.gains(y, prec)
        net = gain - _cost(c, pen)
        g = int(np.argmax(net))
        if net[g] > best[0]:
            best = (float(net[g]), c, g)
    return None if best[1] is None else (best[1], best[2])


def _outermost(chosen: list[_Element], within: Mapping[_Pairs, _Pairs]) -> list[_Element]:
    """The chosen elements no other chosen element contains by calls (`within`: each element's
    values and those `_implied` by its leaves): when a part was taken before the whole (it moved
    most: a provider's big model before the provider), the whole, taken after, explains it too."""
    pairs = [frozenset(zip(d, v)) for d, v in chosen]
    return [c for c, p in zip(chosen, pairs) if not any(q <= within[p] and not p <= within[q] for q in pairs)]


def _generalized(out: pd.DataFrame, chosen: list[_Element], dims: list[str], within: Mapping[_Pairs, _Pairs]) -> set[_Pairs]:
    """The chosen elements, where two or more lie inside one candidate and hold most of its volume,
    replaced by that candidate: one element says what they say. A cause that hit most of a segment
    unevenly (one CDN's failures up 12x on one device, 3x on another) is the segment; the common
    shift the pursuit fits per candidate would otherwise pick its worst parts one by one. Inside
    means by calls, not only by name (`within`): every call of a model is its provider's, so a
    provider's 429s, heavier on one of its models, are the provider's, not its two models'."""
    picked = {frozenset(zip(d, v)) for d, v in chosen}
    parents = {frozenset(a) for c in picked for k in range(1, len(within[c])) for a in itertools.combinations(within[c], k)} - picked
    wanted = {_label(e, dims): e for e in picked | parents}
    found = out[out["label"].isin(list(wanted))]  # by label: the rows' own values cost more to compare, and they are many
    row = {wanted[label]: (share, volume) for label, share, volume in zip(found["label"], found["explained_share"], found["current_count"])}
    for parent in sorted((p for p in parents if p in row), key=len):
        inside = [c for c in picked if parent <= within.get(c, c) and parent != c and c in row]
        if len(inside) >= 2 and row[parent][0] >= GENERAL_SHARE * sum(row[c][0] for c in inside) \
                and sum(row[c][1] for c in inside) >= 0.5 * row[parent][1]:  # fmt: skip
            picked = (picked - set(inside)) | {parent}
    return picked


def _implied(leaves: _Leaves, rows: np.ndarray) -> _Pairs:
    """The values every leaf of a pick (`rows`, its cuboid's members) with calls shares beyond its
    own (a model's provider): the candidates it lies inside by its calls. A missing value implies
    nothing, and nor does one every leaf has (the one service version of a scope without a
    deploy): that is the scope."""
    called = (leaves.sums["b_den"] + leaves.sums["c_den"]) > 0
    mine = np.zeros(len(called), dtype=bool)
    mine[rows] = True
    mine &= called
    implied = set()
    for d, codes in leaves.codes.items():
        shared = np.unique(codes[mine])
        if len(shared) == 1 and leaves.labels[d][shared[0]] != NONE and (codes[called] != shared[0]).any():
            implied.add((d, leaves.labels[d][shared[0]]))
    return frozenset(implied)


def _label(element: Iterable[tuple[str, Any]], dims: Sequence[str] | None = None) -> str:
    """A candidate's label, "d1=v1 & d2=v2"; its dimensions in the order of `dims` when given (the
    order every cuboid keeps), else as they come."""
    pairs = sorted(element, key=lambda dv: dims.index(dv[0])) if dims is not None else element
    return " & ".join(f"{d}={v}" for d, v in pairs)


def _mark_mix(out: pd.DataFrame, leaves: _Leaves) -> None:
    """Rates: when the marked causes explain under half the change, no segment's calls got worse by
    half of it (a deploy whose calls are worse than calls like them were), the change is significant
    and a segment's shift of volume carries it (Simpson), mark that segment."""
    marked = float(out.loc[out["root_cause"], "explained_share"].sum())
    if marked >= 0.5 or ((out["effect"] == "worse") & (out["within_share"] >= 0.5)).any():
        return  # the causes explain it, or one segment's calls got worse by half of it: no shift of traffic
    sm = leaves.sums
    nb, nc = sm["b_den"].sum(), sm["c_den"].sum()
    if abs(leaves.change) < 3 * leaves.spread * math.sqrt(1 / nb + 1 / nc):
        return
    mix = out[(out["effect"] == "mix") & ~out["root_cause"] & (out["mix_share"] > MIX_MIN) & ~holds_missing(out)]
    if mix.empty:
        return
    # one shift of traffic is one cause: the segment whose move explains most (a segment that grew
    # before one that shrank), or a broader one containing it that explains about as much (succinct)
    grew = mix[mix["current_count"] / nc > mix["baseline_count"] / nb]
    mix = grew if not grew.empty else mix
    order = mix["mix_share"] * PAIR_FACTOR ** (mix["dimensions"].map(len) - 1)
    best = order.sort_values(ascending=False, kind="stable").index[0]
    inside = set(zip(out.loc[best, "dimensions"], out.loc[best, "values"]))
    for idx in mix.index:
        if len(out.loc[idx, "dimensions"]) < len(out.loc[best, "dimensions"]) \
                and set(zip(out.loc[idx, "dimensions"], out.loc[idx, "values"])) <= inside \
                and out.loc[idx, "explained_share"] >= 0.9 * out.loc[best, "explained_share"]:  # fmt: skip
            best, inside = idx, set(zip(out.loc[idx, "dimensions"], out.loc[idx, "values"]))
    out.loc[best, "root_cause"] = True

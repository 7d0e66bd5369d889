"""The labelled evaluation holds its goals on a subset: one incident of every cause, one without."""

from __future__ import annotations

from driftline.analyzers.evaluation._evaluate import evaluate
from driftline.analyzers.evaluation._scenarios import CAUSES, Scenario
from driftline.collector import Store


def test_evaluation_meets_its_goals_on_one_scenario_of_each_cause(scenario_store: tuple[Store, list[Scenario]]) -> None:
    store, scenarios = scenario_store
    assert {s.cause for s in scenarios} == set(CAUSES)
    scores = evaluate(store, scenarios)
    misses = [o for o in scores.incidents if o.rank != 1]
    assert scores.precision_at_1 >= 0.9, misses
    assert scores.recall_at_3 >= 0.9, misses
    assert scores.timely >= 0.9, [(o.scenario, o.start_error) for o in scores.incidents]
    assert scores.false_alarm_scenarios == 0
    assert scores.precision_at_1 > scores.naive_precision_at_1  # the ranking beats "largest share first"

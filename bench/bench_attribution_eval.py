"""Detection and attribution accuracy on generated, labelled incidents.

Writes N scenarios (default 54: six of each cause, including no-incident ones) into a fresh
embedded store, runs detect + attribute on each as on-call would, and prints precision@1,
recall@3, the share of starts found within two buckets, and false alarms, next to the goals
(precision@1 >= 0.9, start within two buckets >= 0.9). Beside it, the baseline a naive
ranking would reach: candidates ordered by explained share alone.

    .venv/bin/python bench/bench_attribution_eval.py [--scenarios 54] [--seed 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter

from driftline.analyzers.evaluation._evaluate import evaluate
from driftline.analyzers.evaluation._scenarios import generate, write
from driftline.collector import connect, migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=54)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, connect(f"chdb://{tmp}/store") as store:
        migrate(store)
        started = time.perf_counter()
        scenarios = generate(args.scenarios, seed=args.seed)
        write(store, scenarios)
        written = time.perf_counter()
        scores = evaluate(store, scenarios)
        done = time.perf_counter()
    incidents = scores.incidents
    print(f"{len(scenarios)} scenarios ({len(incidents)} incidents, {len(scenarios) - len(incidents)} without), "
          f"{sum(len(s.calls['t']) for s in scenarios):,} calls; generated+written in {written - started:.1f} s, "
          f"evaluated in {done - written:.1f} s ({(done - written) / len(scenarios):.2f} s per scenario)")
    naive = scores.naive_precision_at_1
    print(f"precision@1            {scores.precision_at_1:.3f}   (goal >= 0.9; baseline 'largest explained share first': "
          f"{naive:.3f}, ratio {scores.precision_at_1 / naive if naive else float('inf'):.2f}x)")
    print(f"recall@3               {scores.recall_at_3:.3f}")
    print(f"start within 2 buckets {scores.timely:.3f}   (goal >= 0.9)")
    errors = Counter(o.start_error for o in incidents)
    print(f"start error (buckets)  {dict(sorted(errors.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))}")
    print(f"false alarms           {scores.false_alarm_scenarios} of {len(scenarios) - len(incidents)} no-incident scenarios")
    per_cause: dict[str, list[int]] = {}
    for o in incidents:
        per_cause.setdefault(o.cause, []).append(o.rank == 1)
    print("precision@1 per cause  " + ", ".join(f"{c} {sum(v)}/{len(v)}" for c, v in sorted(per_cause.items())))
    for o in incidents:
        if o.rank != 1:
            print(f"  miss: {o.scenario}: rank {o.rank}, start error {o.start_error}, top {o.top}")


if __name__ == "__main__":
    main()

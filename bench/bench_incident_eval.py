"""The incident report (the on-call path) scored on labelled incidents from three independent worlds.

World 1 writes columns straight into the store (analyzers/evaluation/_scenarios.labelled);
world 2 (LexDesk) writes spans through the public hooks and was written without reading the
analyzers; world 3 (Switchboard, a telecom support platform: analyzers/evaluation/_world3.py)
mixes the hooks with a bare OpenTelemetry GenAI instrumentation and was written without reading
the analyzers or the other worlds. `both` is worlds 1 and 2, `all` adds world 3. Every scenario
gets its own fresh embedded store. Prints, per world and overall:
detection, precision@1 of the lead finding, false findings per report and controls with
findings, next to the goals (p@1 >= 0.95, no finding on a control); then per kind, then the misses.

    .venv/bin/python bench/bench_incident_eval.py [--seeds 0 1] [--per-kind 2] [--world 1|2|3|both|all] [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from driftline.analyzers.evaluation._labels import LabelledScenario
from driftline.analyzers.evaluation._report_eval import ReportOutcome, ReportScores, evaluate_reports
from driftline.analyzers.evaluation._scenarios import labelled
from driftline.analyzers.evaluation._world2 import scenarios as world2_scenarios
from driftline.analyzers.evaluation._world3 import scenarios as world3_scenarios

GOAL_P_AT_1 = 0.95
FIXED_END = datetime(2026, 11, 16, 17, 30, tzinfo=UTC)
"""Worlds 2 and 3 end their scenarios at the wall clock unless told; a fixed end makes runs comparable."""
WORLDS = {"1": ("1",), "2": ("2",), "3": ("3",), "both": ("1", "2"), "all": ("1", "2", "3")}


def _scenarios(world: str, seeds: list[int], per_kind: int) -> list[LabelledScenario]:
    out: list[LabelledScenario] = []
    for seed in seeds:
        if "1" in WORLDS[world]:
            out += labelled(seed, per_kind=per_kind)
        if "2" in WORLDS[world]:
            out += world2_scenarios(seed, per_kind=per_kind, end=FIXED_END)
        if "3" in WORLDS[world]:
            out += world3_scenarios(seed, per_kind=per_kind, end=FIXED_END)
    return out


def _rate(value: float | None) -> str:
    return "   -" if value is None else f"{value:.2f}"


def _row(name: str, scores: ReportScores) -> str:
    ff = scores.false_findings_per_report
    return (f"{name:<26} {len(scores.incidents):>4} {_rate(scores.detection_rate):>6} {_rate(scores.precision_at_1):>6} "
            f"{'-' if ff is None else f'{ff:.2f}':>8} {scores.controls_with_findings:>3}/{len(scores.controls):<3}")  # fmt: skip


def _print_table(scores: ReportScores) -> None:
    header = f"{'':<26} {'inc':>4} {'detect':>6} {'p@1':>6} {'false/r':>8} {'ctl w/ f':>7}"
    print(header)
    for world, part in scores.by_world().items():
        print(_row(world, part))
    print(_row("overall", scores))
    p1 = scores.precision_at_1
    print(f"goals: p@1 >= {GOAL_P_AT_1} ({'met' if p1 is not None and p1 >= GOAL_P_AT_1 else 'NOT met'}), "
          f"zero findings on controls ({'met' if scores.controls_with_findings == 0 else 'NOT met'})")  # fmt: skip
    print("\nper kind")
    print(header)
    for kind, part in scores.by_kind().items():
        print(_row(kind, part))
        for world, sub in part.by_world().items():
            print(_row(f"  {world}", sub))


def _print_misses(scores: ReportScores) -> None:
    print("\nmisses (incidents with a wrong lead, controls with findings)")
    for o in scores.misses:
        what = f"detected={o.detected}" if o.incident else "control"
        print(f"  {o.scenario:<34} {what:<15} findings={o.findings} false={o.false_findings} lead={o.lead_signal} top={o.lead_suspect}")


def _progress(o: ReportOutcome) -> None:
    verdict = ("ok " if o.lead_correct else "MISS") if o.incident else ("quiet" if not o.findings else "NOISY")
    print(f"  {o.scenario:<34} {verdict:<5} findings={o.findings} false={o.false_findings} lead={o.lead_signal} top={o.lead_suspect} ({o.seconds:.1f}s)",
          file=sys.stderr)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--world", choices=tuple(WORLDS), default="both")
    parser.add_argument("--verbose", action="store_true", help="a line per scenario on stderr as it finishes")
    args = parser.parse_args()
    chosen = _scenarios(args.world, args.seeds, args.per_kind)
    started = time.perf_counter()
    scores = evaluate_reports(chosen, progress=_progress if args.verbose else None)
    print(f"{len(chosen)} scenarios (world {args.world}, seeds {args.seeds}, {args.per_kind} per kind) in {time.perf_counter() - started:.0f} s\n")
    _print_table(scores)
    _print_misses(scores)


if __name__ == "__main__":
    main()

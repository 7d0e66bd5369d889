"""The incident report on the demo's data: how long a whole report takes, against detection alone.

Writes the demo (`run_demo`, the same world `make demo` simulates; 30,000 calls by default) into
a fresh embedded store, then times, interleaved in one warm process, median of the rounds:

- the baseline: `detect` over the last two hours (what any report must at least do);
- `incident_report` over the same window (detect, attribution of every regression, the charts'
  series, the timeline, the impact), and `render_report` of it as Markdown, HTML and JSON.

It prints the absolute figures, wall clock and process CPU (other load on a shared machine
inflates the wall clock, not the CPU), and the report's ratio to detection alone.

    .venv/bin/python bench/bench_incident_report.py [--calls 30000] [--rounds 3] [--end 2026-11-16T17:30]

The demo ends at a fixed moment (`--end`, UTC) so that runs on different days, and the code before
a change against the code after it, time the same calls: the demo's traffic follows the time of day.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.analyzers import Window, detect, incident_report, render_report
from driftline.analyzers.demo._run import run_demo
from driftline.collector import connect, migrate

END = datetime(2026, 11, 16, 17, 30, tzinfo=UTC)
"""The default end of the demo's calls: fixed, so that every run writes the same world."""


def timed(func: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--end", type=datetime.fromisoformat, default=END, help="when the demo's calls end (UTC)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, connect(f"chdb://{tmp}/store") as store:
        migrate(store)
        end = args.end.replace(tzinfo=UTC) if args.end.tzinfo is None else args.end.astimezone(UTC)
        print(f"writing the demo: {args.calls:,} calls ...", flush=True)
        run_demo(store, calls=args.calls, seed=7, end=end)
        window = Window(end - timedelta(hours=2), end + timedelta(minutes=1))
        report = incident_report(store, window)  # warm: imports (ruptures, scipy, jinja2, plotly) and caches
        for fmt in ("md", "html", "json"):
            render_report(report, fmt)
        runs: dict[str, list[tuple[float, float]]] = {"detect": [], "report": [], "render": []}
        for _ in range(args.rounds):
            runs["detect"].append(timed(lambda: detect(store, window)))
            runs["report"].append(timed(lambda: incident_report(store, window)))
            runs["render"].append(timed(lambda: [render_report(report, fmt) for fmt in ("md", "html", "json")]))
        wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        print(f"\n{len(report.findings)} findings; lead: {report.summary}\n")
        print(f"{'step':<44}{'wall s':>9}{'CPU s':>9}")
        print(f"{'detect over 2 h (baseline)':<44}{wall['detect']:>9.2f}{cpu['detect']:>9.2f}")
        print(f"{'incident_report over the same 2 h':<44}{wall['report']:>9.2f}{cpu['report']:>9.2f}")
        print(f"{'render_report md + html + json':<44}{wall['render']:>9.2f}{cpu['render']:>9.2f}")
        print(f"\nreport / detect: {wall['report'] / wall['detect']:.2f}x wall, {cpu['report'] / cpu['detect']:.2f}x CPU "
              f"(median of {args.rounds} interleaved rounds)")  # fmt: skip


if __name__ == "__main__":
    main()

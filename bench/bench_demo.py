"""Speed of `driftline demo`, with its export batch against the OTel SDK's default batch.

Each round runs the whole demo (real hooks, real SDK, one BatchSpanProcessor per service) into
a fresh database of one embedded engine, once with the demo's EXPORT_BATCH spans per insert and
once with the SDK's default of 512; the rounds interleave, so a busy machine slows both alike.
Every insert into otel_traces runs the store's materialized views, so fewer, larger inserts
should cost less. Figures: median wall and CPU seconds (all threads, the engine's included),
calls per second, and the ratio default / demo.

Run: .venv/bin/python bench/bench_demo.py [--calls 5000] [--rounds 3]
Goal: 30,000 calls in well under a minute of wall time on an idle machine (CPU seconds are
the machine-independent figure: on a loaded machine wall time stretches, CPU time does not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from driftline.analyzers.demo import _run as _demo
from driftline.collector import connect
from driftline.collector.store._migrate import reset

SDK_DEFAULT_BATCH = 512


def one_run(url: str, calls: int, batch: int) -> tuple[float, float]:
    """(wall, cpu) seconds of one demo run with `batch` spans per insert; checks nothing was lost."""
    _demo.EXPORT_BATCH = batch
    store = connect(url)
    try:
        reset(store)
        cpu0, wall0 = os.times(), time.perf_counter()
        _demo.run_demo(store, calls=calls, seed=7)
        wall, cpu1 = time.perf_counter() - wall0, os.times()
        written = store.rows("SELECT count() FROM llm_calls")[0][0]
    finally:
        store.close()
    if written != calls:
        raise SystemExit(f"batch {batch}: wrote {written} calls, asked for {calls}")
    return wall, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    demo_batch = _demo.EXPORT_BATCH
    engine = tempfile.mkdtemp(prefix="bench_demo_")
    results: dict[int, list[tuple[float, float]]] = {demo_batch: [], SDK_DEFAULT_BATCH: []}
    for round_ in range(args.rounds):
        for batch in (demo_batch, SDK_DEFAULT_BATCH):
            results[batch].append(one_run(f"chdb://{engine}?database=b{round_}_{batch}", args.calls, batch))
    medians = {b: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for b, r in results.items()}
    print(f"driftline demo, {args.calls:,} calls, median of {args.rounds} interleaved rounds (load average {os.getloadavg()[0]:.1f})")
    for batch, (wall, cpu) in medians.items():
        label = "demo EXPORT_BATCH" if batch == demo_batch else "SDK default batch"
        print(f"  {label:18} {batch:>5} spans/insert: {wall:6.1f} s wall  {cpu:6.1f} s CPU  {args.calls / wall:7.0f} calls/s wall"
              f"  -> 30,000 calls ~ {wall * 30_000 / args.calls:5.0f} s wall, {cpu * 30_000 / args.calls:5.0f} s CPU")  # fmt: skip
    (demo_wall, demo_cpu), (sdk_wall, sdk_cpu) = medians[demo_batch], medians[SDK_DEFAULT_BATCH]
    print(f"  ratio SDK default / demo: {sdk_wall / demo_wall:.2f}x wall, {sdk_cpu / demo_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()

"""Analyzers at scale: detect + attribute on 10 million llm_calls rows in the embedded store.

Generates the rows in SQL (INSERT ... SELECT FROM numbers(): a week of calls over three
routes, 50 tenants, models, prompts, indexes, ASR confidence; one evaluation scored on a
fifth of the calls; a silent provider update on /chat/answer for the last 18 hours), then:

- times a full pass in a warm process (the one-off import of ruptures/scipy, ~2-4 s, is
  printed apart): `detect` over the week (every signal), then attribution of every
  regression it finds (`attribute_many`: regressions starting together share one scan),
  between the day before the start and the time since;
- times each attribution leaf query against a bare GROUP BY of the same columns over the
  same rows (the baseline, run side by side, median of 3), and prints the ratio
  (goal: <= 3x) — for a calls signal, a percentile signal and a quality (scores) signal.

    .venv/bin/python bench/bench_analyzers.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from driftline.analyzers import Filters, Window, attribute_many, detect
from driftline.analyzers._attribute import DIMENSIONS, leaves_query, window_params
from driftline.analyzers._signals import get_signal, source_sql
from driftline.analyzers._sql import quote_identifier
from driftline.collector import Store, connect, migrate

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 7
INCIDENT = START + timedelta(days=DAYS) - timedelta(hours=18)

CALLS_SQL = """
INSERT INTO llm_calls (time, trace_id, span_id, service, span_name, operation, route, tenant, provider, request_model,
                       response_model, system_fingerprint, prompt_name, prompt_version, index_name, index_version,
                       confidence_mean, service_version, duration_s, ttft_s, status, cost_usd)
WITH number AS n,
     fromUnixTimestamp64Nano(toInt64({start_ns:Int64} + n * intDiv({span_ns:Int64}, {rows:UInt64}))) AS t,
     n % 3 AS r, cityHash64(n, 1) % 50 AS tn, cityHash64(n, 2) % 1000 / 1000 AS u,
     t >= {incident:DateTime64(9)} AND r = 0 AS hit
SELECT t, lower(hex(cityHash64(n))) || lower(hex(n)), lower(hex(n)), 'bench-app', 'chat', 'chat',
       ['/chat/answer', '/search', '/summarize'][r + 1], concat('tenant-', toString(tn)),
       if(r = 2, 'anthropic', 'openai'), ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet'][r + 1],
       if(hit, 'gpt-4o-2024-11-20', ['gpt-4o-2024-08-06', 'gpt-4o-mini-2024-07-18', 'claude-sonnet-20250514'][r + 1]),
       if(r = 2, NULL, if(hit, 'fp_new', 'fp_' || toString(r))),
       ['answer', 'search', 'summarize'][r + 1], if(cityHash64(n, 3) % 10 = 0, 'v4', 'v3'), if(r = 2, NULL, 'kb'),
       if(r = 2, NULL, if(t >= {incident:DateTime64(9)} - INTERVAL 2 HOUR, 'idx-new', 'idx-old')),
       if(cityHash64(n, 4) % 10 < 3, 0.5 + cityHash64(n, 6) % 1000 / 2000, NULL), if(t >= {incident:DateTime64(9)} - INTERVAL 30 MINUTE, '1.5.0', '1.4.0'),
       0.4 + u * 1.5 + if(hit, 0.3, 0), 0.1 + u * 0.4, if(cityHash64(n, 5) % 100 < if(hit, 4, 1), 'Error', 'Unset'),
       0.001 + u / 500
FROM numbers({rows:UInt64})
"""

SCORES_SQL = """
INSERT INTO llm_scores (time, trace_id, span_id, service, evaluation, score)
SELECT time, trace_id, span_id, service, 'faithfulness',
       greatest(0, least(1, 0.85 - if(response_model = 'gpt-4o-2024-11-20', 0.15, 0) + (cityHash64(span_id) % 1000 / 1000 - 0.5) / 3))
FROM llm_calls WHERE cityHash64(span_id, 9) % 5 = 0
"""


def _median_seconds(run: Callable[[], object], times: int = 3) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def generate(store: Store, rows: int) -> float:
    started = time.perf_counter()
    span = timedelta(days=DAYS)
    store.command(CALLS_SQL, {"start_ns": int(START.timestamp()) * 10**9, "span_ns": int(span.total_seconds()) * 10**9,
                              "rows": rows, "incident": INCIDENT})  # fmt: skip
    store.command(SCORES_SQL)
    return time.perf_counter() - started


def bare_query(signal: str, filters: Filters) -> str:
    """The baseline: a plain GROUP BY count() of the same dimensions over the same rows."""
    spec = get_signal(signal)
    dims = ", ".join(f"{DIMENSIONS[d]} AS {quote_identifier(d)}" for d in DIMENSIONS)
    keys = ", ".join(quote_identifier(d) for d in DIMENSIONS)
    source = source_sql(spec, with_dimensions=True, filters=filters)
    return (f"SELECT {dims}, count() AS calls FROM {source} "
            f"WHERE time >= {{lo:DateTime64(9)}} AND time < {{hi:DateTime64(9)}} GROUP BY {keys}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    week = Window(START, START + timedelta(days=DAYS))
    with tempfile.TemporaryDirectory() as tmp, connect(f"chdb://{tmp}/store") as store:
        migrate(store)
        made = generate(store, args.rows)
        calls, scores = store.rows("SELECT count() FROM llm_calls")[0][0], store.rows("SELECT count() FROM llm_scores")[0][0]
        print(f"generated {calls:,} llm_calls and {scores:,} llm_scores rows in SQL in {made:.1f} s")
        store.rows("SELECT count() FROM llm_calls WHERE duration_s > 1")  # warm the engine once
        imported = time.perf_counter()
        import ruptures  # noqa: F401  (what the first detect of a process pays once)

        print(f"one-off import of ruptures (and scipy) {time.perf_counter() - imported:.2f} s")

        started = time.perf_counter()
        found = detect(store, week)
        detected = time.perf_counter()
        results = []
        for start in sorted({r.started_at for r in found}):  # regressions starting together share one scan
            incident, baseline = Window(start, week.end), Window(start - timedelta(days=1), start)
            signals = [r.signal for r in found if r.started_at == start]
            results += attribute_many(store, signals, baseline=baseline, incident=incident).values()
        finished = time.perf_counter()
        print(f"\nfull pass: detect {detected - started:.2f} s ({len(found)} regressions: {', '.join(r.signal for r in found)}), "
              f"attribute x{len(results)} {finished - detected:.2f} s, total {finished - started:.2f} s (goal < 10 s)")
        for result in results:
            top = result.suspects[0] if result.suspects else None
            print(f"  {result.signal}: top suspect {top.label if top else '-'} ({top.explained_share:.0%} {top.effect})" if top else "")

        print("\nattribution leaf query vs bare GROUP BY of the same columns (median of 3):")
        incident = Window(INCIDENT, week.end)
        baseline = Window(INCIDENT - timedelta(days=1), INCIDENT)
        for signal in ("error_rate", "latency_p95", "quality:faithfulness"):
            spec = get_signal(signal)
            params = window_params(spec, baseline, incident, Filters())
            leaf_sql, bare_sql = leaves_query([spec], list(DIMENSIONS), Filters()), bare_query(signal, Filters())
            leaf = _median_seconds(lambda sql=leaf_sql, p=params: store.rows(sql, p))
            bare = _median_seconds(lambda sql=bare_sql, p=params: store.rows(sql, p))
            print(f"  {signal:22s} leaves {leaf:.3f} s   bare GROUP BY {bare:.3f} s   ratio {leaf / bare:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    main()

"""Change points on the Turing Change Point Dataset (TCPD): F1 of `change_points` against no change point.

Scores `driftline.analyzers.change_points` (default parameters) on TCPD's univariate series with
TCPDBench's F1 (margin 5) and prints, per series and on average, its F1 next to the baseline
'zero' (no change point at all, which TCPDBench also reports), the ratio driftline/zero, and the
runtime. Nothing is fetched at run time.

    .venv/bin/python bench/bench_tcpd.py DATA_DIR [--qc]

Data: DATA_DIR is a checkout of https://github.com/alan-turing-institute/TCPD
(`git clone https://github.com/alan-turing-institute/TCPD`): annotations.json at its root and
datasets/<name>/<name>.json. A flat folder (annotations.json and <name>.json side by side) works
too. Upstream commits no JSON for bitcoin, iceland_tourism, measles, ratner_stock, robocalls,
scanline_126007 and scanline_42049 (univariate; only a get_<name>.py download script, which
TCPD's `make` runs) nor for apple, bee_waggle_6, occupancy (multivariate anyway): those are
skipped unless their JSON is present. The multivariate run_log is skipped; the five
quality_control_* demo series are left out of the mean, as in TCPDBench's tables (--qc lists them).
Without DATA_DIR (as `make bench` runs it) the script says where to get the data and exits 0.

The metric re-implements TCPDBench's (analysis/scripts/metrics.py f_measure and summarize.py
clean_cps): predictions are kept if 1 <= k < n-1 and de-duplicated; 0 is added to the predictions
and to every annotator's set; an annotation is a true positive if an unused prediction lies within
5 points (closest first); precision = TP(union of annotators, predictions) / |predictions|,
recall = mean over annotators of TP(annotator, predictions) / |annotator|, F1 = 2PR / (P + R).
`evaluate(fn, load_tcpd(data_dir))` scores any `fn(values) -> list[int]` (values: 1-D float, NaN
where an observation is missing).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftline.analyzers import change_points

MARGIN = 5
QC_PREFIX = "quality_control_"
WHERE = ("TCPD data: git clone https://github.com/alan-turing-institute/TCPD, then\n"
         "  .venv/bin/python bench/bench_tcpd.py TCPD   (see this script's docstring)")  # fmt: skip

ChangePointFn = Callable[[np.ndarray], Iterable[int]]


@dataclass
class Series:
    name: str
    values: np.ndarray  # 1-D float, NaN where missing
    annotations: dict[str, list[int]]  # annotator id -> change points

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class Result:
    scores: dict[str, float]  # series -> F1
    n_predicted: dict[str, int]
    seconds: float

    def mean(self, names: Iterable[str]) -> float:
        return float(np.mean([self.scores[n] for n in names]))


def series_path(data_dir: Path, name: str) -> Path | None:
    """The series' JSON: datasets/<name>/<name>.json (a TCPD checkout) or <name>.json (flat)."""
    for path in (data_dir / "datasets" / name / f"{name}.json", data_dir / f"{name}.json"):
        if path.exists():
            return path
    return None


def load_tcpd(data_dir: str | Path, *, include_qc: bool = False) -> dict[str, Series]:
    """The univariate annotated series present in DATA_DIR, by name (quality_control_* only with include_qc)."""
    data_dir = Path(data_dir)
    annotations = json.loads((data_dir / "annotations.json").read_text())
    out: dict[str, Series] = {}
    for name in sorted(annotations):
        path = series_path(data_dir, name)
        if path is None or (name.startswith(QC_PREFIX) and not include_qc):
            continue
        doc = json.loads(path.read_text())
        if doc["n_dim"] != 1:
            continue
        values = np.array([np.nan if v is None else float(v) for v in doc["series"][0]["raw"]], dtype=float)
        if len(values) != doc["n_obs"]:
            raise ValueError(f"{path}: {len(values)} values, n_obs says {doc['n_obs']}")
        out[name] = Series(name, values, {str(k): list(v) for k, v in annotations[name].items()})
    return out


def missing_series(data_dir: str | Path) -> list[str]:
    """Annotated series without a JSON in DATA_DIR (download-only upstream)."""
    data_dir = Path(data_dir)
    annotations = json.loads((data_dir / "annotations.json").read_text())
    return sorted(name for name in annotations if series_path(data_dir, name) is None)


def _true_positives(truth: Iterable[int], predicted: Iterable[int], margin: int = MARGIN) -> int:
    """Annotations matched by a distinct prediction within `margin` (nearest unused prediction first)."""
    unused = set(predicted)
    hits = 0
    for tau in truth:
        close = sorted((abs(tau - x), x) for x in unused if abs(tau - x) <= margin)
        if close:
            hits += 1
            unused.remove(close[0][1])
    return hits


def f1_score(annotations: dict[str, list[int]], predictions: Iterable[int], n: int, margin: int = MARGIN) -> float:
    """TCPDBench's F1 of `predictions` against every annotator's change points (see the module doc)."""
    predicted = {int(k) for k in predictions if 1 <= k < n - 1} | {0}
    per_user = [set(v) | {0} for v in annotations.values()]
    union = set().union(*per_user)
    precision = _true_positives(union, predicted, margin) / len(predicted)
    recall = sum(_true_positives(t, predicted, margin) / len(t) for t in per_user) / len(per_user)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _self_check() -> None:
    """The doctest values of TCPDBench's metrics.f_measure."""
    assert f1_score({"1": [10, 20], "2": [11, 20], "3": [10], "4": [0, 5]}, [10, 20], 100) == 1.0
    assert math.isclose(f1_score({"1": [], "2": [10], "3": [50]}, [10], 100), 0.9090909090909091)
    assert math.isclose(f1_score({"1": [], "2": [10], "3": [50]}, [], 100), 0.8)


def evaluate(fn: ChangePointFn, series: dict[str, Series]) -> Result:
    """F1 of `fn` on every series, with the number of change points it returned and its total runtime."""
    scores, counts = {}, {}
    started = time.perf_counter()
    for name, s in series.items():
        predicted = list(fn(s.values.copy()))
        scores[name] = f1_score(s.annotations, predicted, s.n)
        counts[name] = len(predicted)
    return Result(scores, counts, time.perf_counter() - started)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "inf"


def report(series: dict[str, Series], results: dict[str, Result], skipped: list[str]) -> None:
    """Per-series table, then the mean over the non-demo series, the ratio and the runtime."""
    names = [n for n in series if not n.startswith(QC_PREFIX)]
    print(f"TCPD univariate series: {len(names)} scored; no JSON in DATA_DIR (download-only upstream): {', '.join(skipped) or 'none'}")
    header = f"{'series':<22}{'n':>5}{'#ann':>5} " + "".join(f"{label:>10}{'#cp':>5}" for label in results)
    print(header)
    for name, s in series.items():
        n_ann = len(set().union(*map(set, s.annotations.values())))
        mark = " (demo, not in mean)" if name.startswith(QC_PREFIX) else ""
        print(f"{name:<22}{s.n:>5}{n_ann:>5} " + "".join(f"{r.scores[name]:>10.3f}{r.n_predicted[name]:>5}" for r in results.values()) + mark)
    print("-" * len(header))
    print(f"{f'mean F1 ({len(names)} series)':<33}" + "".join(f"{r.mean(names):>10.3f}{sum(r.n_predicted[n] for n in names):>5}" for r in results.values()))
    new, zero = results["driftline"], results["zero"]
    print(f"mean F1: driftline {new.mean(names):.3f}, baseline 'zero' {zero.mean(names):.3f}, ratio {_ratio(new.mean(names), zero.mean(names))}; "
          f"driftline better on {sum(new.scores[n] > zero.scores[n] for n in names)}, worse on {sum(new.scores[n] < zero.scores[n] for n in names)} of {len(names)}")  # fmt: skip
    print(f"runtime: change_points {new.seconds:.3f} s over {len(series)} series ({1000 * new.seconds / len(series):.1f} ms per series)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", help="a checkout of github.com/alan-turing-institute/TCPD (or a flat folder of its JSON)")
    parser.add_argument("--qc", action="store_true", help="also score and list the quality_control_* demo series (never in the mean)")
    args = parser.parse_args()
    if args.data_dir is None:
        print(f"bench_tcpd: no DATA_DIR given, nothing scored.\n{WHERE}")
        return
    if not (Path(args.data_dir) / "annotations.json").exists():
        parser.error(f"no annotations.json in {args.data_dir}\n{WHERE}")
    _self_check()
    series = load_tcpd(args.data_dir, include_qc=args.qc)
    if not series:
        parser.error(f"no univariate series JSON in {args.data_dir} (looked for datasets/<name>/<name>.json and <name>.json)")
    fns: dict[str, ChangePointFn] = {"zero": lambda values: [], "driftline": change_points}
    change_points(np.r_[np.zeros(20), np.ones(20)])  # warm-up: imports (ruptures) outside the timed run
    results = {label: evaluate(fn, series) for label, fn in fns.items()}
    report(series, results, missing_series(args.data_dir))


if __name__ == "__main__":
    main()

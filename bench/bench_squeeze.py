"""Root-cause localisation on Squeeze's B0: attribute_frame's root-cause set against its top candidate alone.

Scores `driftline.analyzers.attribute_frame` (defaults; additive KPI: baseline = the forecast
`predict`, current = the `real` value of each leaf) on the B0 cases of the Squeeze dataset, and
prints per setting and overall the micro precision, recall and F1 of the rows it marks
`root_cause == True`, next to the baseline 'top1': the top-ranked candidate alone (the first value
or pair of values by score, as the ranking reads without a root-cause set), their ratio, and the
runtime per case.

    .venv/bin/python bench/bench_squeeze.py DATA_DIR [--cases-per-setting 10] [--settings B_cuboid_layer_3_n_ele_3 ...]

Data: DATA_DIR is the folder B0 of https://github.com/lalaland1921/Squeeze at commit
6c62243e2b46dad61ba964bef2543f0acc1c848f (the default branch's HEAD no longer has the data):
`git clone https://github.com/lalaland1921/Squeeze && git -C Squeeze archive 6c62243 B0 | tar -x`.
One sub-folder per setting B_cuboid_layer_<L>_n_ele_<N> (the true causes combine L dimensions,
N causes per case), each with <timestamp>.csv leaves (real, predict, a, b, c, d) and
injection_info.csv (`set`: the true causes, e.g. `a=a1&b=b2;a=a3`, and `timestamp`). Cases are
taken in timestamp order, --cases-per-setting of each (0 = all 100). Nothing is fetched at run
time; without DATA_DIR (as `make bench` runs it) the script says where to get the data and exits 0.
RiskLoc's synthetic sets are laid out the same way: a folder holding the output folder of its
generate_dataset.py (https://github.com/shaido987/riskloc; S is `--num N --seed 121`, five
dimensions of 10/12/10/8/5 values, causes of up to five dimensions) is a DATA_DIR too.

Scoring as RiskLoc (utils/evaluation.py): per case, TP = true causes predicted exactly (the same
set of dimension=value pairs), FP = predicted - TP, FN = true - TP, summed over the cases of a
setting (micro), then P = TP/(TP+FP), R = TP/(TP+FN), F1 = 2PR/(P+R). If attribute_frame returns
no `root_cause` column, only the baseline is reported.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from driftline.analyzers import attribute_frame

WHERE = ("Squeeze B0 data: git clone https://github.com/lalaland1921/Squeeze && git -C Squeeze archive "
         "6c62243e2b46dad61ba964bef2543f0acc1c848f B0 | tar -x, then\n"
         "  .venv/bin/python bench/bench_squeeze.py B0   (see this script's docstring)")  # fmt: skip
METHODS = ("top1", "root_cause")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: set[str], truth: set[str]) -> None:
        hits = len(predicted & truth)
        self.tp, self.fp, self.fn = self.tp + hits, self.fp + len(predicted) - hits, self.fn + len(truth) - hits

    def prf(self) -> tuple[float, float, float]:
        """Micro precision, recall and F1."""
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass
class Tally:
    counts: dict[str, Counts] = field(default_factory=lambda: {m: Counts() for m in METHODS})
    seconds: list[float] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        for m in METHODS:
            for attr in ("tp", "fp", "fn"):
                setattr(self.counts[m], attr, getattr(self.counts[m], attr) + getattr(other.counts[m], attr))
        self.seconds += other.seconds


def element(dimensions: Iterable[str], values: Iterable[str]) -> str:
    """One candidate as Squeeze writes a cause: dimension=value pairs joined by '&', sorted."""
    return "&".join(sorted(f"{d}={v}" for d, v in zip(dimensions, values)))


def true_causes(label: str) -> set[str]:
    """injection_info's `set` (`a=a1&b=b2;a=a3`) as elements."""
    return {"&".join(sorted(e.split("&"))) for e in label.split(";")}


def predictions(ranked: pd.DataFrame) -> dict[str, set[str] | None]:
    """The baseline's element (top value or pair by score) and the root-cause set (None without the column)."""
    by_score = ranked[ranked["dimensions"].map(len) <= 2].sort_values(["score", "explained_share"], ascending=False, kind="stable")
    top1 = {element(*by_score.iloc[0][["dimensions", "values"]])} if len(by_score) else set()
    if "root_cause" not in ranked.columns:
        return {"top1": top1, "root_cause": None}
    chosen = ranked[ranked["root_cause"].astype(bool)]
    return {"top1": top1, "root_cause": {element(d, v) for d, v in zip(chosen["dimensions"], chosen["values"])}}


def run_setting(folder: Path, cases: int, verbose: bool) -> tuple[Tally, bool]:
    """Score the setting's first `cases` cases (0 = all); also whether a root_cause column was seen."""
    info = pd.read_csv(folder / "injection_info.csv").sort_values("timestamp", kind="stable")
    if cases:
        info = info.head(cases)
    tally, has_set = Tally(), True
    for ts, label in zip(info["timestamp"], info["set"]):
        leaves = pd.read_csv(folder / f"{ts}.csv")
        dims = [c for c in leaves.columns if c not in ("real", "predict")]
        started = time.perf_counter()
        ranked = attribute_frame(leaves, dimensions=dims, baseline="predict", current="real")
        tally.seconds.append(time.perf_counter() - started)
        truth = true_causes(label)
        for method, predicted in predictions(ranked).items():
            if predicted is None:
                has_set = False
                continue
            tally.counts[method].add(predicted, truth)
            if verbose and method == "root_cause" and predicted != truth:
                print(f"   miss {folder.name} {ts}: true {sorted(truth)}, got {sorted(predicted)}")
    return tally, has_set


def row(name: str, tally: Tally, has_set: bool) -> str:
    cells = [f"{x:>7.3f}" for x in tally.counts["top1"].prf()]
    cells += [f"{x:>7.3f}" for x in tally.counts["root_cause"].prf()] if has_set else [f"{'-':>7}"] * 3
    return f"{name:<26}{len(tally.seconds):>5} " + "".join(cells) + f"{1000 * sum(tally.seconds) / max(len(tally.seconds), 1):>9.0f}"


def settings_of(data_dir: Path, chosen: Sequence[str] | None) -> list[Path]:
    folders = [data_dir / s for s in chosen] if chosen else sorted(p for p in data_dir.iterdir() if (p / "injection_info.csv").exists())
    missing = [p.name for p in folders if not (p / "injection_info.csv").exists()]
    if missing or not folders:
        raise SystemExit(f"bench_squeeze: no injection_info.csv in {', '.join(missing) or f'any sub-folder of {data_dir}'}\n{WHERE}")
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", help="the B0 folder of the Squeeze dataset")
    parser.add_argument("--cases-per-setting", type=int, default=10, help="cases per setting, in timestamp order; 0 = all")
    parser.add_argument("--settings", nargs="*", default=None, help="setting folders to score (default: all)")
    parser.add_argument("--verbose", action="store_true", help="print the cases the root-cause set gets wrong")
    args = parser.parse_args()
    if args.data_dir is None:
        print(f"bench_squeeze: no DATA_DIR given, nothing scored.\n{WHERE}")
        return
    folders = settings_of(Path(args.data_dir), args.settings)
    print(f"{'setting':<26}{'cases':>5} " + "".join(f"{h:>7}" for h in ("top1 P", "R", "F1", "set P", "R", "F1")) + f"{'ms/case':>9}")
    total, has_set = Tally(), True
    for folder in folders:
        tally, seen = run_setting(folder, args.cases_per_setting, args.verbose)
        has_set &= seen
        print(row(folder.name, tally, seen))
        total.merge(tally)
    print(row("overall", total, has_set))
    top1 = total.counts["top1"].prf()[2]
    if has_set:
        chosen = total.counts["root_cause"].prf()[2]
        print(f"micro-F1: root-cause set {chosen:.3f}, baseline 'top1' {top1:.3f}, ratio {chosen / top1 if top1 else float('inf'):.2f}x")
    else:
        print(f"attribute_frame returned no root_cause column: only the baseline 'top1' is scored (micro-F1 {top1:.3f}).")
    print(f"runtime per case: mean {1000 * sum(total.seconds) / len(total.seconds):.0f} ms, max {1000 * max(total.seconds):.0f} ms "
          f"over {len(total.seconds)} cases (attribute_frame only, CSV reading excluded)")  # fmt: skip


if __name__ == "__main__":
    main()

"""Root-cause localisation on RobustSpot's RS cases (real failure rates): attribute_frame's root-cause set against its top candidate alone.

Scores `driftline.analyzers.attribute_frame` with defaults on a rate (failures over requests, with
counts) where B0 (`bench_squeeze.py`) scores an additive KPI on generated data: 135 incidents of
a video CDN's playback failures, per minute and per leaf (cdn, p2p, bitrate, device, and isp in
some), each labelled with the element(s) that caused it. As RobustSpot and RiskLoc read them, the
baseline of a leaf is its mean over the 4 minutes before the anomalous minute and the current
value is that minute's. Printed: micro precision, recall and F1 of the rows marked
`root_cause == True` and of the top candidate alone (`bench_squeeze.predictions`), and the
runtime per case.

    .venv/bin/python bench/bench_robustspot.py DATA_DIR [--verbose]

Data: DATA_DIR is the folder data/RS of https://github.com/shaido987/riskloc (anomaly.yaml and one
CSV per case with columns min, the dimensions, value = failures, cnt = requests):
`git clone https://github.com/shaido987/riskloc && .venv/bin/python bench/bench_robustspot.py riskloc/data/RS`.
Nothing is fetched at run time; without DATA_DIR (as `make bench` runs it) the script says where to
get the data and exits 0. Scoring as in bench_squeeze.py (RiskLoc's utils/evaluation.py).
"""

from __future__ import annotations

import argparse
import ast
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from bench_squeeze import Counts, element, predictions

from driftline.analyzers import attribute_frame

WHERE = ("RobustSpot RS data: git clone https://github.com/shaido987/riskloc, then\n"
         "  .venv/bin/python bench/bench_robustspot.py riskloc/data/RS   (see this script's docstring)")  # fmt: skip
HISTORY_MINUTES = 4
"""Minutes before the anomaly whose mean is a leaf's baseline (RobustSpot's forecast)."""


def cases(data_dir: Path) -> Iterator[tuple[str, int, set[str]]]:
    """(file stem, anomalous minute, true causes) per entry of anomaly.yaml. Its entries are
    `- data: NAME`, `timestamp: T`, `cause: {...}` or `cause: [{...}, ...]` (Python literals), so
    a regular expression reads them without a YAML parser."""
    text = (data_dir / "anomaly.yaml").read_text(encoding="utf-8")
    for entry in text.split("- data:")[1:]:
        name = entry.split("\n", 1)[0].strip()
        timestamp = re.search(r"timestamp:\s*(\d+)", entry)
        cause = re.search(r"cause:\s*(.+)", entry)
        if not (name and timestamp and cause):
            raise SystemExit(f"bench_robustspot: cannot read the anomaly.yaml entry {name!r}")
        found = ast.literal_eval(cause.group(1).strip())
        elements = found if isinstance(found, list) else [found]
        yield name, int(timestamp.group(1)), {element(e, map(str, e.values())) for e in elements}


def leaves(path: Path, minute: int) -> tuple[pd.DataFrame, list[str]]:
    """Per leaf: failures and requests in the anomalous minute and, averaged, in the minutes before."""
    raw = pd.read_csv(path)
    dims = [c for c in raw.columns if c not in ("min", "value", "cnt")]
    raw[dims] = raw[dims].astype(str)
    now = raw[raw["min"] == minute].groupby(dims, as_index=False)[["value", "cnt"]].sum()
    before = raw[raw["min"].isin([minute - 60 * i for i in range(1, HISTORY_MINUTES + 1)])]
    before = before.groupby(dims, as_index=False)[["value", "cnt"]].sum()
    before[["value", "cnt"]] /= HISTORY_MINUTES
    return now.merge(before, on=dims, how="outer", suffixes=("_now", "_before")).fillna(0.0), dims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", help="the data/RS folder of the riskloc repository")
    parser.add_argument("--verbose", action="store_true", help="print the cases the root-cause set gets wrong")
    args = parser.parse_args()
    if args.data_dir is None:
        print(f"bench_robustspot: no DATA_DIR given, nothing scored.\n{WHERE}")
        return
    data_dir = Path(args.data_dir)
    if not (data_dir / "anomaly.yaml").exists():
        raise SystemExit(f"bench_robustspot: no anomaly.yaml in {data_dir}\n{WHERE}")
    counts, seconds = {"top1": Counts(), "root_cause": Counts()}, []
    for name, minute, truth in cases(data_dir):
        frame, dims = leaves(data_dir / f"{name}.csv", minute)
        started = time.perf_counter()
        ranked = attribute_frame(frame, dimensions=dims, baseline="value_before", current="value_now",
                                 baseline_count="cnt_before", current_count="cnt_now")  # fmt: skip
        seconds.append(time.perf_counter() - started)
        for method, predicted in predictions(ranked).items():
            counts[method].add(predicted or set(), truth)
            if args.verbose and method == "root_cause" and predicted != truth:
                print(f"   miss {name}: true {sorted(truth)}, got {sorted(predicted or ())}")
    for method, label in (("root_cause", "root-cause set"), ("top1", "baseline 'top1'")):
        p, r, f1 = counts[method].prf()
        print(f"{label:<16} precision {p:.3f}  recall {r:.3f}  micro-F1 {f1:.3f}")
    print(f"{len(seconds)} cases; runtime per case: mean {1000 * sum(seconds) / len(seconds):.0f} ms, max {1000 * max(seconds):.0f} ms"
          " (attribute_frame only, CSV reading excluded)")  # fmt: skip


if __name__ == "__main__":
    main()

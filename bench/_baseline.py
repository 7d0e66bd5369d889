"""A past revision of driftline beside this one, for benchmarks that run it side by side (`--baseline REV`).

Two versions of driftline cannot share a process (chDB allows one engine per process, and the
modules have the same names), so a benchmark runs the baseline in its own processes, alternating
with this code under the same load, and prints the ratio. The revision's packages are unpacked
from git into a folder put first on PYTHONPATH; the installed (editable) driftline stays as is.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import tarfile
import tomllib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def unpack(rev: str, directory: Path) -> Path:
    """`rev`'s driftline packages under `directory`/driftline, laid out as its pyproject's package-dir
    maps them (driftline.collector = collector/, ...); returns the folder to put on PYTHONPATH."""
    package_dir = tomllib.loads(_git("show", f"{rev}:pyproject.toml").decode())["tool"]["setuptools"]["package-dir"]
    tops = {name.removeprefix("driftline."): folder for name, folder in package_dir.items() if name.count(".") == 1}
    with tarfile.open(fileobj=io.BytesIO(_git("archive", rev, *tops.values()))) as tar:
        tar.extractall(directory / "checkout", filter="data")
    (directory / "driftline").mkdir()
    for name, folder in tops.items():
        (directory / "checkout" / folder).rename(directory / "driftline" / name)
    return directory


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"--baseline: git {' '.join(args[:2])}: {exc.stderr.decode().strip()}") from None


def in_turn(names: list[str], round_: int) -> list[str]:
    """`names` rotated so that each goes first in turn, round after round (whoever runs first
    meets a colder machine)."""
    turn = round_ % len(names)
    return names[turn:] + names[:turn]


def environment(pythonpath: Path | None) -> dict[str, str]:
    """This process's environment, with `pythonpath` (a baseline) first on the module path."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return env


def medians(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each contender's median of each figure over its runs."""
    return {name: {key: statistics.median(run[key] for run in taken) for key in taken[0]} for name, taken in runs.items()}

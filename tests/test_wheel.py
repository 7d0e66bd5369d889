"""`pip install driftline` from a built wheel, without the embedded engine: what an app gets.

Builds the wheel from a copy of the source tree, installs it with its base dependencies into a
fresh venv (no chdb), and checks imports, shipped data, cheap import of the collector, and the
message a command gives when it needs the missing extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "chdb", "jinja2", "clickhouse_connect")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "OTEL_", "PYTHON", "VIRTUAL_ENV"))}


def _check(argv: list[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(argv, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _source(built: Path) -> Path:
    """The copy of the source tree the wheel (and so the venv beside it) was built from."""
    return built.parent.parent / "src"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `python -m build --wheel` makes from a copy of the source tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", ".driftline", "__pycache__", ".pytest_cache")
    shutil.copytree(ROOT, source, ignore=junk)
    _check([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)], cwd=work)
    (built,) = (work / "dist").glob("driftline-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Iterator[Path]:
    """A fresh venv with the wheel and its base dependencies; yields its bin directory."""
    env_dir = wheel.parent.parent / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    bin_dir = env_dir / "bin"
    _check([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], cwd=wheel.parent)
    yield bin_dir


@pytest.mark.slow
def test_wheel_installs_only_under_the_driftline_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("driftline/", "driftline-")) for n in names), sorted({n.split("/")[0] for n in names})


@pytest.mark.slow
def test_wheel_ships_every_dashboard_runbook_and_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    src = _source(wheel)
    expected = {f"driftline/collector/store/migrations/{p.name}" for p in (src / "collector" / "store" / "migrations").glob("*.sql")}
    expected |= {f"driftline/dashboards/{p.relative_to(src / 'dashboards')}" for p in (src / "dashboards").rglob("*") if p.suffix in (".json", ".yaml")}
    expected |= {f"driftline/runbooks/{p.name}" for p in (src / "runbooks").glob("*.md")}
    expected |= {"driftline/collector/py.typed", "driftline/analyzers/py.typed"}
    assert any(n.endswith(".json") for n in expected) and any(n.endswith(".md") for n in expected)
    assert expected - names == set()


_PROBE = textwrap.dedent(
    """
    import importlib.resources, importlib.util, json, sys
    import driftline.collector
    heavy_after_collector = sorted(m for m in {heavy!r} if m in sys.modules)
    import driftline.analyzers
    def files(package, suffix):
        return sorted(p.name for p in importlib.resources.files(package).iterdir() if p.name.endswith(suffix))
    print(json.dumps({{
        "heavy_after_collector": heavy_after_collector,
        "chdb_installed": importlib.util.find_spec("chdb") is not None,
        "dashboards": files("driftline.dashboards", ".json"),
        "runbooks": files("driftline.runbooks", ".md"),
        "migrations": files("driftline.collector.store.migrations", ".sql"),
        "exports": sorted(driftline.collector.__all__),
    }}))
    """
)


@pytest.mark.slow
def test_installed_wheel_imports_cheaply_and_finds_its_data(installed: Path, tmp_path: Path) -> None:
    found = json.loads(_check([str(installed / "python"), "-c", _PROBE.format(heavy=HEAVY)], cwd=tmp_path))
    src = _source(installed)
    assert found["heavy_after_collector"] == [], "importing driftline.collector must not import these"
    assert found["chdb_installed"] is False
    assert found["dashboards"] == sorted(p.name for p in (src / "dashboards").glob("*.json")) != []
    assert found["runbooks"] == sorted(p.name for p in (src / "runbooks").glob("*.md")) != []
    assert found["migrations"] == sorted(p.name for p in (src / "collector" / "store" / "migrations").glob("*.sql"))
    assert {"instrument", "release", "llm_call", "connect", "migrate"} <= set(found["exports"])


@pytest.mark.slow
@pytest.mark.parametrize("command", [["db", "migrate"], ["db", "status", "--store", "chdb:///tmp/driftline-no-chdb"]])
def test_command_needing_the_embedded_store_without_chdb_names_the_extra(installed: Path, tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run([str(installed / "driftline"), *command], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_clean_env())
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'driftline[embedded]'" in lines[0]
    assert not (tmp_path / ".driftline").exists(), "nothing is created when the engine is missing"

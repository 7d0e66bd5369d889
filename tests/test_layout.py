"""The folders show the architecture, and imports run one way only (DESIGN.md, "Layout").

Every module's imports (top level and inside functions) are read from its source with `ast`,
resolved to absolute `driftline.*` names, and checked against the rules below: hooks never reach
the receiver or the analyzers, the store reaches nothing above it, analyzers never reach the
hooks or the receiver, and only the CLI (and the simulated apps, which are apps) wires them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"collector": "driftline.collector", "analyzers": "driftline.analyzers",
            "dashboards": "driftline.dashboards", "runbooks": "driftline.runbooks"}  # fmt: skip

HOOKS, RECEIVER, STORE = "driftline.collector.hooks", "driftline.collector.receiver", "driftline.collector.store"
ANALYZERS, CLI = "driftline.analyzers", "driftline.analyzers.cli"
SIMULATED_APPS = ("driftline.analyzers.demo", "driftline.analyzers.evaluation")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    HOOKS: (RECEIVER, ANALYZERS, "driftline.dashboards", "driftline.runbooks"),
    RECEIVER: (HOOKS, ANALYZERS, "driftline.dashboards", "driftline.runbooks"),
    STORE: (HOOKS, RECEIVER, ANALYZERS, "driftline.dashboards", "driftline.runbooks"),
    "driftline.collector": (ANALYZERS, "driftline.dashboards", "driftline.runbooks"),
    ANALYZERS: (HOOKS, RECEIVER),
    "driftline.dashboards": (HOOKS, RECEIVER, CLI),
    "driftline.runbooks": (HOOKS, RECEIVER, ANALYZERS, "driftline.dashboards"),
}
"""Package -> what no module inside it may import (the most specific package's rule applies)."""

ALLOWED: dict[str, tuple[str, ...]] = {
    CLI: (HOOKS, RECEIVER),
    "driftline.analyzers.demo": (HOOKS,),
    "driftline.analyzers.evaluation": (HOOKS,),
}
"""Exceptions, by package: the CLI wires everything; simulated apps instrument themselves like any app."""


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names a module imports (for `from X import y`, both X and X.y: y may be a module)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            out.add(base)
            out |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in out if m.startswith("driftline.")}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(modules: dict[str, Path]) -> list[str]:
    """'importer -> imported' for every import the rules forbid."""
    found = []
    for name, path in sorted(modules.items()):
        rules = [p for p in FORBIDDEN if _within(name, p)]
        if not rules:
            continue
        forbidden = FORBIDDEN[max(rules, key=len)]
        allowed = tuple(a for p, extra in ALLOWED.items() if _within(name, p) for a in extra)
        for imported in sorted(imports_of(name, path)):
            if any(_within(imported, f) for f in forbidden) and not any(_within(imported, a) for a in allowed):
                found.append(f"{name} -> {imported}")
    return found


def test_every_import_runs_the_allowed_way() -> None:
    assert violations(_modules()) == []


@pytest.mark.parametrize(("importer", "imported"), [
    ("driftline.collector.hooks._calls", "driftline.collector.receiver._ingest"),
    ("driftline.collector.store._store", "driftline.collector.hooks._calls"),
    ("driftline.analyzers._report", "driftline.collector.hooks._scores"),
    ("driftline.analyzers._detect", "driftline.collector.receiver._spool"),
    ("driftline.runbooks._loader", "driftline.analyzers._report"),
])  # fmt: skip
def test_an_import_the_wrong_way_is_caught(importer: str, imported: str, tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(f"from __future__ import annotations\n\ndef late() -> None:\n    import {imported}\n")
    assert violations({importer: module}) == [f"{importer} -> {imported}"]


def test_the_cli_and_the_simulated_apps_may_wire_hooks_and_store(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from driftline.collector.hooks._calls import llm_call\nfrom driftline.collector.store import _store\n")
    assert violations({"driftline.analyzers.cli._demo": module, "driftline.analyzers.demo._run": module}) == []


def test_each_subpackage_says_what_lives_there_and_what_it_may_import() -> None:
    for name, path in _modules().items():
        if path.name == "__init__.py" and name.count(".") >= 2:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            assert len(doc) > 60, f"{name} needs a docstring saying what lives there"

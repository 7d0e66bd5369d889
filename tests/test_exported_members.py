"""The public surface is what `__all__` says (after httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize("package", ["driftline.collector", "driftline.analyzers"])
def test_all_lists_exactly_the_public_names_and_each_resolves(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    public = sorted(  # subpackages (driftline.collector.store.migrations, once imported) are not API names
        name for name, value in vars(module).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, types.ModuleType)
    )  # fmt: skip
    assert sorted(exported) == public, f"{package}.__all__ differs from its public names"
    assert len(set(exported)) == len(exported), "duplicate names in __all__"
    for name in exported:
        assert getattr(module, name) is not None


def test_collector_exports_the_documented_api() -> None:
    collector = importlib.import_module("driftline.collector")
    documented = {"instrument", "release", "llm_call", "record_score", "tag_retrieval", "record_confidence", "annotate",
                  "connect", "migrate", "StoreSpanExporter", "ReleaseContextProcessor", "DriftlineError"}  # fmt: skip
    assert documented <= set(collector.__all__)


def test_each_private_module_all_names_only_what_it_defines() -> None:
    collector = importlib.import_module("driftline.collector")
    for name in collector.__all__:
        value = getattr(collector, name)
        owner = importlib.import_module(value.__module__)
        assert name in getattr(owner, "__all__", []), f"{name} is not in {value.__module__}.__all__"

"""On-call runbooks shipped with driftline (runbooks/*.md, read through importlib.resources).

Findings and dashboard panels refer to runbooks by name (the file name without `.md`); this
module is the one place that resolves a name, so a broken reference fails here and in tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from driftline.collector._errors import DriftlineError

__all__ = ["Runbook", "RunbookNotFound", "commands", "get", "names", "panel_references", "runbooks"]

_PACKAGE = "driftline.runbooks"
_FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
_DASHBOARD_REF = re.compile(r"(?<!\*)\*([^*]+)\* →(.*?)(?=(?<!\*)\*[^*]+\* →|$)")


class RunbookNotFound(DriftlineError):
    """No runbook of that name ships with this driftline."""


@dataclass(frozen=True)
class Runbook:
    """One runbook: its name (file stem), title (first heading) and Markdown text."""

    name: str
    title: str
    text: str

    @property
    def summary(self) -> str:
        """The first paragraph after the title, on one line."""
        body = self.text.split("\n\n", 2)
        return " ".join(body[1].split()) if len(body) > 1 else ""

    @property
    def path(self) -> str:
        """The runbook's path in the repository, for links."""
        return f"runbooks/{self.name}.md"


def names() -> list[str]:
    """Every runbook name, sorted."""
    root = resources.files(_PACKAGE)
    return sorted(e.name.removesuffix(".md") for e in root.iterdir() if e.name.endswith(".md"))


def get(name: str) -> Runbook:
    """The runbook called `name`; RunbookNotFound lists the valid names."""
    entry = resources.files(_PACKAGE).joinpath(f"{name}.md")
    if not re.fullmatch(r"[a-z0-9-]+", name) or not entry.is_file():
        raise RunbookNotFound(f"no runbook {name!r}; available: {', '.join(names())}")
    text = entry.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text else name
    return Runbook(name, title, text)


def runbooks() -> list[Runbook]:
    """All runbooks, sorted by name."""
    return [get(n) for n in names()]


def panel_references(runbook: Runbook) -> list[tuple[str, str]]:
    """(dashboard title, panel title) for each `*Dashboard* → **Panel**` in the Dashboard section."""
    section = runbook.text.split("## Dashboard", 1)[-1].split("\n## ", 1)[0]
    refs = []
    for dashboard, panels in _DASHBOARD_REF.findall(" ".join(section.split())):
        refs += [(dashboard, panel) for panel in re.findall(r"\*\*(.+?)\*\*", panels)]
    return refs


def commands(runbook: Runbook) -> list[str]:
    """Every `driftline …` command line in the runbook's code blocks."""
    found = []
    for block in _FENCE.findall(runbook.text):
        found += [line.strip() for line in block.splitlines() if line.strip().startswith("driftline ")]
    return found

#!/usr/bin/env bash
# Type-check the installed package as `driftline.*` (config: [tool.mypy] in pyproject.toml).
# mypy cannot read setuptools' package-dir mapping (driftline.collector -> collector/, ...), so the
# package is laid out for it as a symlink farm under build/ (gitignored) and checked from there.
#   usage: scripts/typecheck.sh [extra mypy args]     (VENV=.venv by default)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
farm="$root/build/typecheck"
mkdir -p "$farm/driftline"
for dir in collector analyzers dashboards runbooks; do
    ln -sfn "../../../$dir" "$farm/driftline/$dir"
done
cd "$farm"
MYPYPATH=. exec "$venv/bin/mypy" --config-file "$root/pyproject.toml" --python-executable "$venv/bin/python" -p driftline "$@"

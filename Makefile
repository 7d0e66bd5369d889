# The two commands a newcomer runs: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= chdb://$(CURDIR)/.driftline/demo
CALLS  ?= 30000
SEED   ?= 7
# Test worker processes: CI's machine has 2 cores. A fixed number, not `-n auto`: in a container
# whose CPU quota is smaller than the host's core count, auto would start an engine per host core.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded,report]'
	touch $@

# The conformance suite runs each real GenAI instrumentation in a virtualenv of its own (they pin
# conflicting releases of openai and the OTel SDK): $(VENV)/conformance/NAME from tests/conformance/NAME.txt.
$(VENV)/.test-installed: pyproject.toml scripts/system-deps.sh $(wildcard tests/conformance/*.txt) | $(BIN)/python
	bash scripts/system-deps.sh chromium
	$(BIN)/pip install -q -e '.[test]'
	for r in tests/conformance/*.txt; do \
		v=$(VENV)/conformance/$$(basename $$r .txt); \
		$(BIN)/python -m venv --clear $$v && $$v/bin/pip install -q --upgrade pip && $$v/bin/pip install -q -r $$r || exit 1; \
	done
	touch $@

## make demo: simulate an LLM app with an injected incident into the embedded store, then report.
demo: $(VENV)/.demo-installed
	$(BIN)/driftline demo --store '$(STORE)' --calls $(CALLS) --seed $(SEED) --fresh
	$(BIN)/driftline incident report --since 2h --store '$(STORE)'

## make test: lint and type-check, then the whole suite against the real embedded ClickHouse engine,
## in TEST_WORKERS processes (pytest-xdist; each test file stays in one worker).
test: $(VENV)/.test-installed lint typecheck
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## make lint: ruff over the tree (rules in pyproject.toml [tool.ruff]).
lint: $(VENV)/.test-installed
	$(BIN)/ruff check .

## make typecheck: mypy over the installed package (pyproject.toml [tool.mypy]; strict on the new subpackages).
## mypy cannot read package-dir, so the script checks a symlinked build/typecheck/driftline/ instead.
typecheck: $(VENV)/.test-installed
	VENV='$(VENV)' bash scripts/typecheck.sh

## make bench: every benchmark in bench/, each printing ratios against its baseline.
bench: $(VENV)/.test-installed
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .driftline build dist *.egg-info

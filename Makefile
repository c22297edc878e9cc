# Bzzz: `make demo` and `make test` work from a fresh clone (they install what they need).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JS     := tests/js
JSSTAMP := $(JS)/node_modules/.installed
PYTEST_ARGS ?=
# the suite runs in TEST_JOBS processes (pytest-xdist), a test file to one process: most of
# its time is spent waiting on agents, devhub and CLIs, not computing (`make test TEST_JOBS=0`
# runs it in one process); the quick benches run BENCH_JOBS at a time
TEST_JOBS ?= 2
BENCH_JOBS ?= 2

.PHONY: all install demo test unit lint system-deps js-deps llm-deps github-description agent-clis \
	bench bench-quick clean

all: install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# setuptools explains editable installs on every run; nothing is wrong
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash .ci/system-deps.sh

$(JSSTAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JSSTAMP)

js-deps: system-deps $(JSSTAMP)

# llama-cpp-python[server] from a wheel cached outside the repository (built once, ~5 min)
llm-deps: install
	@bash .ci/llama-wheel.sh $(VENV) >/dev/null

# the coding-agent CLIs the agent presets run (Claude Code, Codex, opencode from npm; Aider
# in a virtual environment of its own), cached outside the repository (~1 min, ~2 GB, once)
agent-clis: system-deps
	@bash .ci/agent-clis.sh >/dev/null

demo: install
	$(BIN)/bzzz demo

lint: install
	$(BIN)/ruff check bzzz tests bench
	$(BIN)/mypy

# GitHub's REST description, which devhub's conformance test validates against (two files
# of two npm packages, kept in a cache outside the repository)
github-description: system-deps
	@bash .ci/github-description.sh >/dev/null

# The linter, the whole suite, then a quick smoke run of every benchmark.
test: install system-deps js-deps llm-deps github-description agent-clis lint
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) --no-print-directory bench-quick

unit: install
	$(BIN)/python -m pytest -q -m "not netns and not js" $(PYTEST_ARGS)

bench-quick: install
	@BENCH_JOBS=$(BENCH_JOBS) PYTHON=$(BIN)/python bash .ci/bench-quick.sh

bench: install system-deps llm-deps
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(JS)/node_modules .pytest_cache

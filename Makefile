# flowmm: every target sets itself up on a fresh clone (virtualenv in .venv, Graphviz if we can).
#   make demo   validate, render and run graphs/rfc_unified.yaml on the synthetic market with
#               paper execution, and graphs/demo.yaml on real BTC events -> out/
#   make test   the test suite (pytest)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLOWMM := $(VENV)/bin/flowmm
STAMP := $(VENV)/.installed
MAIN_GRAPH := graphs/rfc_unified.yaml
DEMO_GRAPH := graphs/demo.yaml
DEMO_EVENTS := flowmm/examples/btc_20250126_events.jsonl
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: help setup graphviz demo test lint bench clean distclean goldens

help:
	@echo "make demo       validate + render $(MAIN_GRAPH) and run it on the synthetic market with"
	@echo "                paper execution; run $(DEMO_GRAPH) on real BTC events (writes out/)"
	@echo "make test       run the test suite"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make bench      run the benchmark scripts in bench/"
	@echo "make goldens    regenerate the golden runs (tests/data/goldens) the engine must reproduce"
	@echo "make clean      remove out/ and caches (distclean: the virtualenv too)"

# -- setup -------------------------------------------------------------------------------
$(PY):
	@echo "== creating virtualenv $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

# reinstall when the package metadata changes (the install is editable: code changes need nothing)
$(STAMP): pyproject.toml setup.py | $(PY)
	@echo "== pip install -e '.[dev]' into $(VENV)"
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

setup: $(STAMP) graphviz

# Graphviz renders graph pictures; without it `flowmm render` writes the .dot source instead.
graphviz:
	@if command -v dot >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "== installing Graphviz (apt-get)"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz; } \
			|| echo "warning: could not install graphviz; render will write .dot files" >&2; \
	else \
		echo "note: Graphviz 'dot' not found; render will write .dot files instead of pictures." >&2; \
		echo "      install it with: sudo apt-get install graphviz  (macOS: brew install graphviz)" >&2; \
	fi

# -- the main job ------------------------------------------------------------------------
demo: setup
	@mkdir -p out
	@echo "== flowmm validate --strict $(MAIN_GRAPH)"
	$(FLOWMM) validate --strict $(MAIN_GRAPH)
	@if command -v dot >/dev/null 2>&1; then \
		echo "== flowmm render $(MAIN_GRAPH) -> out/rfc_unified.svg"; \
		$(FLOWMM) render $(MAIN_GRAPH) -o out/rfc_unified.svg; \
	else \
		echo "== flowmm render $(MAIN_GRAPH) --format dot -> out/rfc_unified.dot (no Graphviz: no picture)"; \
		$(FLOWMM) render $(MAIN_GRAPH) -o out/rfc_unified.dot --format dot; \
	fi
	@echo "== flowmm run $(MAIN_GRAPH) on the synthetic trend_down (20 min), paper execution -> out/rfc-run/"
	$(FLOWMM) run $(MAIN_GRAPH) --source synthetic --scenario trend_down --seed 0 --out out/rfc-run --overwrite --no-progress
	@echo "== flowmm run $(DEMO_GRAPH) on real BTC events ($(DEMO_EVENTS)) -> out/demo-run/"
	$(FLOWMM) run $(DEMO_GRAPH) --source events --data $(DEMO_EVENTS) --out out/demo-run --overwrite --no-progress
	@echo "== done: $$([ -e out/rfc_unified.svg ] && echo out/rfc_unified.svg || echo out/rfc_unified.dot), out/rfc-run/ (report.html, trace.parquet, fills.parquet, plots/), out/demo-run/"

# -- checks ------------------------------------------------------------------------------
test: setup
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	@shopt -s nullglob; scripts=(bench/*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no benchmark scripts in bench/ yet"; fi; \
	for f in "$${scripts[@]}"; do echo "== $$f"; $(PY) "$$f"; done

clean:
	rm -rf out build dist .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) *.egg-info

# -- goldens -----------------------------------------------------------------------------
# Regenerate the golden runs the engine must reproduce bit for bit (tests/core/test_goldens.py);
# commit the result with a message that says why they changed. `make goldens CASES="a b"` for some.
goldens: $(STAMP)
	$(PY) scripts/goldens.py write $(CASES)

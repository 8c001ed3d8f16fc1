# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: demo test lint clean bench-plan

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --keep-going
	@echo "Report: $(CURDIR)/reports/index.html (tables: reports/summary.md, data: reports/summary.json)"

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(CORES) --dist loadfile --durations=12

# How long planning takes (snakemake --version, a no-op rerun of the demo built here, dry runs
# of 25/50/100 generated Vocos models): make bench-plan [DEMO_DIR=folder of a built demo]
DEMO_DIR ?= .
bench-plan: $(STAMP)
	$(BIN)/python scripts/bench_planning.py --demo-dir $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

clean:
	rm -rf artifacts reports logs benchmarks .snakemake

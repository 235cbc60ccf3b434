# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo-data

.PHONY: demo test lint typecheck bench services ui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

# The demo's data (Bikeshare 2011) ships inside ISLP. --no-deps: its declared dependencies
# pull in torch and more, and reading its data needs only pandas, numpy and scikit-learn.
$(DEMO_STAMP): | $(BIN)/python
	$(BIN)/pip install --quiet --no-deps 'ISLP>=0.3,<0.7'
	touch $@

# The web UI's compiled assets are committed; this rebuilds them only when ui/ changed.
ui:
	bash scripts/build_ui.sh

demo: $(STAMP) $(DEMO_STAMP) ui
	$(BIN)/python examples/demo.py

services:
	@bash scripts/check_services.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

test: $(TEST_STAMP) $(DEMO_STAMP) services ui lint
	$(BIN)/pytest

bench: $(TEST_STAMP) $(DEMO_STAMP)
	bash benchmarks/setup_anchors.sh
	$(BIN)/python benchmarks/bench_tracking.py --write
	bash benchmarks/setup_evidently.sh
	$(BIN)/python benchmarks/bench_data.py --write
	bash benchmarks/setup_zenml.sh
	$(BIN)/python benchmarks/bench_pipelines.py --write
	$(BIN)/python benchmarks/bench_serving.py --write
	$(BIN)/python benchmarks/bench_loop.py --write
	$(BIN)/python benchmarks/bench_monitoring.py --write
	-bash benchmarks/setup_feast.sh
	$(BIN)/python benchmarks/bench_features.py --write
	$(BIN)/python benchmarks/bench_ui.py --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

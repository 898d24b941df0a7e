# coinlake: every entry point CI and people use. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= coinlake-data
# Lambda packages: x86_64 (default) or arm64
ARCH ?= x86_64
# the demo's simulated prices never share a data dir with live ones
DEMO_DATA ?= coinlake-demo
SOURCES := src tests benchmarks scripts glue

.DEFAULT_GOAL := help
.PHONY: help demo run test test-fast lint format docs bench package lock lock-lambdas sam-validate clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# constraints.txt: the versions tested together (`make lock` rewrites it). Without it pip's
# resolver backtracks for many minutes over the AWS SDK's tightly pinned botocore.
$(BIN)/coinlake: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.dev: $(BIN)/coinlake
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

lock: $(VENV)/.dev  ## re-pin constraints.txt to what the dev venv holds (after changing dependencies)
	$(BIN)/pip freeze --exclude-editable | grep -v '^coinlake' > constraints.txt

demo: $(BIN)/coinlake  ## run the whole pipeline on the built-in simulator, then query it
	$(BIN)/coinlake run --source simulated --interval 1 --duration 20 --buffer-interval 5 --etl-interval 5 --port 0 --data-dir $(DEMO_DATA)
	$(BIN)/coinlake status --data-dir $(DEMO_DATA)
	$(BIN)/coinlake query --data-dir $(DEMO_DATA) "SELECT crypto, count(*) AS n, min(price) AS low, max(price) AS high, max(timestamp) AS newest FROM spot_prices GROUP BY crypto ORDER BY crypto"

run: $(BIN)/coinlake  ## run the pipeline against the live Coinbase API (Ctrl-C stops it)
	$(BIN)/coinlake run --source coinbase --data-dir $(DATA)

lint: $(VENV)/.dev  ## ruff check + format check + mypy over src
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# checkov lives in a virtual environment of its own (its pins clash with the project's).
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.*'

test: lint $(CHECKOV)  ## lint, then every test
	COINLAKE_CHECKOV=$(CHECKOV) $(BIN)/pytest

test-fast: $(VENV)/.dev  ## the quick loop: no slow suites, fewer hypothesis examples, no lint
	$(BIN)/pytest -m "not slow" --hypothesis-profile=fast -q

format: $(VENV)/.dev  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

docs: $(VENV)/.dev  ## regenerate the README's CLI reference from the live --help
	$(BIN)/python scripts/cli_reference.py

$(VENV)/.bench: $(VENV)/.dev
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench  ## run the benchmarks (prints figures, writes benchmarks/results/)
	$(BIN)/python benchmarks/stream.py
	$(BIN)/python benchmarks/etl.py
	$(BIN)/python benchmarks/guard.py
	$(BIN)/python benchmarks/query.py
	$(BIN)/python benchmarks/open_hour.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/crash.py
	$(BIN)/python benchmarks/deadletters.py
	$(BIN)/python benchmarks/history.py
	$(BIN)/python benchmarks/seed_import.py
	$(BIN)/python benchmarks/ticks.py
	$(BIN)/python benchmarks/freshness.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/backfill.py
	$(BIN)/python benchmarks/latest_aws.py
	$(BIN)/python benchmarks/soak.py --minutes 195  # 3 h 15 min: memory at the same phase of two hours, each after a whole hour

package: $(BIN)/coinlake  ## one reproducible Lambda zip per handler into build/ (ARCH=arm64 for Graviton), and the wheel Glue installs
	$(BIN)/python scripts/package.py --arch $(ARCH)
	rm -rf build/coinlake-*.whl build/lib build/bdist.*
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir build .
	rm -rf build/lib build/bdist.*

lock-lambdas: $(BIN)/coinlake  ## re-pin the Lambda requirements (src/coinlake/aws/requirements/*.in -> *.txt)
	$(BIN)/python scripts/package.py --lock

sam-validate: $(VENV)/.dev  ## cfn-lint + the SAM translator on template.yaml, offline
	$(BIN)/pytest -q tests/infra/test_sam_template.py

clean:  ## remove the venv, caches and the demo data dir (never the live one)
	rm -rf $(VENV) $(CHECKOV_VENV) $(DEMO_DATA) build .pytest_cache .ruff_cache .hypothesis

# hpcbridge: set-up, tests and demo.  Every target installs what it needs.
#   make demo   run the main job end to end on the local testbed
#   make test   lint + type-check + the whole test suite (unit, CLI, testbed)
PYTHON   ?= /usr/bin/python3
VENV     ?= .venv
STAMP    := $(VENV)/.installed
PY       := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all deps venv test test-unit test-testbed lint demo testbed-up testbed-down testbed-status bench clean

all: test

deps:
	@bash scripts/install-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

venv: deps $(STAMP)

lint: venv
	$(VENV)/bin/ruff check hpcbridge tests bench
	$(VENV)/bin/ruff format --check hpcbridge tests bench
	$(VENV)/bin/mypy

# The suite must leave no daemon running: when no testbed daemon ran before the tests,
# `leftovers` fails the run if any survived them.  A testbed that was already up (for
# instance `make testbed-up`) is reused and left as it was.
test: lint
	@before=0; $(PY) -m tests.testbed leftovers >/dev/null 2>&1 || before=1; \
	status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$before = 0 ]; then $(PY) -m tests.testbed leftovers || status=1; \
	else echo "make test: the testbed was up before the tests and is left up (make testbed-down)"; fi; \
	exit $$status

test-unit: venv
	$(PY) -m pytest -m 'not testbed' $(PYTEST_ARGS)

test-testbed: venv
	$(PY) -m pytest -m testbed $(PYTEST_ARGS)

testbed-up: venv
	$(PY) -m tests.testbed up

testbed-down: venv
	$(PY) -m tests.testbed down

testbed-status: venv
	$(PY) -m tests.testbed status

demo: venv
	$(PY) -m tests.testbed demo

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# hpcbridge: set-up, tests and demo.  Every target installs what it needs.
#   make demo          run the main job end to end on the local testbed
#   make test          lint + type-check + the whole test suite (all three parts below)
#   make test-unit     unit and command-line tests (tests/unit, tests/cli): no testbed
#   make test-testbed  hpcbridge against the real testbed (tests/testbed, marker testbed)
#   make test-facts    facts about Slurm/Apptainer/registry, no hpcbridge (tests/facts, marker facts)
PYTHON   ?= /usr/bin/python3
VENV     ?= .venv
STAMP    := $(VENV)/.installed
PY       := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all deps venv test test-unit test-testbed test-facts lint demo testbed-up testbed-down testbed-status bench clean

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

# pytest $(1), leaving no daemon running: when no testbed daemon ran before the tests,
# `leftovers` fails the run if any survived them.  A testbed that was already up (for
# instance `make testbed-up`) is reused and left as it was.
define pytest_leaving_no_daemon
	@before=0; $(PY) -m tests.testbed leftovers >/dev/null 2>&1 || before=1; \
	status=0; $(PY) -m pytest $(1) $(PYTEST_ARGS) || status=$$?; \
	if [ $$before = 0 ]; then $(PY) -m tests.testbed leftovers || status=1; \
	else echo "make $@: the testbed was up before the tests and is left up (make testbed-down)"; fi; \
	exit $$status
endef

test: lint
	$(call pytest_leaving_no_daemon,)

test-unit: venv
	$(PY) -m pytest -m 'not testbed' tests/unit tests/cli $(PYTEST_ARGS)

test-testbed: venv
	$(call pytest_leaving_no_daemon,-m 'testbed and not facts' tests/testbed)

test-facts: venv
	$(call pytest_leaving_no_daemon,-m facts tests/facts)

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

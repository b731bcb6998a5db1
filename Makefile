# The README's commands: `make train`, `make test` (the whole suite, what CI runs) and
# `make test-fast` (the edit loop: the tests not marked `slow`). Each creates the virtual
# environment in .venv on first use (re-created when pyproject.toml changes), so a fresh
# clone needs nothing else. PYTHON picks the interpreter that builds the venv.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp
EXPERIMENT ?= cyclegan:demo
WORKDIR ?= runs/$(subst :,_,$(EXPERIMENT))

.PHONY: train test test-fast venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python -m jaxgan.main --experiment $(EXPERIMENT) --workdir $(WORKDIR)

# --durations=15: every run prints its 15 slowest tests, so the suite's cost stays seen.
PYTEST := $(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup

test: $(STAMP)
	$(PYTEST) tests --durations=15

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" tests

clean:
	rm -rf $(VENV) runs

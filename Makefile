# The README's two commands: `make train` and `make test`. Each creates the virtual
# environment in .venv on first use (re-created when pyproject.toml changes), so a fresh
# clone needs nothing else. PYTHON picks the interpreter that builds the venv.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp
EXPERIMENT ?= cyclegan:demo
WORKDIR ?= runs/$(subst :,_,$(EXPERIMENT))

.PHONY: train test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python -m jaxgan.main --experiment $(EXPERIMENT) --workdir $(WORKDIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) runs

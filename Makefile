# Two set-up commands, each working from a fresh clone:
#   make demo   creates .venv, installs emix, runs the heights example
#   make test   creates .venv, installs test dependencies, runs the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test bench clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m emix.demo

test: $(VENV)/.test-installed
	$(PY) -m pytest -n auto

bench: $(VENV)/.test-installed
	$(PY) benchmarks/bench_gmm.py
	$(PY) benchmarks/bench_hmm.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis

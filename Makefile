# Two commands do everything on a fresh Debian 12 machine:
#   make run   -- set up (system packages, .venv, Python deps) and solve the default scenario
#   make test  -- set up the same way and run the whole test suite (the docs' strict build included)
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := python3-venv python3-dev coinor-libipopt-dev libmumps-seq-dev liblapack-dev libblas-dev gfortran pkg-config dataset-fashion-mnist
OUT ?= results/default

.PHONY: run test docs setup system-deps clean

run: setup
	$(VENV)/bin/metatrading solve --scenario default --out $(OUT) --force

test: setup
	$(PY) -m pytest -q

setup: $(STAMP)

# the documentation site, into site/ (tests/test_docs.py builds it the same way)
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Ipopt (for cyipopt's build) and Fashion-MNIST come from Debian; skipped when already present.
system-deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES); \
	fi

$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -e '.[flower,test,docs]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) results

# The two commands of the README: `make demo` and `make test`.
# Both build the virtual environment .venv and install the system tools first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
CORES ?= 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test venv system dryrun clean

demo: system venv
	snakemake --cores $(CORES) all

test: system venv
	pytest -q

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

system:
	bash scripts/install_system_packages.sh

dryrun: venv
	snakemake --cores $(CORES) -n all

clean:
	rm -rf results logs .snakemake

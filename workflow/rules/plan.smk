# The cost plan (rnce.plan): {results}/plan.tsv before any heavy job, and the job resources that follow it.
# Every rule's runtime and mem_mb below are the plan's prediction for that job times plan.safety_factor.
from snakemake.io import apply_wildcards

from rnce.plan import report as plan_report
from rnce.settings_checks import check_settings

PLAN = plainly(plan_report.predict, config, REGIONS)
PLAN_FILES = [f"{RESULTS}/plan.tsv", f"{RESULTS}/plan_jobs.tsv", f"{RESULTS}/plan.txt"]


def brain_age_tables():
    """The brain-age cohorts' tables when all of them exist (a simulated one before the simulation: none; the
    brain-age job checks them itself)."""
    names = brain_age_cohorts()
    if not all(os.path.exists(participants_file(c)) for c in names):
        return {}
    return {c: _loaded(c) for c in names}


# Before any job, also in a dry run: settings the data make impossible (batch sizes against the images,
# age buckets against the ages), then a job that cannot fit the profile's walltime (the error prints the plan).
plainly(check_settings, config, PLAN.sizes, read_regions(REGIONS), brain_age_tables())
plainly(plan_report.check_walltime, PLAN)


def _plan_key(rule, wildcards):
    """A job's name in the plan: its benchmark file relative to {results}/benchmarks."""
    pattern = str(workflow._rules[rule].benchmark)
    return os.path.relpath(apply_wildcards(pattern, wildcards), f"{RESULTS}/benchmarks")


def planned_runtime(rule, default):
    """Resource function of ``rule``: its job's predicted minutes times the safety factor."""

    def runtime(wildcards):
        return PLAN.runtime_min(rule, _plan_key(rule, wildcards), default)

    return runtime


def planned_mem_mb(rule, default):
    """Resource function of ``rule``: its job's predicted peak MB times the safety factor."""

    def mem_mb(wildcards):
        return PLAN.mem_mb(rule, _plan_key(rule, wildcards), default)

    return mem_mb


def plan_tables(wildcards):
    """Input function of plan: the participants tables that exist before any job (not the simulated ones)."""
    return [participants_file(c) for c in COHORTS if not is_simulated(c)]


rule plan:
    input:
        plan_tables,
    output:
        table=PLAN_FILES[0],
        jobs=PLAN_FILES[1],
        text=PLAN_FILES[2],
    params:
        config=config,
        regions=REGIONS,
    log:
        f"{RESULTS}/logs/plan.log",
    benchmark:
        f"{RESULTS}/benchmarks/plan.tsv"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/plan.yaml"
    script:
        "../scripts/plan.py"

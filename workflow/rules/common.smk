# Cohort and shard tables, the roles and feature sets, and what `all` builds. Each stage's own input functions
# live in its rules file. No logic beyond lookups: reading and validating tables is rnce.cohort's job.
import functools
import os

from rnce import cohort as cohorts_lib
from rnce.features import KEYS as FEATURE_KEYS
from rnce.regions import read_regions
from rnce.ssl import jobs as ssl_jobs
from rnce.workflow_config import feature_sets

RESULTS = config["results"]
FS_STATS = ("aseg.stats", "lh.aparc.stats", "rh.aparc.stats")
# the 18 boxes: the workflow's own table unless the config names another
REGIONS = config.get("regions") or os.path.join(workflow.basedir, "config", "regions.tsv")
BOXES = read_regions(REGIONS)["name"].tolist()
SIM_DIR = f"{RESULTS}/demo"
PATCHES = f"{RESULTS}/patches"
SSL_METHODS = config["ssl"]["methods"]
IMAGES_PER_SHARD = config["sharding"]["images_per_shard"]
SIMULATED = list((config.get("simulate") or {}).get("cohorts", {}))


def simulated_table(name):
    """Path of the participants table the simulate rule writes for a simulated cohort."""
    return f"{SIM_DIR}/participants/{name}.tsv"


def is_simulated(name):
    """Whether a configured cohort reads a table that the simulate rule writes."""
    spec = config["cohorts"][name]
    return any(spec.get("participants") == simulated_table(s) for s in SIMULATED)


COHORTS = list(config["cohorts"])
IMAGED = [c for c in COHORTS if config["cohorts"][c].get("images", True)]


@functools.cache
def _loaded(name):
    return cohorts_lib.assign_shards(cohorts_lib.load_cohort(name, config["cohorts"][name], RESULTS), IMAGES_PER_SHARD)


def cohort_table(name):
    """The validated, sharded table of one cohort (after the simulation, for simulated ones)."""
    if is_simulated(name):
        checkpoints.simulate.get()
    return _loaded(name)


# Tables that exist before any job runs are validated now, before the DAG is built.
for _name in COHORTS:
    if not is_simulated(_name):
        plainly(_loaded, _name)


@functools.cache
def _by_shard(name):
    return dict(tuple(_loaded(name).groupby("shard")))


def shards(name):
    cohort_table(name)
    return sorted(_by_shard(name))


def _shard_rows(wildcards):
    cohort_table(wildcards.cohort)
    return _by_shard(wildcards.cohort)[wildcards.shard]


@functools.cache
def backend(name):
    """The structural-feature backend of a cohort (resolved by rnce.cohort)."""
    return cohorts_lib.features_backend(name, config["cohorts"][name])


def cohort_patch_shards(wildcards):
    return expand(f"{RESULTS}/patches/{wildcards.cohort}/shard-{{shard}}", shard=shards(wildcards.cohort))


def pretrain_cohorts():
    return [c for c in COHORTS if "pretrain" in config["cohorts"][c]["roles"]]


def _served_patches(cohorts):
    """The patch shards of ``cohorts`` and the passed lists of their registration QC (what PatchStore serves)."""
    return [f"{PATCHES}/{c}/shard-{s}" for c in cohorts for s in shards(c)] + [f"{PATCHES}/{c}/passed.tsv"
                                                                              for c in cohorts]


def pretrain_patch_shards(wildcards):
    return _served_patches(pretrain_cohorts())


def imaged_patch_shards(wildcards):
    return _served_patches(IMAGED)


def evaluate_cohorts():
    return [c for c in COHORTS if "evaluate" in config["cohorts"][c]["roles"]]


def brain_age_cohorts():
    return [c for c in COHORTS if "brain_age" in config["cohorts"][c]["roles"]]


def _feature_sets(key, cohorts):
    """<key>.feature_sets, or the default sets of these cohorts (rnce.workflow_config.feature_sets)."""
    return feature_sets(config[key]["feature_sets"], key, all(c in IMAGED for c in cohorts), SSL_METHODS,
                        bool(pretrain_cohorts()))


FEATURE_SETS = _feature_sets("evaluate", evaluate_cohorts())
BAG_SETS = _feature_sets("brain_age", brain_age_cohorts())


def _specs(cohorts):
    """{name: config entry} of cohorts, for jobs that read their tables themselves (params that are known
    before the simulation runs: a params function reading the tables would wait on the checkpoint)."""
    return {c: config["cohorts"][c] for c in cohorts}


def participants_file(name):
    """The participants table a cohort is read from (a BIDS root's participants.tsv)."""
    spec = config["cohorts"][name]
    return spec.get("participants") or os.path.join(spec["bids"], "participants.tsv")


def _tables(cohorts):
    """The cohorts' tables, read by the job itself."""
    return {"participants": [participants_file(c) for c in cohorts]}


def _tables_and_qc(cohorts, feature_sets):
    """The cohorts' tables, and the QC tables saying which images have no features (fs) or no embedding."""
    tables = _tables(cohorts)
    if any(f != "fs" for f in feature_sets):
        tables["registration"] = [f"{RESULTS}/qc/registration_{c}.tsv" for c in cohorts if c in IMAGED]
    if "fs" in feature_sets:
        tables["exclusions"] = f"{RESULTS}/features/exclusions.tsv"
    return tables


def feature_set_table(wildcards):
    """Input function: the table of one feature set (fs: the harmonized features; intensity: the intensity
    baseline; else an embedding)."""
    if wildcards.feature_set == "fs":
        return f"{RESULTS}/features/harmonized.tsv"
    if wildcards.feature_set == "intensity":
        return f"{RESULTS}/features/intensity.tsv"
    return f"{RESULTS}/embeddings/{wildcards.feature_set}.tsv"


def simulated_genetics_outputs():
    """Genotypes and cell-type annotations, written when a gwas cohort is simulated."""
    if "gwas" not in SIMULATED:
        return []
    return [directory(f"{SIM_DIR}/annotations")] + [f"{SIM_DIR}/genotypes/gwas.{ext}" for ext in ("bed", "bim", "fam")]


def simulate_outputs():
    return [simulated_table(s) for s in SIMULATED] + ([f"{SIM_DIR}/ground_truth.json"] if SIMULATED else [])


def all_outputs(wildcards):
    """Everything `rule all` builds; each stage adds its final outputs here."""
    return (
        simulate_outputs()
        + [f"{RESULTS}/plan.tsv"]
        + expand(f"{RESULTS}/inventory/{{cohort}}.tsv", cohort=IMAGED)
        + [f"{RESULTS}/features/harmonized.tsv", f"{RESULTS}/features/auxiliary.tsv", f"{RESULTS}/features/qc.png"]
        + expand(f"{RESULTS}/qc/registration_{{cohort}}.tsv", cohort=IMAGED)
        + ssl_outputs()
        + evaluation_outputs()
        + brain_age_outputs()
        + gwas_outputs()
    )


wildcard_constraints:
    cohort="|".join(COHORTS) if COHORTS else "none",
    shard=r"\d{4}",
    key=r"[0-9a-f]{12}",
    box="|".join(BOXES),
    feature_set="|".join(dict.fromkeys(FEATURE_SETS + BAG_SETS)),
    cell_type=r"[A-Za-z0-9_.-]+",

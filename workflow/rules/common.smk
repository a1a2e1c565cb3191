# Cohort and shard tables, and the input functions of the rules. No logic beyond lookups:
# reading and validating tables is rnce.cohort's job.
import functools

from rnce import cohort as cohorts_lib

RESULTS = config["results"]
SIM_DIR = f"{RESULTS}/demo"
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
    return cohorts_lib.assign_shards(cohorts_lib.load_cohort(name, config["cohorts"][name]), IMAGES_PER_SHARD)


def cohort_table(name):
    """The validated, sharded table of one cohort (after the simulation, for simulated ones)."""
    if is_simulated(name):
        checkpoints.simulate.get()
    return _loaded(name)


# Tables that exist before any job runs are validated now, before the DAG is built.
for _name in COHORTS:
    if not is_simulated(_name):
        _loaded(_name)


def shards(name):
    return sorted(cohort_table(name)["shard"].unique())


def _shard_rows(wildcards):
    table = cohort_table(wildcards.cohort)
    return table[table["shard"] == wildcards.shard]


def shard_images(wildcards):
    """Input function: the image files of one shard."""
    return _shard_rows(wildcards)["t1w"].tolist()


def shard_records(wildcards):
    """Params function: the rows of one shard (its membership decides when it reruns)."""
    return _shard_rows(wildcards)[["participant_id", "session_id", "t1w"]].to_dict("records")


def cohort_inventories(wildcards):
    return expand(f"{RESULTS}/inventory/{wildcards.cohort}/shard-{{shard}}.tsv", shard=shards(wildcards.cohort))


def simulated_genetics_outputs():
    """Genotypes and cell-type annotations, written when a gwas cohort is simulated."""
    if "gwas" not in SIMULATED:
        return []
    return [directory(f"{SIM_DIR}/annotations")] + [f"{SIM_DIR}/genotypes/gwas.{ext}" for ext in ("bed", "bim", "fam")]


def simulate_outputs():
    return [simulated_table(s) for s in SIMULATED] + ([f"{SIM_DIR}/ground_truth.json"] if SIMULATED else [])


def all_outputs(wildcards):
    """Everything `rule all` builds; each stage adds its final outputs here."""
    return simulate_outputs() + expand(f"{RESULTS}/inventory/{{cohort}}.tsv", cohort=IMAGED)


wildcard_constraints:
    cohort="|".join(COHORTS) if COHORTS else "none",
    shard=r"\d{4}",

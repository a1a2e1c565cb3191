# Cohort and shard tables, and the input functions of the rules. No logic beyond lookups:
# reading and validating tables is rnce.cohort's job.
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
        _loaded(_name)


@functools.cache
def _by_shard(name):
    return dict(tuple(_loaded(name).groupby("shard")))


def shards(name):
    cohort_table(name)
    return sorted(_by_shard(name))


def _shard_rows(wildcards):
    cohort_table(wildcards.cohort)
    return _by_shard(wildcards.cohort)[wildcards.shard]


def shard_images(wildcards):
    """Input function: the image files of one shard."""
    return _shard_rows(wildcards)["t1w"].tolist()


def shard_records(wildcards):
    """Params function: the rows of one shard (its membership decides when it reruns)."""
    return _shard_rows(wildcards)[["participant_id", "session_id", "t1w"]].to_dict("records")


def cohort_inventories(wildcards):
    return expand(f"{RESULTS}/inventory/{wildcards.cohort}/shard-{{shard}}.tsv", shard=shards(wildcards.cohort))


@functools.cache
def backend(name):
    """The structural-feature backend of a cohort (resolved by rnce.cohort)."""
    return cohorts_lib.features_backend(name, config["cohorts"][name])


def features_inputs(wildcards):
    """Input function of features_shard: what the shard's features are made from.

    ants: the images; recon_all: the per-image recon-all markers; subjects_dir:
    the stats files that exist (a subject without them is excluded, not missing).
    """
    rows = _shard_rows(wildcards)
    kind = backend(wildcards.cohort)
    if kind == "ants":
        return rows["t1w"].tolist()
    if kind == "recon_all":
        return expand(f"{RESULTS}/features/recon_all/{wildcards.cohort}/{{key}}.done", key=rows["image_key"])
    stats = [os.path.join(d, "stats", f) for d in rows["freesurfer_dir"] for f in FS_STATS]
    return [f for f in stats if os.path.exists(f)]


def features_records(wildcards):
    """Params function of features_shard: the shard's rows, with covariates and sources."""
    columns = FEATURE_KEYS + [c for c in ("t1w", "freesurfer_dir") if c in _shard_rows(wildcards)]
    return _shard_rows(wildcards)[columns].to_dict("records")


def features_backend_param(wildcards):
    return backend(wildcards.cohort)


def recon_all_row(wildcards):
    table = cohort_table(wildcards.cohort)
    return table[table["image_key"] == wildcards.key].iloc[0]


def recon_all_image(wildcards):
    return recon_all_row(wildcards)["t1w"]


def recon_all_subject(wildcards):
    """Params function: (subjects_dir, subject id) where recon-all writes this image's subject."""
    folder = recon_all_row(wildcards)["freesurfer_dir"]
    return {"subjects_dir": os.path.dirname(folder), "subject_id": os.path.basename(folder)}


def cohort_patch_shards(wildcards):
    return expand(f"{RESULTS}/patches/{wildcards.cohort}/shard-{{shard}}", shard=shards(wildcards.cohort))


def all_feature_shards(wildcards):
    return [f"{RESULTS}/features/shards/{c}/shard-{s}.tsv" for c in COHORTS for s in shards(c)]


def all_exclusion_shards(wildcards):
    return [f"{RESULTS}/features/shards/{c}/shard-{s}.exclusions.tsv" for c in COHORTS for s in shards(c)]


def pretrain_cohorts():
    return [c for c in COHORTS if "pretrain" in config["cohorts"][c]["roles"]]


def pretrain_patch_shards(wildcards):
    return [f"{PATCHES}/{c}/shard-{s}" for c in pretrain_cohorts() for s in shards(c)]


def imaged_patch_shards(wildcards):
    return [f"{PATCHES}/{c}/shard-{s}" for c in IMAGED for s in shards(c)]


def ssl_metric_names(wildcards):
    """Params function: the training jobs of one method, in the order of ssl_metrics."""
    if wildcards.method in ("models_genesis", "lssl"):
        return ["model"]
    return [f"encoder {b}" for b in BOXES] + ["aggregator"]


def ssl_metrics(wildcards):
    folder = f"{RESULTS}/ssl/{wildcards.method}/metrics"
    if wildcards.method in ("models_genesis", "lssl"):
        return [f"{folder}/model.tsv"]
    return [f"{folder}/encoder_{b}.tsv" for b in BOXES] + [f"{folder}/aggregator.tsv"]


def lssl_visits(wildcards):
    """Params function: age of every pretrain image (LSSL orders each subject's visits by it)."""
    if wildcards.method != "lssl":
        return []
    return [{"cohort": c, **row} for c in pretrain_cohorts()
            for row in cohort_table(c)[["participant_id", "session_id", "age"]].to_dict("records")]


def embedding_models(wildcards):
    """Input function of embed: the aggregator and encoders, or the reconstruction model."""
    if wildcards.method in ("models_genesis", "lssl"):
        return {"model": f"{RESULTS}/ssl/{wildcards.method}/model.pt"}
    return {"model": f"{RESULTS}/ssl/{wildcards.method}/aggregator.pt", "encoders": method_encoders(wildcards)}


def ssl_outputs():
    """Embeddings and loss curves of every configured SSL method (when a cohort pretrains)."""
    if not pretrain_cohorts():
        return []
    return expand(f"{RESULTS}/embeddings/{{method}}.tsv", method=SSL_METHODS) + expand(
        f"{RESULTS}/ssl/{{method}}/loss_curves.png", method=SSL_METHODS) + diagnostics_outputs()


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


def evaluate_specs():
    return _specs(evaluate_cohorts())


def brain_age_specs():
    return _specs(brain_age_cohorts())


def participants_file(name):
    """The participants table a cohort is read from (a BIDS root's participants.tsv)."""
    spec = config["cohorts"][name]
    return spec.get("participants") or os.path.join(spec["bids"], "participants.tsv")


def _tables(cohorts):
    """The cohorts' tables, read by the job itself."""
    return {"participants": [participants_file(c) for c in cohorts]}


def gwas_cohort_tables(wildcards):
    return _tables([GWAS_COHORT])


def _tables_and_qc(cohorts, feature_sets):
    """The cohorts' tables, and the QC tables saying which images have no features (fs) or no embedding."""
    tables = _tables(cohorts)
    if any(f != "fs" for f in feature_sets):
        tables["registration"] = [f"{RESULTS}/qc/registration_{c}.tsv" for c in cohorts if c in IMAGED]
    if "fs" in feature_sets:
        tables["exclusions"] = f"{RESULTS}/features/exclusions.tsv"
    return tables


def evaluation_qc_tables(wildcards):
    """Input function of evaluate_labels."""
    return _tables_and_qc(evaluate_cohorts(), FEATURE_SETS)


def brain_age_qc_tables(wildcards):
    """Input function of brain_age_split."""
    return _tables_and_qc(brain_age_cohorts(), BAG_SETS)


def feature_set_table(wildcards):
    """Input function: the table of one feature set (fs: the harmonized features; intensity: the intensity
    baseline; else an embedding)."""
    if wildcards.feature_set == "fs":
        return f"{RESULTS}/features/harmonized.tsv"
    if wildcards.feature_set == "intensity":
        return f"{RESULTS}/features/intensity.tsv"
    return f"{RESULTS}/embeddings/{wildcards.feature_set}.tsv"


def gwas_cohort():
    """The one cohort with the role gwas (None when there is none)."""
    found = [c for c in COHORTS if "gwas" in config["cohorts"][c]["roles"]]
    if len(found) > 1:
        raise ValueError(f"cohorts {found} all have the role gwas; the GWAS runs on one cohort: merge their "
                         "genotypes into one PLINK fileset and give one cohort the role")
    if found and found[0] not in brain_age_cohorts():
        raise ValueError(f"cohort '{found[0]}' has the role gwas but not brain_age: its BAG is the phenotype")
    return found[0] if found else None


GWAS_COHORT = gwas_cohort()
GWAS_SETS = [f for f in (config["gwas"]["phenotypes"] or BAG_SETS)]
if GWAS_COHORT and set(GWAS_SETS) - set(BAG_SETS):
    raise ValueError(f"config gwas.phenotypes: {sorted(set(GWAS_SETS) - set(BAG_SETS))} have no BAG "
                     f"(brain_age feature sets: {BAG_SETS})")
GENOTYPES = config["cohorts"][GWAS_COHORT]["genotypes"] if GWAS_COHORT else None
QC_PREFIX = f"{RESULTS}/gwas/qc/genotypes"


def genotype_files(wildcards):
    return [f"{GENOTYPES}.{ext}" for ext in ("bed", "bim", "fam")]


def gwas_spec():
    return _specs([GWAS_COHORT] if GWAS_COHORT else [])


LDSC = config["ldsc"]
LDSC_BUILT = f"{RESULTS}/ldsc/reference"
LDSC_REFERENCE = LDSC["reference"] or f"{LDSC_BUILT}/chr"
LDSC_WEIGHTS = LDSC["weights"] or LDSC_REFERENCE
LDSC_SNPLIST = LDSC["snplist"] or f"{LDSC_BUILT}/snplist.tsv"


def _cell_type_beds():
    folder = LDSC["cell_type_beds"]
    if folder is None and GWAS_COHORT and is_simulated(GWAS_COHORT):
        folder = f"{SIM_DIR}/annotations"
    return folder


CELL_TYPE_DIR = _cell_type_beds()


@functools.cache
def cell_types():
    """Cell types: the .bed files of ldsc.cell_type_beds (after the simulation, for the simulated ones)."""
    if CELL_TYPE_DIR is None:
        return []
    if GWAS_COHORT and is_simulated(GWAS_COHORT) and CELL_TYPE_DIR == f"{SIM_DIR}/annotations":
        checkpoints.simulate.get()
    return sorted(f[:-4] for f in os.listdir(CELL_TYPE_DIR) if f.endswith(".bed"))


def cell_type_names(wildcards):
    return cell_types()


def cell_type_bed(wildcards):
    return f"{CELL_TYPE_DIR}/{wildcards.cell_type}.bed"


def cell_type_scores(wildcards):
    return expand(f"{RESULTS}/ldsc/cell_types/{{cell_type}}", cell_type=cell_types())


def enrichment_tables(wildcards):
    if CELL_TYPE_DIR is None:
        return []
    return expand(f"{RESULTS}/ldsc/{{feature_set}}_bag.cell_types.tsv", feature_set=GWAS_SETS)


def ldsc_reference_inputs(wildcards):
    """What the regression needs besides the munged sumstats: the built reference unless all are given."""
    return [] if LDSC["reference"] and LDSC["weights"] else [LDSC_BUILT]


def gwas_outputs():
    if not GWAS_COHORT:
        return []
    return [f"{RESULTS}/gwas/qc_report.tsv"] + [
        f"{RESULTS}/gwas/{f}_bag.{ext}" for f in GWAS_SETS for ext in ("sumstats", "loci.tsv", "summary.tsv")] + [
        f"{RESULTS}/fuma/{f}_bag.txt.gz" for f in GWAS_SETS] + [
        f"{RESULTS}/ldsc/h2.tsv", f"{RESULTS}/ldsc/rg.tsv", f"{RESULTS}/figures/ldsc_cell_types.png"]


def brain_age_outputs():
    if not brain_age_cohorts():
        return []
    return [f"{RESULTS}/brain_age/{f}_bag.tsv" for f in BAG_SETS] + [
        f"{RESULTS}/brain_age/bag_correlation.tsv", f"{RESULTS}/figures/bag_correlation.png",
        f"{RESULTS}/figures/brain_age_predicted.png"]


def evaluation_outputs():
    if not evaluate_cohorts():
        return []
    return [f"{RESULTS}/evaluation/scores.tsv", f"{RESULTS}/evaluation/pvalues.tsv",
            f"{RESULTS}/figures/figure2_probes.png"]


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

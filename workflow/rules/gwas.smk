# GWAS of the brain-age gaps (METHOD §9): validation and QC once, then one PLINK 2 --glm per BAG,
# its loci and plots, and the FUMA input file.


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


def gwas_cohort_tables(wildcards):
    return _tables([GWAS_COHORT])


def gwas_outputs():
    if not GWAS_COHORT:
        return []
    return [f"{RESULTS}/gwas/qc_report.tsv"] + [
        f"{RESULTS}/gwas/{f}_bag.{ext}" for f in GWAS_SETS for ext in ("sumstats", "loci.tsv", "summary.tsv")] + [
        f"{RESULTS}/fuma/{f}_bag.txt.gz" for f in GWAS_SETS] + [
        f"{RESULTS}/ldsc/h2.tsv", f"{RESULTS}/ldsc/rg.tsv", f"{RESULTS}/figures/ldsc_cell_types.png"]


rule gwas_qc:
    input:
        genotype_files,
        unpack(gwas_cohort_tables),
        split=f"{RESULTS}/brain_age/split.tsv",
        features=f"{RESULTS}/features/harmonized.tsv",
    output:
        multiext(QC_PREFIX, ".bed", ".bim", ".fam"),
        report=f"{RESULTS}/gwas/qc_report.tsv",
        pcs=f"{RESULTS}/gwas/pcs.tsv",
    params:
        genotypes=GENOTYPES,
        prefix=QC_PREFIX,
        cohort=gwas_spec(),
        results=RESULTS,
        thresholds={k: config["gwas"][k] for k in ("geno", "mind", "maf", "hwe", "king")},
        min_samples=config["gwas"]["min_samples"],
        n_pcs=config["gwas"]["n_pcs"],
        approx_above=config["gwas"]["pca_approx_above"],
    log:
        f"{RESULTS}/logs/gwas/qc.log",
    benchmark:
        f"{RESULTS}/benchmarks/gwas/qc.tsv"
    threads: 2
    resources:
        mem_mb=planned_mem_mb("gwas_qc", 8000),
        runtime=planned_runtime("gwas_qc", 120),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/gwas_qc.py"


rule gwas_glm:
    input:
        multiext(QC_PREFIX, ".bed", ".bim", ".fam"),
        unpack(gwas_cohort_tables),
        bag=f"{RESULTS}/brain_age/{{feature_set}}_bag.tsv",
        features=f"{RESULTS}/features/harmonized.tsv",
        pcs=f"{RESULTS}/gwas/pcs.tsv",
    output:
        f"{RESULTS}/gwas/{{feature_set}}_bag.sumstats",
    params:
        prefix=QC_PREFIX,
        cohort=gwas_spec(),
        results=RESULTS,
    log:
        f"{RESULTS}/logs/gwas/{{feature_set}}_glm.log",
    benchmark:
        f"{RESULTS}/benchmarks/gwas/{{feature_set}}_glm.tsv"
    threads: 2
    resources:
        mem_mb=planned_mem_mb("gwas_glm", 8000),
        runtime=planned_runtime("gwas_glm", 120),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/gwas_glm.py"


rule gwas_report:
    input:
        multiext(QC_PREFIX, ".bed", ".bim", ".fam"),
        sumstats=f"{RESULTS}/gwas/{{feature_set}}_bag.sumstats",
    output:
        loci=f"{RESULTS}/gwas/{{feature_set}}_bag.loci.tsv",
        summary=f"{RESULTS}/gwas/{{feature_set}}_bag.summary.tsv",
        manhattan=report(f"{RESULTS}/figures/{{feature_set}}_bag_manhattan.png", category="GWAS"),
        qq=report(f"{RESULTS}/figures/{{feature_set}}_bag_qq.png", category="GWAS"),
    params:
        prefix=QC_PREFIX,
        r2=config["gwas"]["clump_r2"],
        kb=config["gwas"]["clump_kb"],
    log:
        f"{RESULTS}/logs/gwas/{{feature_set}}_report.log",
    benchmark:
        f"{RESULTS}/benchmarks/gwas/{{feature_set}}_report.tsv"
    resources:
        mem_mb=planned_mem_mb("gwas_report", 4000),
        runtime=planned_runtime("gwas_report", 30),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/gwas_report.py"


rule fuma:
    input:
        f"{RESULTS}/gwas/{{feature_set}}_bag.sumstats",
    output:
        f"{RESULTS}/fuma/{{feature_set}}_bag.txt.gz",
    log:
        f"{RESULTS}/logs/fuma/{{feature_set}}_bag.log",
    benchmark:
        f"{RESULTS}/benchmarks/fuma/{{feature_set}}_bag.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("fuma", 2000),
        runtime=planned_runtime("fuma", 10),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/fuma_export.py"

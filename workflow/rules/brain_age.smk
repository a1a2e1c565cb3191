# Brain age and brain-age gaps (METHOD §8): one balanced training subset, one model per feature set,
# the phenotypic correlation of the BAGs and the figures.


def brain_age_specs():
    return _specs(brain_age_cohorts())


def brain_age_qc_tables(wildcards):
    """Input function of brain_age_split."""
    return _tables_and_qc(brain_age_cohorts(), BAG_SETS)


def brain_age_outputs():
    if not brain_age_cohorts():
        return []
    return [f"{RESULTS}/brain_age/{f}_bag.tsv" for f in BAG_SETS] + [
        f"{RESULTS}/brain_age/bag_correlation.tsv", f"{RESULTS}/figures/bag_correlation.png",
        f"{RESULTS}/figures/brain_age_predicted.png"]


rule brain_age_split:
    input:
        unpack(brain_age_qc_tables),
    output:
        split=f"{RESULTS}/brain_age/split.tsv",
        buckets=f"{RESULTS}/brain_age/buckets.tsv",
    params:
        cohorts=brain_age_specs(),
        results=RESULTS,
        buckets=config["brain_age"]["age_buckets"],
        per_bucket=config["brain_age"]["train_per_bucket"],
        short_buckets=config["brain_age"]["short_buckets"],
        seed=config["brain_age"]["seed"],
    log:
        f"{RESULTS}/logs/brain_age/split.log",
    benchmark:
        f"{RESULTS}/benchmarks/brain_age/split.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("brain_age_split", 2000),
        runtime=planned_runtime("brain_age_split", 10),
    conda:
        "../../envs/brain_age.yaml"
    script:
        "../scripts/brain_age_split.py"


rule brain_age_model:
    input:
        split=f"{RESULTS}/brain_age/split.tsv",
        features=feature_set_table,
    output:
        bag=f"{RESULTS}/brain_age/{{feature_set}}_bag.tsv",
        metrics=f"{RESULTS}/brain_age/metrics/{{feature_set}}.tsv",
    params:
        l2=config["brain_age"]["l2"],
        folds=config["brain_age"]["cv_folds"],
        seed=config["brain_age"]["seed"],
    log:
        f"{RESULTS}/logs/brain_age/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/brain_age/{{feature_set}}.tsv"
    resources:
        mem_mb=planned_mem_mb("brain_age_model", 4000),
        runtime=planned_runtime("brain_age_model", 20),
    conda:
        "../../envs/brain_age.yaml"
    script:
        "../scripts/brain_age_model.py"


rule brain_age_summary:
    input:
        bags=expand(f"{RESULTS}/brain_age/{{feature_set}}_bag.tsv", feature_set=BAG_SETS),
        metrics=expand(f"{RESULTS}/brain_age/metrics/{{feature_set}}.tsv", feature_set=BAG_SETS),
    output:
        metrics=f"{RESULTS}/brain_age/metrics.tsv",
        baselines=f"{RESULTS}/brain_age/baselines.tsv",
        groups=f"{RESULTS}/brain_age/groups.tsv",
        correlation=f"{RESULTS}/brain_age/bag_correlation.tsv",
        heatmap=report(f"{RESULTS}/figures/bag_correlation.png", category="Brain age"),
        scatter=report(f"{RESULTS}/figures/brain_age_predicted.png", category="Brain age"),
        bag_vs_age=report(f"{RESULTS}/figures/brain_age_bag_vs_age.png", category="Brain age"),
    params:
        feature_sets=BAG_SETS,
    log:
        f"{RESULTS}/logs/brain_age/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/brain_age/summary.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("brain_age_summary", 2000),
        runtime=planned_runtime("brain_age_summary", 10),
    conda:
        "../../envs/brain_age.yaml"
    script:
        "../scripts/brain_age_summary.py"

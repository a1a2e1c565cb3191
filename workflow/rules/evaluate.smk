# Biomarker evaluation (METHOD §7): task labels of the evaluate cohorts, bootstrap scores of
# linear probes per feature set, pairwise permutation tests and the Figure 2 analogue.


def evaluate_specs():
    return _specs(evaluate_cohorts())


def evaluation_qc_tables(wildcards):
    """Input function of evaluate_labels."""
    return _tables_and_qc(evaluate_cohorts(), FEATURE_SETS)


def evaluation_outputs():
    if not evaluate_cohorts():
        return []
    return [f"{RESULTS}/evaluation/scores.tsv", f"{RESULTS}/evaluation/pvalues.tsv",
            f"{RESULTS}/figures/figure2_probes.png"]


def ssl_epochs():
    """Epochs of each SSL stage (Figure 2's subtitle says how long the compared methods trained)."""
    ssl = config["ssl"]
    return {"stage1": ssl["stage1"]["epochs"], "stage2": ssl["stage2"]["epochs"],
            "reconstruction": ssl["reconstruction"]["epochs"]}


rule evaluate_labels:
    input:
        unpack(evaluation_qc_tables),
    output:
        labels=f"{RESULTS}/evaluation/labels.tsv",
        tasks=f"{RESULTS}/evaluation/tasks.tsv",
    params:
        cohorts=evaluate_specs(),
        results=RESULTS,
        tasks=config["evaluate"]["tasks"],
        conversion_years=config["evaluate"]["conversion_years"],
        n_holdout=config["evaluate"]["n_holdout"],
        min_class_size=config["evaluate"]["min_class_size"],
    log:
        f"{RESULTS}/logs/evaluation/labels.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluation/labels.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("evaluate_labels", 2000),
        runtime=planned_runtime("evaluate_labels", 10),
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_labels.py"


rule evaluate_probe:
    input:
        labels=f"{RESULTS}/evaluation/labels.tsv",
        tasks=f"{RESULTS}/evaluation/tasks.tsv",
        features=feature_set_table,
    output:
        f"{RESULTS}/evaluation/bootstrap/{{feature_set}}.tsv",
    params:
        n_boot=config["evaluate"]["n_boot"],
        n_holdout=config["evaluate"]["n_holdout"],
        seed=config["evaluate"]["seed"],
        l2=config["evaluate"]["l2"],
        l2_grid=config["evaluate"]["l2_grid"],
        inner_folds=config["evaluate"]["inner_folds"],
    log:
        f"{RESULTS}/logs/evaluation/bootstrap/{{feature_set}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluation/bootstrap/{{feature_set}}.tsv"
    threads: 1
    resources:
        mem_mb=planned_mem_mb("evaluate_probe", 4000),
        runtime=planned_runtime("evaluate_probe", 60),
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_probe.py"


rule evaluate_summary:
    input:
        tasks=f"{RESULTS}/evaluation/tasks.tsv",
        bootstrap=expand(f"{RESULTS}/evaluation/bootstrap/{{feature_set}}.tsv", feature_set=FEATURE_SETS),
    output:
        scores=f"{RESULTS}/evaluation/scores.tsv",
        pvalues=f"{RESULTS}/evaluation/pvalues.tsv",
        figure=report(f"{RESULTS}/figures/figure2_probes.png", category="Evaluation"),
    params:
        feature_sets=FEATURE_SETS,
        n_perm=config["evaluate"]["n_perm"],
        seed=config["evaluate"]["seed"],
        epochs=ssl_epochs(),
    log:
        f"{RESULTS}/logs/evaluation/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluation/summary.tsv"
    resources:
        mem_mb=planned_mem_mb("evaluate_summary", 4000),
        runtime=planned_runtime("evaluate_summary", 30),
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_summary.py"

# Structural features (rnce.features): recon-all, SUBJECTS_DIR ingest or the ANTs fallback,
# per shard, then one table of all cohorts with its QC.


rule recon_all:
    input:
        recon_all_image,
    output:
        touch(f"{RESULTS}/features/recon_all/{{cohort}}/{{key}}.done"),
    params:
        subject=recon_all_subject,
    log:
        f"{RESULTS}/logs/features/recon_all/{{cohort}}/{{key}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/recon_all/{{cohort}}/{{key}}.tsv"
    threads: 4
    resources:
        mem_mb=planned_mem_mb("recon_all", 8000),
        runtime=planned_runtime("recon_all", 720),
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/recon_all.py"


rule features_shard:
    input:
        sources=features_inputs,
        regions=REGIONS,
    output:
        features=f"{RESULTS}/features/shards/{{cohort}}/shard-{{shard}}.tsv",
        exclusions=f"{RESULTS}/features/shards/{{cohort}}/shard-{{shard}}.exclusions.tsv",
    params:
        records=features_records,
        backend=features_backend_param,
        thickness_iterations=config["features"]["ants_thickness_iterations"],
        incomplete=config["features"]["incomplete"],
    log:
        f"{RESULTS}/logs/features/{{cohort}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{cohort}}/shard-{{shard}}.tsv"
    resources:
        mem_mb=planned_mem_mb("features_shard", 4000),
        runtime=planned_runtime("features_shard", 120),
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/features_shard.py"


rule features_raw:
    input:
        features=all_feature_shards,
        exclusions=all_exclusion_shards,
    output:
        raw=f"{RESULTS}/features/raw.tsv",
        exclusions=f"{RESULTS}/features/exclusions.tsv",
        outliers=f"{RESULTS}/features/outliers.tsv",
        figure=report(f"{RESULTS}/features/qc.png", category="Structural features"),
    log:
        f"{RESULTS}/logs/features/raw.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/raw.tsv"
    resources:
        mem_mb=planned_mem_mb("features_raw", 4000),
        runtime=planned_runtime("features_raw", 30),
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/features_raw.py"

# Structural features (rnce.features): recon-all, SUBJECTS_DIR ingest or the ANTs fallback,
# per shard, then one table of all cohorts with its QC.


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


def all_feature_shards(wildcards):
    return [f"{RESULTS}/features/shards/{c}/shard-{s}.tsv" for c in COHORTS for s in shards(c)]


def all_exclusion_shards(wildcards):
    return [f"{RESULTS}/features/shards/{c}/shard-{s}.exclusions.tsv" for c in COHORTS for s in shards(c)]


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
        ants_resolution=config["features"]["ants_resolution_mm"],
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

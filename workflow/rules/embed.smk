# Embeddings (rnce.ssl.embed): every imaged image through a method's trained models, and the regional
# (stage-1) feature sets. GPU jobs like training (`gpu` resource).


def embedding_models(wildcards):
    """Input function of embed: the aggregator and encoders, or the reconstruction model."""
    if wildcards.method in ("models_genesis", "lssl"):
        return {"model": f"{RESULTS}/ssl/{wildcards.method}/model.pt"}
    return {"model": f"{RESULTS}/ssl/{wildcards.method}/aggregator.pt", "encoders": method_encoders(wildcards)}


rule embed:
    input:
        unpack(embedding_models),
        shards=imaged_patch_shards,
        qc=expand(f"{RESULTS}/qc/registration_{{cohort}}.tsv", cohort=IMAGED),
    output:
        f"{RESULTS}/embeddings/{{method}}.tsv",
    params:
        cohorts=IMAGED,
        patch_root=PATCHES,
        boxes=BOXES,
    wildcard_constraints:
        method="|".join(SSL_METHODS) if SSL_METHODS else "none",
    log:
        f"{RESULTS}/logs/embeddings/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{method}}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=planned_mem_mb("embed", 8000),
        runtime=planned_runtime("embed", 120),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/embed.py"


rule embed_regional:
    input:
        encoders=method_encoders,
        shards=imaged_patch_shards,
        qc=expand(f"{RESULTS}/qc/registration_{{cohort}}.tsv", cohort=IMAGED),
    output:
        f"{RESULTS}/embeddings/{{method}}_regional.tsv",
    params:
        cohorts=IMAGED,
        pretrain=pretrain_cohorts(),
        patch_root=PATCHES,
        boxes=BOXES,
        components=config["ssl"]["regional_components"],
    wildcard_constraints:
        method="rnce|simclr|barlow_twins",
    log:
        f"{RESULTS}/logs/embeddings/{{method}}_regional.log",
    benchmark:
        f"{RESULTS}/benchmarks/embeddings/{{method}}_regional.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=planned_mem_mb("embed_regional", 8000),
        runtime=planned_runtime("embed_regional", 120),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/embed_regional.py"

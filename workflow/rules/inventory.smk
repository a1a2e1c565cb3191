# Header inventory of every image, per shard: what each file is, or why it cannot be used.


def shard_images(wildcards):
    """Input function: the image files of one shard."""
    return _shard_rows(wildcards)["t1w"].tolist()


def shard_records(wildcards):
    """Params function: the rows of one shard (its membership decides when it reruns)."""
    return _shard_rows(wildcards)[["participant_id", "session_id", "t1w"]].to_dict("records")


def cohort_inventories(wildcards):
    return expand(f"{RESULTS}/inventory/{wildcards.cohort}/shard-{{shard}}.tsv", shard=shards(wildcards.cohort))


rule inventory_shard:
    input:
        shard_images,
    output:
        f"{RESULTS}/inventory/{{cohort}}/shard-{{shard}}.tsv",
    params:
        records=shard_records,
    log:
        f"{RESULTS}/logs/inventory/{{cohort}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inventory/{{cohort}}/shard-{{shard}}.tsv"
    resources:
        mem_mb=planned_mem_mb("inventory_shard", 1000),
        runtime=planned_runtime("inventory_shard", 10),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/inventory_shard.py"


rule inventory_cohort:
    input:
        cohort_inventories,
    output:
        f"{RESULTS}/inventory/{{cohort}}.tsv",
    log:
        f"{RESULTS}/logs/inventory/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/inventory/{{cohort}}.tsv"
    localrule: True
    resources:
        mem_mb=planned_mem_mb("inventory_cohort", 1000),
        runtime=planned_runtime("inventory_cohort", 5),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/inventory_cohort.py"

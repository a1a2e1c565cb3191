# Self-supervised training (rnce.ssl): stage 1 per (method, box), stage 2 aggregator,
# the reconstruction baselines, and the embeddings of every image. Training jobs ask
# for one GPU (`gpu` resource; more GPUs in a profile = DDP through torchrun), write
# checkpoints under {results}/ssl/checkpoints/ and resume from them when rerun.


rule ssl_encoder:
    input:
        unpack(rnce_auxiliary),
        shards=pretrain_patch_shards,
    output:
        model=f"{RESULTS}/ssl/{{method}}/encoders/{{box}}.pt",
        metrics=f"{RESULTS}/ssl/{{method}}/metrics/encoder_{{box}}.tsv",
    params:
        stage="encoder",
        settings=encoder_settings,
        cohorts=pretrain_cohorts(),
        patch_root=PATCHES,
        checkpoints=f"{RESULTS}/ssl/checkpoints/{{method}}/encoder_{{box}}",
        boxes=[],
        visits=[],
    wildcard_constraints:
        method="rnce|simclr|barlow_twins",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/encoder_{{box}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/encoder_{{box}}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=720,
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_train.py"


rule ssl_aggregator:
    input:
        unpack(rnce_auxiliary),
        encoders=method_encoders,
        shards=pretrain_patch_shards,
    output:
        model=f"{RESULTS}/ssl/{{method}}/aggregator.pt",
        metrics=f"{RESULTS}/ssl/{{method}}/metrics/aggregator.tsv",
    params:
        stage="aggregator",
        settings=aggregator_settings,
        cohorts=pretrain_cohorts(),
        patch_root=PATCHES,
        checkpoints=f"{RESULTS}/ssl/checkpoints/{{method}}/aggregator",
        boxes=BOXES,
        visits=[],
    wildcard_constraints:
        method="rnce|simclr|barlow_twins",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/aggregator.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/aggregator.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_train.py"


rule ssl_reconstruction:
    input:
        shards=pretrain_patch_shards,
    output:
        model=f"{RESULTS}/ssl/{{method}}/model.pt",
        metrics=f"{RESULTS}/ssl/{{method}}/metrics/model.tsv",
    params:
        stage="model",
        settings=reconstruction_settings,
        cohorts=pretrain_cohorts(),
        patch_root=PATCHES,
        checkpoints=f"{RESULTS}/ssl/checkpoints/{{method}}/model",
        boxes=[],
        visits=lssl_visits,
    wildcard_constraints:
        method="models_genesis|lssl",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/model.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/model.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=1440,
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_train.py"


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
        mem_mb=8000,
        runtime=120,
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/embed.py"


rule ssl_curves:
    input:
        ssl_metrics,
    output:
        report(f"{RESULTS}/ssl/{{method}}/loss_curves.png", category="SSL training"),
    params:
        names=ssl_metric_names,
    wildcard_constraints:
        method="|".join(SSL_METHODS) if SSL_METHODS else "none",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/loss_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/loss_curves.tsv"
    localrule: True
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_curves.py"

# Self-supervised training (rnce.ssl): stage 1 per (method, box), stage 2 aggregator,
# the reconstruction baselines, and the embeddings of every image. Training jobs ask
# for one GPU (`gpu` resource; more GPUs in a profile = DDP through torchrun), write
# checkpoints under {results}/ssl/checkpoints/ and resume from them when rerun.


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


def ssl_outputs():
    """Embeddings and loss curves of every configured SSL method (when a cohort pretrains)."""
    if not pretrain_cohorts():
        return []
    return expand(f"{RESULTS}/embeddings/{{method}}.tsv", method=SSL_METHODS) + expand(
        f"{RESULTS}/ssl/{{method}}/loss_curves.png", method=SSL_METHODS) + diagnostics_outputs()


def rnce_auxiliary(wildcards):
    """Input function: the auxiliary matrix A, for R-NCE only (the other methods do not rerun with ComBat)."""
    if wildcards.method != "rnce":
        return {}
    return {"auxiliary": f"{RESULTS}/features/auxiliary.tsv",
            "auxiliary_boxes": f"{RESULTS}/features/auxiliary_boxes.json"}


def encoder_settings(wildcards):
    """Params function: the ssl settings a stage-1 job depends on."""
    return ssl_jobs.settings(config["ssl"], wildcards.method, "encoder", config["register"]["resolution_mm"])


def aggregator_settings(wildcards):
    return ssl_jobs.settings(config["ssl"], wildcards.method, "aggregator")


def reconstruction_settings(wildcards):
    return ssl_jobs.settings(config["ssl"], wildcards.method, "model")


def method_encoders(wildcards):
    return expand(f"{RESULTS}/ssl/{wildcards.method}/encoders/{{box}}.pt", box=BOXES)


def diagnostic_cohorts():
    """The imaged evaluate cohorts: images the SSL methods never trained on."""
    return [c for c in evaluate_cohorts() if c in IMAGED]


def diagnostics_inputs(wildcards):
    """Input function of ssl_diagnostics: one method's models, the evaluate cohorts' patch shards (and QC passed
    lists), the auxiliary matrix, and the simulated world's truth where an evaluate cohort is simulated."""
    inputs = {"encoders": method_encoders(wildcards), "aggregator": f"{RESULTS}/ssl/{wildcards.method}/aggregator.pt",
              "shards": _served_patches(diagnostic_cohorts()),
              "auxiliary": f"{RESULTS}/features/auxiliary.tsv", "auxiliary_boxes": f"{RESULTS}/features/auxiliary_boxes.json"}
    if any(c in SIMULATED for c in diagnostic_cohorts()):
        inputs["truth"] = f"{SIM_DIR}/truth"
    return inputs


def diagnostics_latents(wildcards):
    """Params function: the planted latents of the simulated evaluate cohorts."""
    return [f"{SIM_DIR}/truth/{c}_latent.tsv" for c in diagnostic_cohorts() if c in SIMULATED]


def diagnostics_outputs():
    """The diagnostics of every contrastive method, where an evaluate cohort has images."""
    if not diagnostic_cohorts() or not pretrain_cohorts():
        return []
    methods = [m for m in SSL_METHODS if m in ("rnce", "simclr", "barlow_twins")]
    ceiling = [f"{RESULTS}/ssl/ceiling.tsv"] if methods else []
    validation = expand(f"{RESULTS}/ssl/{{method}}/validation.tsv", method=methods) \
        if config["ssl"]["validation_fraction"] > 0 else []
    return expand(f"{RESULTS}/ssl/{{method}}/diagnostics.tsv", method=methods) + ceiling + validation


def ceiling_shards(wildcards):
    """Input function of ssl_ceiling: the patch shards (and QC passed lists) of the pretrain and the imaged
    evaluate cohorts."""
    return _served_patches(list(dict.fromkeys(pretrain_cohorts() + diagnostic_cohorts())))


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
        mem_mb=planned_mem_mb("ssl_encoder", 8000),
        runtime=planned_runtime("ssl_encoder", 720),
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
        mem_mb=planned_mem_mb("ssl_aggregator", 16000),
        runtime=planned_runtime("ssl_aggregator", 240),
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
        mem_mb=planned_mem_mb("ssl_reconstruction", 16000),
        runtime=planned_runtime("ssl_reconstruction", 1440),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_train.py"


rule ssl_diagnostics:
    input:
        unpack(diagnostics_inputs),
    output:
        f"{RESULTS}/ssl/{{method}}/diagnostics.tsv",
    params:
        cohorts=diagnostic_cohorts(),
        patch_root=PATCHES,
        boxes=BOXES,
        latents=diagnostics_latents,
    wildcard_constraints:
        method="rnce|simclr|barlow_twins",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/diagnostics.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/diagnostics.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=planned_mem_mb("ssl_diagnostics", 8000),
        runtime=planned_runtime("ssl_diagnostics", 60),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_diagnostics.py"


rule ssl_validation:
    input:
        encoders=method_encoders,
        aggregator=f"{RESULTS}/ssl/{{method}}/aggregator.pt",
        shards=pretrain_patch_shards,
        auxiliary=f"{RESULTS}/features/auxiliary.tsv",
        auxiliary_boxes=f"{RESULTS}/features/auxiliary_boxes.json",
    output:
        f"{RESULTS}/ssl/{{method}}/validation.tsv",
    params:
        cohorts=pretrain_cohorts(),
        patch_root=PATCHES,
        boxes=BOXES,
        encoder_settings=encoder_settings,
        aggregator_settings=aggregator_settings,
    wildcard_constraints:
        method="rnce|simclr|barlow_twins",
    log:
        f"{RESULTS}/logs/ssl/{{method}}/validation.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/{{method}}/validation.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=planned_mem_mb("ssl_validation", 8000),
        runtime=planned_runtime("ssl_validation", 60),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_validation.py"


rule ssl_ceiling:
    input:
        shards=ceiling_shards,
        auxiliary=f"{RESULTS}/features/auxiliary.tsv",
        auxiliary_boxes=f"{RESULTS}/features/auxiliary_boxes.json",
    output:
        f"{RESULTS}/ssl/ceiling.tsv",
    params:
        fit_cohorts=pretrain_cohorts(),
        score_cohorts=diagnostic_cohorts(),
        patch_root=PATCHES,
        boxes=BOXES,
    log:
        f"{RESULTS}/logs/ssl/ceiling.log",
    benchmark:
        f"{RESULTS}/benchmarks/ssl/ceiling.tsv"
    threads: 1
    resources:
        mem_mb=planned_mem_mb("ssl_ceiling", 8000),
        runtime=planned_runtime("ssl_ceiling", 60),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_ceiling.py"


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
        mem_mb=planned_mem_mb("ssl_curves", 2000),
        runtime=planned_runtime("ssl_curves", 10),
    conda:
        "../../envs/ssl.yaml"
    script:
        "../scripts/ssl_curves.py"

# ComBat harmonization (rnce.harmonize) and the auxiliary matrix A of R-NCE.


rule harmonize:
    input:
        raw=f"{RESULTS}/features/raw.tsv",
        regions=REGIONS,
    output:
        harmonized=f"{RESULTS}/features/harmonized.tsv",
        model=f"{RESULTS}/harmonize/combat_model.pkl",
        summary=f"{RESULTS}/harmonize/combat_model.json",
        auxiliary=f"{RESULTS}/features/auxiliary.tsv",
        boxes=f"{RESULTS}/features/auxiliary_boxes.json",
    params:
        method=config["harmonize"]["method"],
        covariates=config["harmonize"]["covariates"],
        min_images_per_site=config["harmonize"]["min_images_per_site"],
        small_sites=config["harmonize"]["small_sites"],
        learn_cohorts=config["harmonize"]["learn_cohorts"],
        reference_cohorts=pretrain_cohorts(),
    log:
        f"{RESULTS}/logs/harmonize.log",
    benchmark:
        f"{RESULTS}/benchmarks/harmonize.tsv"
    resources:
        mem_mb=planned_mem_mb("harmonize", 8000),
        runtime=planned_runtime("harmonize", 60),
    conda:
        "../../envs/harmonize.yaml"
    script:
        "../scripts/harmonize.py"

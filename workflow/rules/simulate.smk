# The simulated demo world (rnce.simulate): the default input of every stage.
# A checkpoint: the cohorts' shards are known only once their tables exist.


checkpoint simulate:
    output:
        tables=[simulated_table(s) for s in SIMULATED],
        truth=f"{SIM_DIR}/ground_truth.json",
        images=directory(f"{SIM_DIR}/images"),
        freesurfer=directory(f"{SIM_DIR}/freesurfer"),
        truth_dir=directory(f"{SIM_DIR}/truth"),
        genetics=simulated_genetics_outputs(),
    params:
        simulate=config.get("simulate"),
        out_dir=SIM_DIR,
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    threads: 2
    resources:
        mem_mb=planned_mem_mb("simulate", 4000),
        runtime=planned_runtime("simulate", 60),
    conda:
        "../../envs/simulate.yaml"
    script:
        "../scripts/simulate.py"

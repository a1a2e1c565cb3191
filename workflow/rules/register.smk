# Registration to MNI-152 and the 18-box patch store (rnce.imaging), per shard of images, with QC.


def registration_records(wildcards):
    """Params function: each image's registration source (FreeSurfer's brain.mgz where the subject has one)
    and its FreeSurfer aseg.mgz where it has one (its tissue labels; "" otherwise)."""
    rows = _shard_rows(wildcards)
    folders = [d if isinstance(d, str) else "" for d in rows.get("freesurfer_dir", [None] * len(rows))]
    records = []
    for p, s, k, site, t, d in zip(rows["participant_id"], rows["session_id"], rows["image_key"], rows["site"],
                                   rows["t1w"], folders):
        brain, aseg = (os.path.join(d, "mri", f) if d else "" for f in ("brain.mgz", "aseg.mgz"))
        use_brain = bool(brain) and os.path.exists(brain)
        records.append({"participant_id": p, "session_id": s, "image_key": k, "site": site,
                        "source": brain if use_brain else t,
                        "brain_extracted": use_brain, "aseg": aseg if aseg and os.path.exists(aseg) else ""})
    return records


def registration_inputs(wildcards):
    """Input function of preprocess_shard: each image's source and aseg.mgz."""
    return [f for r in registration_records(wildcards) for f in (r["source"], r["aseg"]) if f]


def registered_dir(wildcards):
    """Where registered images go when register.save_registered is set."""
    if not config["register"]["save_registered"]:
        return None
    return f"{RESULTS}/register/{wildcards.cohort}/images"


rule preprocess_shard:
    input:
        images=registration_inputs,
        regions=REGIONS,
        inventory=f"{RESULTS}/inventory/{{cohort}}/shard-{{shard}}.tsv",
    output:
        directory(f"{RESULTS}/patches/{{cohort}}/shard-{{shard}}"),
    params:
        records=registration_records,
        transform=config["register"]["transform"],
        template=config["register"]["template"],
        resolution=config["register"]["resolution_mm"],
        retry_below=config["register"]["retry_below"],
        registered_dir=registered_dir,
        fast=config["register"]["fast"],
        whole_size=config["register"]["whole_image_size"],
        skull_stripped=config["register"]["skull_stripped"],
        contrast=config["register"]["contrast"],
    log:
        f"{RESULTS}/logs/register/{{cohort}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/register/{{cohort}}/shard-{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=planned_mem_mb("preprocess_shard", 4000),
        runtime=planned_runtime("preprocess_shard", 240),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/preprocess_shard.py"


rule registration_qc:
    input:
        cohort_patch_shards,
    output:
        table=f"{RESULTS}/qc/registration_{{cohort}}.tsv",
        passed=f"{PATCHES}/{{cohort}}/passed.tsv",
        figure=report(f"{RESULTS}/qc/registration_{{cohort}}_worst.png", category="Registration QC"),
    params:
        floor=config["register"]["qc_floor"],
        robust_z=config["register"]["qc_robust_z"],
        min_site_size=config["register"]["qc_min_site_size"],
        n_montage=config["register"]["qc_montage_images"],
        template=config["register"]["template"],
        resolution=config["register"]["resolution_mm"],
    log:
        f"{RESULTS}/logs/register/{{cohort}}_qc.log",
    benchmark:
        f"{RESULTS}/benchmarks/register/{{cohort}}_qc.tsv"
    resources:
        mem_mb=planned_mem_mb("registration_qc", 2000),
        runtime=planned_runtime("registration_qc", 20),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/registration_qc.py"


rule intensity_features:
    input:
        imaged_patch_shards,
    output:
        f"{RESULTS}/features/intensity.tsv",
    params:
        patch_root=PATCHES,
        cohorts=IMAGED,
    log:
        f"{RESULTS}/logs/features/intensity.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/intensity.tsv"
    resources:
        mem_mb=planned_mem_mb("intensity_features", 2000),
        runtime=planned_runtime("intensity_features", 30),
    conda:
        "../../envs/imaging.yaml"
    script:
        "../scripts/intensity_features.py"

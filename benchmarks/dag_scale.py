"""DAG scale: `snakemake -n all` of the whole workflow on 35,761 images, against a naive one-job-per-image workflow.

Writes the participants tables of 35,761 images (empty image files): a UK Biobank-like cohort
(pretraining, brain age and GWAS, with a PLINK fileset) of 33,330 images of 29,701 subjects,
some with a second visit, and an ADNI-like evaluation cohort of 2,431 images. Then, in the same
run, times a dry run of every stage of the rnce workflow (inventory, features, ComBat,
registration, the five SSL methods' training and embeddings, evaluation, brain age, GWAS, FUMA,
LDSC) and of a naive Snakefile with one job per image for each of three per-image steps. Prints
both wall times, the ratio and the peak RSS of each, and the time of the cost plan target
(`snakemake rnce_results/plan.tsv`, run for real). Last line:
    dag_scale: ratio <r> (goal <= 0.35)

Run from the repo root: python benchmarks/dag_scale.py [--images N]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "dag_scale"

NAIVE_SNAKEFILE = '''
import pandas as pd
table = pd.read_csv(config["participants"], sep="\\t", dtype=str)
table["key"] = table["participant_id"] + "_" + table["session_id"]
IMAGE = dict(zip(table["key"], table["t1w"]))

def image(wildcards):
    return IMAGE[wildcards.key]

rule all:
    input: expand("naive/step3/{key}.txt", key=table["key"])

rule step1:
    input: image
    output: "naive/step1/{key}.txt"
    shell: "touch {output}"

rule step2:
    input: "naive/step1/{key}.txt"
    output: "naive/step2/{key}.txt"
    shell: "touch {output}"

rule step3:
    input: "naive/step2/{key}.txt"
    output: "naive/step3/{key}.txt"
    shell: "touch {output}"
'''

# runs a command and reports its wall time and the peak RSS of its process tree's largest member
MEASURE = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(json.dumps({'rc': r.returncode, 'wall': time.perf_counter() - t, "
    "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'tail': r.stdout[-4000:] + r.stderr[-4000:]}))"
)


def write_cohort(n_images: int, folder: Path, name: str = "ukb", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n_subjects = int(round(n_images * 32132 / 35761))
    repeat = rng.choice(n_subjects, n_images - n_subjects, replace=False)
    subjects = np.concatenate([np.arange(n_subjects), repeat])
    sessions = np.where(np.arange(n_images) < n_subjects, "ses-1", "ses-2")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    pids = [f"{name}{s:06d}" for s in subjects]
    paths = [f"images/{p}_{s}_T1w.nii.gz" for p, s in zip(pids, sessions, strict=True)]
    for p in paths:
        (folder / p).touch()
    table = pd.DataFrame({
        "participant_id": pids, "session_id": sessions, "t1w": paths,
        "age": np.round(rng.uniform(45, 82, n_images), 1), "sex": rng.choice(["M", "F"], n_images),
        "site": rng.choice([f"{name}-s{i}" for i in range(1, 5)], n_images),
        "diagnosis": rng.choice(["CN", "MCI", "AD"], n_images) if name == "adni" else "unknown",
        "genotype_id": pids,
    })
    path = folder / f"{name}.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def write_genotypes(table: Path, prefix: Path) -> None:
    """A PLINK 1 fileset naming the cohort's people (the dry run reads no genotype)."""
    people = pd.read_csv(table, sep="\t", dtype=str)["genotype_id"].drop_duplicates()
    pd.DataFrame({"fid": people, "iid": people, "pat": 0, "mat": 0, "sex": 0, "pheno": -9}).to_csv(
        f"{prefix}.fam", sep=" ", header=False, index=False)
    Path(f"{prefix}.bim").write_text("1\trs1\t0\t1000\tA\tG\n")
    Path(f"{prefix}.bed").write_bytes(bytes([0x6C, 0x1B, 0x01]) + bytes((len(people) + 3) // 4))


def measure(cmd: list[str], cwd: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, *cmd], cwd=cwd, capture_output=True, text=True,
                            check=True)
    info = json.loads(result.stdout)
    if info["rc"] != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{info['tail']}")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=35761)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_adni = round(args.images * 2431 / 35761)
    ukb = write_cohort(args.images - n_adni, OUT, "ukb", seed=0)
    adni = write_cohort(n_adni, OUT, "adni", seed=1)
    write_genotypes(ukb, OUT / "ukb_genotypes")
    table = OUT / "participants.tsv"  # both cohorts' images, for the naive workflow
    pd.concat([pd.read_csv(p, sep="\t", dtype=str) for p in (ukb, adni)]).to_csv(table, sep="\t", index=False)
    beds = OUT / "cell_types"  # cell-type peaks for partitioned h2 (the dry run reads none)
    beds.mkdir(exist_ok=True)
    for cell_type in ("astrocyte", "oligodendrocyte", "microglia", "neuron"):
        (beds / f"{cell_type}.bed").write_text("chr1\t900\t1100\n")
    print(f"wrote {args.images} images' tables in {time.perf_counter() - t0:.1f} s")
    config = {"results": "rnce_results", "cohorts": {
        "ukb": {"participants": str(ukb), "roles": ["pretrain", "brain_age", "gwas"],
                "genotypes": str(OUT / "ukb_genotypes")},
        "adni": {"participants": str(adni), "roles": ["evaluate"]}},
        "ldsc": {"cell_type_beds": str(beds)}}
    (OUT / "config.yaml").write_text(yaml.safe_dump(config))
    (OUT / "naive.smk").write_text(NAIVE_SNAKEFILE)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    for lock in (OUT / ".snakemake").glob("locks/*"):
        lock.unlink()

    ours = measure([snakemake, "-n", "--quiet", "rules", "host", "reason", "--snakefile", str(ROOT / "Snakefile"), "--configfile",
                    str(OUT / "config.yaml"), "--directory", str(OUT), "all"], OUT)
    naive = measure([snakemake, "-n", "--quiet", "rules", "host", "reason", "--snakefile", str(OUT / "naive.smk"), "--config",
                     f"participants={table}", "--directory", str(OUT), "all"], OUT)
    plan_file = OUT / "rnce_results" / "plan.tsv"
    plan_file.unlink(missing_ok=True)
    cost_plan = measure([snakemake, "--cores", "1", "--quiet", "rules", "host", "--snakefile", str(ROOT / "Snakefile"),
                         "--configfile", str(OUT / "config.yaml"), "--directory", str(OUT), "rnce_results/plan.tsv"], OUT)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", ours["tail"].split("Job stats")[-1], flags=re.M))
    print("rnce jobs: " + ", ".join(f"{rule} {n}" for rule, n in jobs.items()))
    print(f"cost plan: `snakemake rnce_results/plan.tsv` {cost_plan['wall']:.1f} s, peak RSS {cost_plan['rss_mb']:.0f} MB "
          "(goal < 60 s)")
    ratio = ours["wall"] / naive["wall"]
    print(f"rnce  : {ours['wall']:7.1f} s  peak RSS {ours['rss_mb']:7.0f} MB")
    print(f"naive : {naive['wall']:7.1f} s  peak RSS {naive['rss_mb']:7.0f} MB  (3 steps x {args.images} jobs)")
    print(f"dag_scale_rss: rnce {ours['rss_mb']:.0f} MB (goal <= 1024)")
    print(f"dag_scale: ratio {ratio:.2f} (goal <= 0.35)")


if __name__ == "__main__":
    main()

"""DAG scale: `snakemake -n all` on a 35,761-image cohort, against a naive one-job-per-image workflow.

Writes a participants table of 35,761 images (empty image files; 32,132 subjects,
some with a second visit, as the paper's pretraining set), then, in the same
run, times a dry run of the rnce workflow on it and of a naive Snakefile with
one job per image for each of three per-image steps. Prints both wall times,
the ratio and the peak RSS of each. Last line:
    dag_scale: ratio <r> (goal <= 0.35)

Run from the repo root: python benchmarks/dag_scale.py [--images N]
"""

from __future__ import annotations

import argparse
import json
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
    "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'tail': r.stdout[-400:] + r.stderr[-400:]}))"
)


def write_cohort(n_images: int, folder: Path) -> Path:
    rng = np.random.default_rng(0)
    n_subjects = int(round(n_images * 32132 / 35761))
    repeat = rng.choice(n_subjects, n_images - n_subjects, replace=False)
    subjects = np.concatenate([np.arange(n_subjects), repeat])
    sessions = np.where(np.arange(n_images) < n_subjects, "ses-1", "ses-2")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    pids = [f"sub{s:06d}" for s in subjects]
    paths = [f"images/{p}_{s}_T1w.nii.gz" for p, s in zip(pids, sessions, strict=True)]
    for p in paths:
        (folder / p).touch()
    table = pd.DataFrame({
        "participant_id": pids, "session_id": sessions, "t1w": paths,
        "age": np.round(rng.uniform(45, 82, n_images), 1), "sex": rng.choice(["M", "F"], n_images),
        "site": rng.choice(["s1", "s2", "s3", "s4"], n_images), "diagnosis": "unknown",
    })
    path = folder / "participants.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


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
    table = write_cohort(args.images, OUT)
    print(f"wrote {args.images} images' table in {time.perf_counter() - t0:.1f} s: {table}")
    config = {"results": "rnce_results", "cohorts": {"big": {"participants": str(table), "roles": ["pretrain"]}}}
    (OUT / "config.yaml").write_text(yaml.safe_dump(config))
    (OUT / "naive.smk").write_text(NAIVE_SNAKEFILE)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    for lock in (OUT / ".snakemake").glob("locks/*"):
        lock.unlink()

    ours = measure([snakemake, "-n", "--quiet", "--snakefile", str(ROOT / "Snakefile"), "--configfile",
                    str(OUT / "config.yaml"), "--directory", str(OUT), "all"], OUT)
    naive = measure([snakemake, "-n", "--quiet", "--snakefile", str(OUT / "naive.smk"), "--config",
                     f"participants={table}", "--directory", str(OUT), "all"], OUT)
    ratio = ours["wall"] / naive["wall"]
    print(f"rnce  : {ours['wall']:7.1f} s  peak RSS {ours['rss_mb']:7.0f} MB")
    print(f"naive : {naive['wall']:7.1f} s  peak RSS {naive['rss_mb']:7.0f} MB  (3 steps x {args.images} jobs)")
    print(f"dag_scale_rss: rnce {ours['rss_mb']:.0f} MB (goal <= 1024)")
    print(f"dag_scale: ratio {ratio:.2f} (goal <= 0.35)")


if __name__ == "__main__":
    main()

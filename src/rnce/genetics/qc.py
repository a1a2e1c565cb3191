"""Checks before the GWAS, the sample and variant QC of METHOD §9, and the genetic PCs.

QC steps, in order, each counted in ``qc_report.tsv`` (samples and variants
before and removed; no ids):

1. ``phenotyped``: keep the genotyped samples that have a BAG and every covariate;
2. ``sex_check``: genetic vs reported sex (PLINK 1.9 ``--check-sex``: Debian's
   PLINK 2.00a3.5 has none), the PROBLEM samples removed; skipped, and
   reported, without chromosome X;
3. ``autosomes``; 4. ``duplicate_variants`` (``--rm-dup exclude-all``);
5. ``variant_missingness`` (> 3%); 6. ``sample_missingness`` (> 3%);
7. ``maf`` (< 1%); 8. ``hwe`` (p < 1e-10);
9. ``relatedness``: KING kinship above 0.0884 (2nd degree), one of each pair.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.genetics.plink import GeneticsError, check_fileset, count_lines, read_fam, run
from rnce.io import atomic_path, write_tsv

log = logging.getLogger(__name__)

REPORT_COLUMNS = ["step", "samples_before", "samples_removed", "variants_before", "variants_removed", "note"]
SEX_CODES = {"1": "M", "2": "F", "0": None}
PCA_SEED = 1
PRUNING_FLOOR = 50  # plink2 --indep-pairwise stops (exit 13) with fewer samples


def validate(genotypes: str, people: pd.DataFrame, min_samples: int) -> pd.DataFrame:
    """Check the fileset and its overlap with ``people`` (genotype_id, sex); return them with fid/iid.

    Errors: a truncated or mismatched .bed, duplicate IIDs, sex codes other
    than 0/1/2, a sex column that disagrees with the reported sex for most
    samples (coded the other way round), fewer than ``min_samples`` overlapping ids.
    """
    n_samples, n_variants = check_fileset(genotypes)
    fam = read_fam(genotypes)
    dup = fam["iid"][fam["iid"].duplicated(keep=False)]
    if len(dup):
        line = int(dup.index[0]) + 1
        raise GeneticsError(f"{genotypes}.fam: {dup.nunique()} IID(s) appear more than once (first: "
                            f"{dup.iat[0]}, line {line}); IIDs must be unique")
    bad = ~fam["sex"].isin(SEX_CODES)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 1
        raise GeneticsError(f"{genotypes}.fam, line {line}, column 5 (sex): {fam['sex'][bad].iat[0]!r}; "
                            "PLINK codes sex 1 (male), 2 (female), 0 (unknown)")
    ids = people.dropna(subset=["genotype_id"])
    merged = ids.merge(fam, left_on="genotype_id", right_on="iid", how="inner")
    log.info("%s: %d samples, %d variants; %d of %d people with a BAG have genotypes", genotypes, n_samples,
             n_variants, len(merged), len(people))
    if len(merged) < min_samples:
        hint = (f"every genotype_id matches a .fam IID: the cohort is too small for a GWAS (gwas.min_samples, at "
                f"least {PRUNING_FLOOR}: PLINK 2's LD pruning needs {PRUNING_FLOOR} samples)"
                if len(merged) == len(ids) else "Do genotype_id and the .fam IIDs agree?")
        raise GeneticsError(f"{genotypes}.fam: {len(merged)} of its {n_samples} IIDs match the genotype_id of the "
                            f"{len(people)} people with a BAG ({len(ids)} with a genotype_id); at least "
                            f"{min_samples} needed (gwas.min_samples). {hint}")
    genetic = merged["sex"].map(SEX_CODES)
    known = genetic.notna() & merged["reported_sex"].isin(["M", "F"])
    disagree = (genetic[known] != merged.loc[known, "reported_sex"]).mean() if known.any() else 0.0
    if disagree > 0.5:
        raise GeneticsError(f"{genotypes}.fam, column 5 (sex): disagrees with the participants' sex for "
                            f"{disagree:.0%} of {int(known.sum())} samples; is it coded 1 = female? PLINK: "
                            "1 = male, 2 = female")
    return merged


def _prefix_counts(prefix: str) -> tuple[int, int]:
    return count_lines(f"{prefix}.fam"), count_lines(f"{prefix}.bim")


def run_qc(genotypes: str, keep: pd.DataFrame, out_prefix: str, report_path: str, thresholds: dict,
           threads: int = 1, memory_mb: int | None = None) -> pd.DataFrame:
    """The QC steps on the samples in ``keep`` (fid, iid); writes ``out_prefix``.{bed,bim,fam} and the report."""
    work = Path(f"{out_prefix}.steps")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    opts = {"threads": threads, "memory_mb": memory_mb}
    rows = []
    current = genotypes

    def step(name: str, args: list[str], note: str = "", tool: str = "plink2") -> None:
        nonlocal current
        before = _prefix_counts(current)
        out = str(work / name)
        run(tool, "--bfile", current, *args, "--make-bed", out=out, **opts)
        after = _prefix_counts(out)
        rows.append({"step": name, "samples_before": before[0], "samples_removed": before[0] - after[0],
                     "variants_before": before[1], "variants_removed": before[1] - after[1], "note": note})
        log.info("%s: %d samples and %d variants removed", name, before[0] - after[0], before[1] - after[1])
        current = out

    keep_file = work / "keep.txt"
    keep[["fid", "iid"]].to_csv(keep_file, sep="\t", header=False, index=False)
    step("phenotyped", ["--keep", str(keep_file)], "genotyped samples with a BAG and all covariates")
    has_x = any(c in ("23", "X") for c in pd.read_csv(f"{current}.bim", sep=r"\s+", header=None, usecols=[0],
                                                       dtype=str)[0].unique())
    if has_x:
        sexcheck = str(work / "sexcheck")
        run("plink1.9", "--bfile", current, "--check-sex", out=sexcheck, **opts)
        table = pd.read_csv(f"{sexcheck}.sexcheck", sep=r"\s+", dtype=str)
        problem = table[table["STATUS"] == "PROBLEM"][["FID", "IID"]]
        problem.to_csv(work / "sex_problem.txt", sep="\t", header=False, index=False)
        step("sex_check", ["--remove", str(work / "sex_problem.txt")], "PLINK 1.9 --check-sex (F < 0.2 female, > 0.8 male)")
    else:
        rows.append({"step": "sex_check", "samples_before": _prefix_counts(current)[0], "samples_removed": 0,
                     "variants_before": _prefix_counts(current)[1], "variants_removed": 0,
                     "note": "skipped: no chromosome X variants"})
    step("autosomes", ["--autosome"])
    step("duplicate_variants", ["--rm-dup", "exclude-all"], "every copy of a duplicated variant id")
    step("variant_missingness", ["--geno", str(thresholds["geno"])], f"missing > {thresholds['geno']}")
    step("sample_missingness", ["--mind", str(thresholds["mind"])], f"missing > {thresholds['mind']}")
    step("maf", ["--maf", str(thresholds["maf"])], f"MAF < {thresholds['maf']}")
    step("hwe", ["--hwe", str(thresholds["hwe"])], f"HWE p < {thresholds['hwe']}")
    king = str(work / "king")
    run("plink2", "--bfile", current, "--king-cutoff", str(thresholds["king"]), out=king, **opts)
    step("relatedness", ["--remove", f"{king}.king.cutoff.out.id"], f"KING kinship > {thresholds['king']}")
    n_samples, n_variants = _prefix_counts(current)
    if n_samples < 10 or n_variants == 0:
        raise GeneticsError(f"QC left {n_samples} samples and {n_variants} variants: see {report_path}")
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report.loc[len(report)] = ["after_qc", n_samples, 0, n_variants, 0, "samples and variants left"]
    for ext in ("bed", "bim", "fam"):
        with atomic_path(f"{out_prefix}.{ext}") as tmp:
            shutil.copyfile(f"{current}.{ext}", tmp)
    write_tsv(report, report_path)
    shutil.rmtree(work, ignore_errors=True)
    return report


def principal_components(qc_prefix: str, n_pcs: int, approx_above: int, out: str, threads: int = 1,
                         memory_mb: int | None = None) -> pd.DataFrame:
    """``n_pcs`` PCs on LD-pruned variants (``--pca approx`` above ``approx_above`` samples): FID, IID, PC1..."""
    n = count_lines(f"{qc_prefix}.fam")
    if n < PRUNING_FLOOR:
        raise GeneticsError(f"{qc_prefix}.fam: {n} samples are left after QC; PLINK 2's LD pruning (before the PCs) "
                            f"needs at least {PRUNING_FLOOR}")
    if n <= n_pcs:
        raise GeneticsError(f"{qc_prefix}.fam: {n} samples cannot give {n_pcs} PCs (gwas.n_pcs must be below the "
                            "number of samples)")
    work = f"{out}.work"
    os.makedirs(work, exist_ok=True)
    opts = {"threads": threads, "memory_mb": memory_mb}
    try:
        run("plink2", "--bfile", qc_prefix, "--indep-pairwise", "50", "5", "0.2", out=f"{work}/prune", **opts)
        # --pca approx draws random vectors: a fixed seed makes a rerun give the same PCs (plink2 seeds from the clock)
        mode = ["--pca", "approx", str(n_pcs), "--seed", str(PCA_SEED)] if n > approx_above else ["--pca", str(n_pcs)]
        run("plink2", "--bfile", qc_prefix, "--extract", f"{work}/prune.prune.in", *mode, out=f"{work}/pca", **opts)
        pcs = pd.read_csv(f"{work}/pca.eigenvec", sep=r"\s+", dtype={"#FID": str, "IID": str, "FID": str})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pcs = pcs.rename(columns={"#FID": "FID", "#IID": "IID"})
    if "FID" not in pcs.columns:
        pcs.insert(0, "FID", pcs["IID"])
    write_tsv(pcs, out)
    return pcs

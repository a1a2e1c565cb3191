"""The BAG GWAS: phenotype and covariates, PLINK 2 ``--glm``, sumstats, lambda GC, clumped loci.

Sumstats (``{method}_bag.sumstats``, tab-separated, one header line, no sample
ids): SNP, CHR, BP, A1 (effect allele), A2 (other allele), EAF (A1 frequency),
BETA (years of BAG per A1 allele), SE, T, P, N.
Covariates: Age, Age^2, Sex (1 male), Age x Sex, Age^2 x Sex, ICV (eTIV, or
the ANTs backend's ICV), PC1-PCn; age is centred before squaring and PLINK
standardises them (``--covar-variance-standardize``).
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pandas as pd
from scipy import stats

from rnce.genetics.plink import GeneticsError, run
from rnce.io import write_tsv

log = logging.getLogger(__name__)

SUMSTATS_COLUMNS = ["SNP", "CHR", "BP", "A1", "A2", "EAF", "BETA", "SE", "T", "P", "N"]
ICV_COLUMNS = ("eTIV", "ants_icv")
GENOME_WIDE = 5e-8


def people_table(bag_path: str, records: list[dict], features_path: str) -> tuple[pd.DataFrame, dict]:
    """Everyone in a BAG (or the brain-age split) table: genotype_id, reported_sex, age, icv (and bag);
    counts of who lacks what. People missing a covariate are dropped and counted."""
    bag = pd.read_csv(bag_path, sep="\t", dtype={"participant_id": str, "session_id": str, "cohort": str})
    cohort = pd.DataFrame.from_records(records)
    if "genotype_id" not in cohort.columns:
        raise GeneticsError("the gwas cohort's table has no genotype_id column")
    cohort = cohort[["cohort", "participant_id", "genotype_id"]].drop_duplicates(["cohort", "participant_id"])
    features = pd.read_csv(features_path, sep="\t", dtype={"participant_id": str, "session_id": str})
    icv = next((c for c in ICV_COLUMNS if c in features.columns), None)
    if icv is None:
        raise GeneticsError(f"{features_path}: no intracranial volume column ({' or '.join(ICV_COLUMNS)})")
    people = bag.merge(cohort, on=["cohort", "participant_id"], how="left").merge(
        features[["cohort", "participant_id", "session_id", icv]], on=["cohort", "participant_id", "session_id"],
        how="left").rename(columns={icv: "icv", "sex": "reported_sex"})
    people["genotype_id"] = people["genotype_id"].replace("", np.nan)
    counts = {"with_bag": len(people), "no_genotype_id": int(people["genotype_id"].isna().sum())}
    needed = ["age", "reported_sex", "icv"] + (["bag"] if "bag" in people.columns else [])
    missing = people[needed].isna().any(axis=1) | ~people["reported_sex"].isin(["M", "F"])
    counts["missing_covariate"] = int((missing & people["genotype_id"].notna()).sum())
    if counts["missing_covariate"]:
        log.warning("%d people with genotypes lack age, sex, ICV or BAG: dropped", counts["missing_covariate"])
    if "bag" in people.columns and people.loc[~missing, "bag"].nunique() < 2:
        raise GeneticsError(f"{bag_path}: the BAG is constant (or missing) for everyone; nothing to test")
    return people[~missing].reset_index(drop=True), counts


def covariates(people: pd.DataFrame, pcs: pd.DataFrame) -> pd.DataFrame:
    """FID, IID and the GWAS covariates of the samples that passed QC (those in ``pcs``)."""
    table = people.merge(pcs, left_on="genotype_id", right_on="IID", how="inner")
    age = table["age"] - table["age"].mean()
    sex = (table["reported_sex"] == "M").astype(float)
    out = pd.DataFrame({"FID": table["FID"], "IID": table["IID"], "Age": age, "Age2": age ** 2, "Sex": sex,
                        "AgeSex": age * sex, "Age2Sex": age ** 2 * sex, "ICV": table["icv"]})
    for column in [c for c in pcs.columns if c.startswith("PC")]:
        out[column] = table[column]
    return out


def lambda_gc(p: np.ndarray) -> float:
    """Genomic inflation: median chi-square (1 df) over its expected median (0.4549)."""
    return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1))


def glm(qc_prefix: str, people: pd.DataFrame, pcs: pd.DataFrame, out_sumstats: str, threads: int = 1,
        memory_mb: int | None = None) -> pd.DataFrame:
    """PLINK 2 linear regression of BAG on every variant with the covariates; writes the sumstats."""
    work = f"{out_sumstats}.work"
    os.makedirs(work, exist_ok=True)
    covar = covariates(people, pcs)
    pheno = covar[["FID", "IID"]].assign(BAG=people.set_index("genotype_id").loc[covar["IID"], "bag"].to_numpy())
    if pheno["BAG"].nunique() < 2:
        raise GeneticsError("the BAG is constant over the samples that passed QC; nothing to test")
    pheno.rename(columns={"FID": "#FID"}).to_csv(f"{work}/pheno.tsv", sep="\t", index=False)
    covar.rename(columns={"FID": "#FID"}).to_csv(f"{work}/covar.tsv", sep="\t", index=False)
    run("plink2", "--bfile", qc_prefix, "--pheno", f"{work}/pheno.tsv", "--pheno-name", "BAG",
        "--covar", f"{work}/covar.tsv", "--covar-variance-standardize",
        "--glm", "hide-covar", "cols=chrom,pos,ref,alt,a1freq,nobs,beta,se,tz,p", out=f"{work}/gwas",
        threads=threads, memory_mb=memory_mb)
    result = sumstats_from_plink(f"{work}/gwas.BAG.glm.linear")
    write_tsv(result, out_sumstats)
    shutil.rmtree(work, ignore_errors=True)
    log.info("%d variants tested on %d samples; lambda GC %.3f; %d below %.0e", len(result),
             int(result["N"].max()), lambda_gc(result["P"].to_numpy()), int((result["P"] < GENOME_WIDE).sum()),
             GENOME_WIDE)
    return result


def sumstats_from_plink(path: str) -> pd.DataFrame:
    """PLINK 2's .glm.linear as the sumstats columns (A2 = the allele that is not A1)."""
    raw = pd.read_csv(path, sep="\t", dtype={"#CHROM": str, "ID": str, "REF": str, "ALT": str, "A1": str})
    raw = raw.dropna(subset=["P"])
    other = np.where(raw["A1"] == raw["ALT"], raw["REF"], raw["ALT"])
    return pd.DataFrame({"SNP": raw["ID"], "CHR": raw["#CHROM"], "BP": raw["POS"].astype(int), "A1": raw["A1"],
                         "A2": other, "EAF": raw["A1_FREQ"], "BETA": raw["BETA"], "SE": raw["SE"],
                         "T": raw["T_STAT"], "P": raw["P"], "N": raw["OBS_CT"].astype(int)})


def clump(qc_prefix: str, sumstats_path: str, out_loci: str, r2: float, kb: int, threads: int = 1) -> pd.DataFrame:
    """Independent loci at 5e-8 (PLINK 1.9 ``--clump``): locus, lead SNP, CHR, BP, P, span and size."""
    columns = ["locus", "SNP", "CHR", "BP", "P", "start", "end", "n_variants"]
    sumstats = pd.read_csv(sumstats_path, sep="\t", dtype={"SNP": str, "CHR": str})
    work = f"{out_loci}.work"
    os.makedirs(work, exist_ok=True)
    loci = pd.DataFrame(columns=columns)
    if (sumstats["P"] < GENOME_WIDE).any():
        sumstats[["SNP", "P"]].to_csv(f"{work}/assoc.tsv", sep="\t", index=False)
        run("plink1.9", "--bfile", qc_prefix, "--clump", f"{work}/assoc.tsv", "--clump-p1", str(GENOME_WIDE),
            "--clump-p2", "1e-5", "--clump-r2", str(r2), "--clump-kb", str(kb), out=f"{work}/clump",
            threads=threads)
        clumped = pd.read_csv(f"{work}/clump.clumped", sep=r"\s+", dtype={"SNP": str, "CHR": str})
        where = sumstats.set_index("SNP")
        rows = []
        for i, c in enumerate(clumped.sort_values(["CHR", "BP"]).itertuples(), 1):
            members = [c.SNP] + [s.split("(")[0] for s in str(c.SP2).split(",") if s not in ("NONE", "nan")]
            bp = where.loc[members, "BP"]
            rows.append({"locus": i, "SNP": c.SNP, "CHR": c.CHR, "BP": int(c.BP), "P": c.P, "start": int(bp.min()),
                         "end": int(bp.max()), "n_variants": len(members)})
        loci = pd.DataFrame(rows, columns=columns)
    write_tsv(loci, out_loci)
    shutil.rmtree(work, ignore_errors=True)
    return loci


def write_report(qc_prefix: str, sumstats_path: str, name: str, r2: float, kb: int, out_loci: str,
                 out_summary: str, out_manhattan: str, out_qq: str) -> None:
    """Loci, lambda GC and the Manhattan and QQ plots of one GWAS."""
    from rnce.plots import manhattan_plot, qq_plot

    sumstats = pd.read_csv(sumstats_path, sep="\t", dtype={"SNP": str, "CHR": str})
    loci = clump(qc_prefix, sumstats_path, out_loci, r2, kb)
    lam = lambda_gc(sumstats["P"].to_numpy())
    write_tsv(pd.DataFrame([{"gwas": name, "variants": len(sumstats), "n": int(sumstats["N"].max()),
                             "lambda_gc": lam, "genome_wide_variants": int((sumstats["P"] < GENOME_WIDE).sum()),
                             "loci": len(loci)}]), out_summary)
    manhattan_plot(sumstats, f"{name} BAG", out_manhattan)
    qq_plot(sumstats["P"].to_numpy(), lam, f"{name} BAG", out_qq)


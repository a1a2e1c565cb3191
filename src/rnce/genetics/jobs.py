"""The GWAS stage's jobs, one function per Snakemake rule."""

from __future__ import annotations

import pandas as pd

from rnce.cohort import cohort_records
from rnce.genetics import gwas, qc
from rnce.io import write_tsv


def qc_job(genotypes: str, split_path: str, cohort: dict[str, dict], results: str, features_path: str,
           thresholds: dict, min_samples: int, n_pcs: int, approx_above: int, out_prefix: str, out_report: str,
           out_pcs: str, threads: int = 1, memory_mb: int | None = None) -> None:
    """Validate, QC the samples with a brain age and every covariate, then the genetic PCs.
    ``cohort``: {name: config entry} of the gwas cohort."""
    records = cohort_records(cohort, results, ["participant_id", "genotype_id"])
    people, counts = gwas.people_table(split_path, records, features_path)
    merged = qc.validate(genotypes, people, min_samples)
    if n_pcs >= len(merged):
        raise qc.GeneticsError(f"gwas.n_pcs is {n_pcs}, but {len(merged)} people have both a BAG and genotypes: "
                               "the PCs must be fewer than the samples")
    report = qc.run_qc(genotypes, merged[["fid", "iid"]], out_prefix, out_report, thresholds, threads, memory_mb)
    before = pd.DataFrame([
        {"step": "no_genotype_id", "samples_before": counts["with_bag"], "samples_removed": counts["no_genotype_id"],
         "variants_before": pd.NA, "variants_removed": pd.NA, "note": "people with a BAG but no genotype_id"},
        {"step": "missing_covariate", "samples_before": counts["with_bag"] - counts["no_genotype_id"],
         "samples_removed": counts["missing_covariate"], "variants_before": pd.NA, "variants_removed": pd.NA,
         "note": "age, sex or intracranial volume missing: dropped"}])
    write_tsv(pd.concat([before, report], ignore_index=True), out_report)
    qc.principal_components(out_prefix, n_pcs, approx_above, out_pcs, threads, memory_mb)


def glm_job(qc_prefix: str, bag_path: str, cohort: dict[str, dict], results: str, features_path: str,
            pcs_path: str, out_sumstats: str, threads: int = 1, memory_mb: int | None = None) -> None:
    records = cohort_records(cohort, results, ["participant_id", "genotype_id"])
    people, _ = gwas.people_table(bag_path, records, features_path)
    pcs = pd.read_csv(pcs_path, sep="\t", dtype={"FID": str, "IID": str})
    gwas.glm(qc_prefix, people, pcs, out_sumstats, threads, memory_mb)

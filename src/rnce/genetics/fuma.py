"""FUMA input files (METHOD §10) and the sumstats checks shared with LDSC.

FUMA's rules: gzipped, tab-separated, one header line not starting with '#',
columns SNP CHR BP A1 A2 P BETA SE N, integer positions, no quotes; P in
(0, 1]; alleles A/C/G/T. The file holds summary statistics only.
"""

from __future__ import annotations

import csv
import gzip
import logging

import numpy as np
import pandas as pd

from rnce.genetics.plink import GeneticsError
from rnce.io import atomic_path

log = logging.getLogger(__name__)

FUMA_COLUMNS = ["SNP", "CHR", "BP", "A1", "A2", "P", "BETA", "SE", "N"]
CHROMOSOMES = {str(c) for c in range(1, 23)} | {"X", "23"}
BASES = {"A", "C", "G", "T"}
AMBIGUOUS = {("A", "T"), ("T", "A"), ("C", "G"), ("G", "C")}


def _where(table: pd.DataFrame, bad: pd.Series, path: str, column: str, what: str) -> str:
    i = int(np.flatnonzero(bad.to_numpy())[0])
    return (f"{path}, line {i + 2}, column {column} (SNP {table['SNP'].iat[i]}): {table[column].iat[i]!r} "
            f"{what}; {int(bad.sum())} row(s) like this")


def check_sumstats(table: pd.DataFrame, path: str) -> None:
    """Errors naming file, line, column and SNP: missing columns, P outside (0, 1], bad alleles or positions."""
    missing = [c for c in FUMA_COLUMNS if c not in table.columns]
    if missing:
        raise GeneticsError(f"{path}: columns {missing} missing (has {list(table.columns)})")
    p = pd.to_numeric(table["P"], errors="coerce")
    if p.isna().any():
        raise GeneticsError(_where(table, p.isna(), path, "P", "is not a number"))
    if (p <= 0).any():
        raise GeneticsError(_where(table, p <= 0, path, "P", "is not above 0 (an underflow? FUMA and LDSC need "
                                                             "P > 0)"))
    if (p > 1).any():
        raise GeneticsError(_where(table, p > 1, path, "P", "is above 1"))
    for column in ("A1", "A2"):
        bad = ~table[column].astype(str).str.upper().isin(BASES)
        if bad.any():
            raise GeneticsError(_where(table, bad, path, column, "is not one of A, C, G, T"))
    same = table["A1"].str.upper() == table["A2"].str.upper()
    if same.any():
        raise GeneticsError(_where(table, same, path, "A2", "equals A1"))
    bp = pd.to_numeric(table["BP"], errors="coerce")
    bad = bp.isna() | (bp <= 0) | (bp != bp.round())
    if bad.any():
        raise GeneticsError(_where(table, bad, path, "BP", "is not a positive integer position"))
    chrom = ~table["CHR"].astype(str).isin(CHROMOSOMES)
    if chrom.any():
        raise GeneticsError(_where(table, chrom, path, "CHR", "is not a chromosome 1-22 or X"))
    for column in ("BETA", "SE", "N"):
        bad = pd.to_numeric(table[column], errors="coerce").isna()
        if bad.any():
            raise GeneticsError(_where(table, bad, path, column, "is not a number"))


def strand_ambiguous(table: pd.DataFrame) -> pd.Series:
    """A/T and C/G variants (their strand cannot be told from the alleles)."""
    pairs = zip(table["A1"].str.upper(), table["A2"].str.upper(), strict=True)
    return pd.Series([pair in AMBIGUOUS for pair in pairs], index=table.index)


def export(sumstats_path: str, out: str) -> pd.DataFrame:
    """Write the FUMA file of a sumstats file, after checking it."""
    table = pd.read_csv(sumstats_path, sep="\t", dtype={"SNP": str, "CHR": str, "A1": str, "A2": str})
    check_sumstats(table, sumstats_path)
    fuma = table[FUMA_COLUMNS].copy()
    fuma["BP"] = fuma["BP"].astype(int)
    fuma["N"] = fuma["N"].astype(int)
    with atomic_path(out) as tmp, gzip.open(tmp, "wt", newline="") as fh:
        fuma.to_csv(fh, sep="\t", index=False, quoting=csv.QUOTE_NONE, float_format="%.6g")
    log.info("%d variants (%d strand-ambiguous A/T or C/G, kept: FUMA aligns by position)", len(fuma),
             int(strand_ambiguous(fuma).sum()))
    validate_fuma(out)
    return fuma


def validate_fuma(path: str) -> None:
    """Check a FUMA input file against FUMA's rules; an error names what breaks them."""
    with gzip.open(path, "rt") as fh:
        header = fh.readline().rstrip("\n")
        body = fh.read()
    if header.startswith("#"):
        raise GeneticsError(f"{path}: the header starts with '#' (FUMA would skip it)")
    if header.split("\t") != FUMA_COLUMNS:
        raise GeneticsError(f"{path}: header {header.split(chr(9))}, expected {FUMA_COLUMNS} (tab-separated)")
    if '"' in body or "'" in body:
        raise GeneticsError(f"{path}: values are quoted")
    table = pd.read_csv(path, sep="\t", dtype=str, compression="gzip")
    check_sumstats(table, path)
    if not table["BP"].str.fullmatch(r"\d+").all():
        raise GeneticsError(_where(table, ~table["BP"].str.fullmatch(r"\d+"), path, "BP", "is not written as an "
                                                                                          "integer"))

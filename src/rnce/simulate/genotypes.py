"""Genotypes of the simulated world, written as PLINK 1 binary files with pandas-plink.

Autosomes are built from LD blocks: within a block each haplotype copies one of
a few founder haplotypes (with 1% copying noise), so variants of a block are in
LD and blocks are independent. Two ancestry groups weigh the founders
differently (population structure), some pairs share one haplotype per block
(parent-offspring, kinship 0.25), and chromosome X is haploid in males. Every
QC step of METHOD 9 gets something to remove: genotype/reported sex mismatches,
rare variants, variants and samples with high missingness, Hardy-Weinberg
violations and duplicated variants. Causal variants (a polygenic set plus one
strong locus) give the brain-age acceleration its SNP heritability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.io import atomic_path

ALLELE_PAIRS = [("A", "C"), ("A", "G"), ("C", "T"), ("G", "T"), ("C", "A"), ("G", "A"), ("T", "C"), ("T", "G")]
N_FOUNDERS = 20
FOUNDER_ALPHA = 1.0
COPY_NOISE = 0.01
X_CHROM = "23"


@dataclass
class Panel:
    """A simulated genotype panel: dosages of allele a1 (samples x variants, NaN = missing)."""

    dosage: np.ndarray
    variants: pd.DataFrame  # chrom, snp, cm, pos, a0, a1, kind
    genetic_sex: np.ndarray  # "M"/"F" per sample, from the X chromosome
    ancestry: np.ndarray
    related_to: np.ndarray  # index of the sample whose haplotypes it shares, or -1
    high_missing_samples: np.ndarray = field(default_factory=lambda: np.array([], int))


def _blocks(rng: np.random.Generator, n_variants: int, block_range: tuple[int, int]) -> list[int]:
    sizes = []
    while sum(sizes) < n_variants:
        sizes.append(int(rng.integers(block_range[0], block_range[1] + 1)))
    sizes[-1] -= sum(sizes) - n_variants
    return [s for s in sizes if s > 0]


def _haplotype_block(rng, n_samples, size, ancestry, weights_by_ancestry, related_to):
    """Two haplotypes per sample for one block (samples x 2 x size, 0/1)."""
    freq = rng.uniform(0.05, 0.5, size)
    founders = (rng.random((N_FOUNDERS, size)) < freq).astype(np.int8)
    picks = np.empty((n_samples, 2), dtype=np.int64)
    for a, w in enumerate(weights_by_ancestry):
        idx = np.flatnonzero(ancestry == a)
        picks[idx] = rng.choice(N_FOUNDERS, size=(len(idx), 2), p=w)
    rel = np.flatnonzero(related_to >= 0)
    picks[rel, 0] = picks[related_to[rel], 0]  # shared haplotype, identical by descent
    haps = founders[picks]  # samples x 2 x size
    flips = rng.random(haps.shape) < COPY_NOISE
    flips[rel, 0, :] = False
    return haps ^ flips


def simulate_panel(rng: np.random.Generator, n_samples: int, reported_sex: np.ndarray, cfg: dict) -> Panel:
    """Simulate the genotype panel of ``n_samples`` people.

    ``cfg`` holds the ``simulate.genetics`` config block: chromosomes,
    variants_per_chromosome, x_variants, ld_block_size, second_ancestry_fraction,
    related_pairs, sex_mismatches, rare_fraction, hwe_violations, duplicates,
    high_missing_variants, high_missing_samples, missing_rate.
    """
    ancestry = (rng.random(n_samples) < cfg["second_ancestry_fraction"]).astype(int)
    weights = [rng.dirichlet(np.full(N_FOUNDERS, FOUNDER_ALPHA)) for _ in range(2)]
    related_to = np.full(n_samples, -1)
    pairs = rng.choice(n_samples, size=(cfg["related_pairs"], 2), replace=False)
    related_to[pairs[:, 1]] = pairs[:, 0]
    # related pairs share ancestry
    ancestry[pairs[:, 1]] = ancestry[pairs[:, 0]]

    genetic_sex = np.asarray(reported_sex).copy()
    mismatch = rng.choice(np.flatnonzero(related_to < 0), size=cfg["sex_mismatches"], replace=False)
    genetic_sex[mismatch] = np.where(genetic_sex[mismatch] == "M", "F", "M")

    columns, rows = [], []
    snp_counter = 1_000_001
    chromosomes = [str(c) for c in cfg["chromosomes"]] + ([X_CHROM] if cfg["x_variants"] else [])
    for chrom in chromosomes:
        n_var = cfg["x_variants"] if chrom == X_CHROM else cfg["variants_per_chromosome"]
        pos = np.cumsum(rng.integers(200, 3000, n_var)) + 10_000
        if chrom == X_CHROM:
            # independent variants without structure, so that the X-based sex check is clean
            haps = rng.random((n_samples, 2, n_var)) < rng.uniform(0.1, 0.5, n_var)
            male = genetic_sex == "M"
            haps[male, 1, :] = haps[male, 0, :]  # hemizygous: coded homozygous
            geno = haps.sum(axis=1).astype(np.float32)
        else:
            geno = np.concatenate([
                _haplotype_block(rng, n_samples, size, ancestry, weights, related_to).sum(axis=1)
                for size in _blocks(rng, n_var, tuple(cfg["ld_block_size"]))
            ], axis=1).astype(np.float32)
        pairs_idx = rng.integers(0, len(ALLELE_PAIRS), n_var)
        for j in range(n_var):
            a0, a1 = ALLELE_PAIRS[pairs_idx[j]]
            rows.append((chrom, f"rs{snp_counter}", pos[j] / 1e6, int(pos[j]), a0, a1, "common"))
            snp_counter += 1
        columns.append(geno)
    dosage = np.concatenate(columns, axis=1)
    variants = pd.DataFrame(rows, columns=["chrom", "snp", "cm", "pos", "a0", "a1", "kind"])

    autosomal = np.flatnonzero(variants["chrom"] != X_CHROM)
    n_auto = len(autosomal)
    chosen = rng.permutation(autosomal)
    n_rare = int(cfg["rare_fraction"] * n_auto)
    n_hwe = cfg["hwe_violations"]
    n_miss = cfg["high_missing_variants"]
    rare, hwe, miss = np.split(chosen[: n_rare + n_hwe + n_miss], [n_rare, n_rare + n_hwe])
    p_rare = rng.uniform(0.0005, 0.006, len(rare))
    dosage[:, rare] = rng.binomial(2, p_rare, (n_samples, len(rare)))
    variants.loc[rare, "kind"] = "rare"
    # Hardy-Weinberg violation: far too many heterozygotes
    het = rng.random((n_samples, len(hwe))) < 0.85
    dosage[:, hwe] = np.where(het, 1.0, rng.choice([0.0, 2.0], (n_samples, len(hwe))))
    variants.loc[hwe, "kind"] = "hwe_violation"
    dosage[rng.random(dosage.shape) < cfg["missing_rate"]] = np.nan
    miss_mask = rng.random((n_samples, len(miss))) < rng.uniform(0.08, 0.2, len(miss))
    block = dosage[:, miss]
    block[miss_mask] = np.nan
    dosage[:, miss] = block
    variants.loc[miss, "kind"] = "high_missing"
    bad_samples = rng.choice(np.flatnonzero(related_to < 0), size=cfg["high_missing_samples"], replace=False)
    for s in bad_samples:
        dosage[s, rng.random(dosage.shape[1]) < rng.uniform(0.08, 0.15)] = np.nan

    # duplicated variants: an exact copy, same id and position, placed right after the original
    dup_src = np.sort(rng.choice(np.setdiff1d(autosomal, chosen[: n_rare + n_hwe + n_miss]),
                                 cfg["duplicates"], replace=False))
    order = np.sort(np.concatenate([np.arange(dosage.shape[1]), dup_src]))
    dosage = dosage[:, order]
    is_copy = np.zeros(len(order), bool)
    is_copy[1:] = order[1:] == order[:-1]
    variants = variants.iloc[order].reset_index(drop=True)
    variants.loc[is_copy, "kind"] = "duplicate"
    return Panel(dosage, variants, genetic_sex, ancestry, related_to, bad_samples)


def causal_effects(rng: np.random.Generator, panel: Panel, n_causal: int, h2: float,
                   strong_fraction: float, variance: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Pick causal variants and return them with the genetic value of every sample.

    The genetic values have variance ``h2 * variance`` in this sample (exactly:
    the polygenic part is made orthogonal to the strong locus): a strong
    locus takes ``strong_fraction * variance`` of it, ``n_causal`` polygenic
    variants share the rest.
    """
    v = panel.variants
    ok = (v["kind"] == "common") & (v["chrom"] != X_CHROM) & ~v["snp"].duplicated(keep=False)
    g = panel.dosage[:, ok.to_numpy()]
    freq = np.nanmean(g, axis=0) / 2
    candidates = np.flatnonzero(ok.to_numpy())[(freq > 0.05) & (freq < 0.95)]
    strong = int(rng.choice(candidates[(np.nanmean(panel.dosage[:, candidates], 0) / 2 > 0.25)
                                       & (np.nanmean(panel.dosage[:, candidates], 0) / 2 < 0.75)]))
    poly = rng.choice(np.setdiff1d(candidates, [strong]), n_causal, replace=False)

    def standardised(cols: np.ndarray) -> np.ndarray:
        x = panel.dosage[:, cols].astype(float)
        mean = np.nanmean(x, axis=0)
        x = np.where(np.isnan(x), mean, x)
        return (x - mean) / x.std(axis=0)

    x_strong = standardised(np.array([strong]))[:, 0]
    beta = rng.normal(0.0, 1.0, len(poly))
    g_poly = standardised(poly) @ beta
    g_poly -= (g_poly @ x_strong) / len(x_strong) * x_strong  # exact variance split in this sample
    g_poly *= np.sqrt(max(h2 - strong_fraction, 0.0) * variance) / g_poly.std()
    sign = 1.0 if rng.random() < 0.5 else -1.0
    g_strong = sign * np.sqrt(strong_fraction * variance) * x_strong
    effects = pd.DataFrame({
        "snp": v["snp"].to_numpy()[np.r_[strong, poly]],
        "chrom": v["chrom"].to_numpy()[np.r_[strong, poly]],
        "pos": v["pos"].to_numpy()[np.r_[strong, poly]],
        "role": ["strong"] + ["polygenic"] * len(poly),
    })
    return effects, g_poly + g_strong


def environmental_noise(rng: np.random.Generator, genetic: np.ndarray, variance: float) -> np.ndarray:
    """Noise of exactly ``variance`` in this sample, uncorrelated with the genetic values."""
    e = rng.normal(0.0, 1.0, len(genetic))
    g = genetic - genetic.mean()
    e -= e.mean() + (e @ g) / max(g @ g, 1e-12) * g
    return e * np.sqrt(variance) / e.std()


def write_plink(panel: Panel, prefix: Path, iids: list[str], reported_sex: np.ndarray) -> None:
    """PLINK 1 .bed/.bim/.fam with FID = IID; .fam sex is the reported sex (1 M, 2 F)."""
    from pandas_plink import write_plink1_bin
    from xarray import DataArray

    v = panel.variants
    G = DataArray(
        panel.dosage.astype(np.float32),
        dims=["sample", "variant"],
        coords=dict(
            sample=iids, fid=("sample", iids), iid=("sample", iids),
            father=("sample", ["0"] * len(iids)), mother=("sample", ["0"] * len(iids)),
            gender=("sample", np.where(np.asarray(reported_sex) == "M", "1", "2")),
            trait=("sample", ["-9"] * len(iids)),
            variant=[f"v{i}" for i in range(len(v))],
            snp=("variant", v["snp"].tolist()), chrom=("variant", v["chrom"].tolist()),
            cm=("variant", v["cm"].to_numpy()), pos=("variant", v["pos"].to_numpy()),
            a0=("variant", v["a0"].tolist()), a1=("variant", v["a1"].tolist()),
        ),
    )
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmp = prefix.with_name(prefix.name + ".tmp")
    write_plink1_bin(G, f"{tmp}.bed", f"{tmp}.bim", f"{tmp}.fam", verbose=False)
    for ext in ("bed", "bim", "fam"):
        Path(f"{tmp}.{ext}").replace(f"{prefix}.{ext}")


def write_cell_type_beds(rng: np.random.Generator, variants: pd.DataFrame, causal: pd.DataFrame,
                         out_dir: Path, cell_types: list[str], enriched: str,
                         coverage: float = 0.05, peak_width: tuple[int, int] = (300, 2000)) -> None:
    """Open-chromatin peaks per cell type (BED, chr-prefixed); ``enriched`` covers the causal variants."""
    out_dir.mkdir(parents=True, exist_ok=True)
    autosomes = variants[variants["chrom"] != X_CHROM]
    spans = autosomes.groupby("chrom")["pos"].agg(["min", "max"])
    for cell in cell_types:
        rows = []
        for chrom, (lo, hi) in spans.iterrows():
            n = int(coverage * (hi - lo) / np.mean(peak_width))
            starts = rng.integers(lo, hi, n)
            widths = rng.integers(*peak_width, n)
            rows += [(f"chr{chrom}", int(s), int(s + w)) for s, w in zip(starts, widths, strict=True)]
        if cell == enriched:
            for rec in causal.itertuples():
                half = int(rng.integers(500, 2500))
                rows.append((f"chr{rec.chrom}", max(0, int(rec.pos) - half), int(rec.pos) + half))
        bed = pd.DataFrame(rows, columns=["chrom", "start", "end"])
        bed["k"] = bed["chrom"].str[3:].astype(int)
        bed = bed.sort_values(["k", "start"]).drop(columns="k")
        with atomic_path(out_dir / f"{cell}.bed") as tmp:
            bed.to_csv(tmp, sep="\t", header=False, index=False)

"""Genetics: input validation, PLINK QC on the tiny world, FUMA rules, LDSC's .M files, brain age."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, plink_tools

from rnce.brain_age import BrainAgeError, balanced_split, debias, predict_ages
from rnce.genetics import fuma, gwas, ldsc, qc
from rnce.genetics.plink import GeneticsError, check_fileset


def _copy_fileset(world: Path, tmp_path: Path) -> str:
    for ext in ("bed", "bim", "fam"):
        shutil.copy(world / "genotypes" / f"gwas.{ext}", tmp_path / f"g.{ext}")
    return str(tmp_path / "g")


def _people(prefix: str) -> pd.DataFrame:
    fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
    return pd.DataFrame({"genotype_id": fam[1], "reported_sex": fam[4].map({"1": "M", "2": "F"}),
                         "age": 60.0, "icv": 1.5e6})


def test_validation_errors_name_file_line_and_column(tiny_world, tmp_path):
    world, _, _ = tiny_world
    prefix = _copy_fileset(world, tmp_path)
    people = _people(prefix)
    assert len(qc.validate(prefix, people, 50)) == len(people)
    with pytest.raises(GeneticsError, match=r"match the genotype_id.*at least 5000"):
        qc.validate(prefix, people, 5000)
    with pytest.raises(GeneticsError, match=r"every genotype_id matches a .fam IID: the cohort is too small"):
        qc.validate(prefix, people, 5000)  # all ids agree: the hint is the cohort's size, not the ids
    with pytest.raises(GeneticsError, match=r"0 of its \d+ IIDs match.*Do genotype_id and the .fam IIDs agree"):
        qc.validate(prefix, people.assign(genotype_id="nobody" + people["genotype_id"]), 10)
    swapped = people.assign(reported_sex=people["reported_sex"].map({"M": "F", "F": "M"}))
    with pytest.raises(GeneticsError, match=r"column 5 \(sex\): disagrees .* coded 1 = female"):
        qc.validate(prefix, swapped, 10)
    fam = Path(f"{prefix}.fam").read_text().splitlines()
    Path(f"{prefix}.fam").write_text("\n".join(fam[:2] + [fam[0]] + fam[3:]) + "\n")
    with pytest.raises(GeneticsError, match=r"g.fam: 1 IID\(s\) appear more than once .*line 1"):
        qc.validate(prefix, people, 10)
    first = fam[0].split()
    Path(f"{prefix}.fam").write_text("\n".join(["\t".join(first[:4] + ["7", "-9"])] + fam[1:]) + "\n")
    with pytest.raises(GeneticsError, match=r"line 1, column 5 \(sex\): '7'"):
        qc.validate(prefix, people, 10)
    Path(f"{prefix}.fam").write_text("\n".join(["\t".join(first + ["x"])] + fam[1:]) + "\n")
    with pytest.raises(GeneticsError, match=r"g.fam, line 1: 7 fields"):
        qc.validate(prefix, people, 10)
    Path(f"{prefix}.fam").write_text("\n".join(fam) + "\n")
    data = Path(f"{prefix}.bed").read_bytes()
    Path(f"{prefix}.bed").write_bytes(data[: len(data) - 1000])
    with pytest.raises(GeneticsError, match=r"g.bed: \d+ bytes, but \d+ samples .* truncated"):
        check_fileset(prefix)


def _bag_table(tmp_path: Path, n: int = 30, constant: bool = False) -> tuple[str, list[dict], str]:
    ids = [f"s{i:02d}" for i in range(n)]
    bag = pd.DataFrame({"cohort": "g", "participant_id": ids, "session_id": "ses-1", "sex": list("MF" * (n // 2)),
                        "age": np.linspace(50, 80, n), "bag": 0.0 if constant else np.arange(n) % 7 - 3.0})
    bag.to_csv(tmp_path / "bag.tsv", sep="\t", index=False)
    features = bag[["cohort", "participant_id", "session_id"]].assign(eTIV=1.5e6)
    features.loc[3, "eTIV"] = np.nan
    features.to_csv(tmp_path / "features.tsv", sep="\t", index=False)
    records = [{"cohort": "g", "participant_id": p, "genotype_id": None if i == 5 else f"G{p}"}
               for i, p in enumerate(ids)]
    return str(tmp_path / "bag.tsv"), records, str(tmp_path / "features.tsv")


def test_missing_covariates_are_dropped_and_counted_and_a_constant_bag_is_an_error(tmp_path):
    people, counts = gwas.people_table(*_bag_table(tmp_path))
    assert counts == {"with_bag": 30, "no_genotype_id": 1, "missing_covariate": 1}
    assert len(people) == 29 and people["icv"].notna().all()
    with pytest.raises(GeneticsError, match="BAG is constant"):
        gwas.people_table(*_bag_table(tmp_path, constant=True))


def test_qc_counts_every_step_and_removes_the_planted_problems(tiny_world, tmp_path):
    plink_tools()
    world, cfg, truth = tiny_world
    prefix = str(world / "genotypes" / "gwas")
    fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
    thresholds = {"geno": 0.03, "mind": 0.03, "maf": 0.01, "hwe": 1e-10, "king": 0.0884}
    report = qc.run_qc(prefix, fam[[0, 1]].set_axis(["fid", "iid"], axis=1), str(tmp_path / "qc"),
                       str(tmp_path / "report.tsv"), thresholds)
    steps = report.set_index("step")
    assert list(steps.index) == ["phenotyped", "sex_check", "autosomes", "duplicate_variants", "variant_missingness",
                                 "sample_missingness", "maf", "hwe", "relatedness", "after_qc"]
    assert steps.loc["sex_check", "samples_removed"] >= len(truth["sex_mismatches"])
    assert steps.loc["duplicate_variants", "variants_removed"] == 2 * cfg["genetics"]["duplicates"]
    assert steps.loc["relatedness", "samples_removed"] >= len(truth["related_pairs"]) - 2
    assert steps.loc["hwe", "variants_removed"] >= cfg["genetics"]["hwe_violations"] // 2
    kept = set(pd.read_csv(tmp_path / "qc.fam", sep=r"\s+", header=None, dtype=str)[1])
    assert not kept & set(truth["sex_mismatches"])
    assert steps.loc["after_qc", "samples_before"] == len(kept)
    # the floors are errors before PLINK runs, and no work folder is left behind
    with pytest.raises(GeneticsError, match=r"cannot give 100000 PCs \(gwas.n_pcs must be below"):
        qc.principal_components(str(tmp_path / "qc"), 100000, 5000, str(tmp_path / "pcs.tsv"))
    few = tmp_path / "few"
    for ext in ("bed", "bim"):
        (tmp_path / f"few.{ext}").symlink_to(tmp_path / f"qc.{ext}")
    (tmp_path / "few.fam").write_text("".join((tmp_path / "qc.fam").read_text().splitlines(True)[:30]))
    with pytest.raises(GeneticsError, match=r"30 samples are left after QC; PLINK 2's LD pruning .* at least 50"):
        qc.principal_components(str(few), 5, 5000, str(tmp_path / "few_pcs.tsv"))
    assert not list(tmp_path.glob("*.work"))
    pcs = qc.principal_components(str(tmp_path / "qc"), 5, 5000, str(tmp_path / "pcs.tsv"))
    assert list(pcs.columns[:3]) == ["FID", "IID", "PC1"] and len(pcs) == len(kept)


def _sumstats(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"SNP": [f"rs{i}" for i in range(n)], "CHR": ["1"] * n, "BP": np.arange(1, n + 1) * 100,
                         "A1": ["A", "C", "G", "A", "T"][:n], "A2": ["G", "T", "A", "C", "C"][:n], "EAF": 0.3,
                         "BETA": 0.1, "SE": 0.05, "T": 2.0, "P": [0.5, 1e-9, 0.2, 1.0, 0.03][:n], "N": 400})


@pytest.mark.parametrize("change, message", [
    ({"P": 0.0}, r"line 3, column P \(SNP rs1\): 0.0 is not above 0"),
    ({"P": 1.5}, r"line 3, column P \(SNP rs1\): 1.5 is above 1"),
    ({"A1": "N"}, r"column A1 \(SNP rs1\): 'N' is not one of A, C, G, T"),
    ({"A2": "C"}, r"column A2 \(SNP rs1\): 'C' equals A1"),
    ({"BP": 10.5}, r"column BP .* not a positive integer"),
    ({"CHR": "MT"}, r"column CHR .* not a chromosome"),
])
def test_fuma_export_refuses_bad_sumstats(tmp_path, change, message):
    table = _sumstats()
    for column, value in change.items():
        table[column] = table[column].astype(object)
        table.loc[1, column] = value
    table.to_csv(tmp_path / "x.sumstats", sep="\t", index=False)
    with pytest.raises(GeneticsError, match=message):
        fuma.export(str(tmp_path / "x.sumstats"), str(tmp_path / "x.txt.gz"))
    assert not (tmp_path / "x.txt.gz").exists()


def test_fuma_file_follows_fumas_rules_and_the_validator_catches_breaks(tmp_path):
    _sumstats().to_csv(tmp_path / "x.sumstats", sep="\t", index=False)
    fuma.export(str(tmp_path / "x.sumstats"), str(tmp_path / "x.txt.gz"))
    lines = gzip.open(tmp_path / "x.txt.gz", "rt").read().splitlines()
    assert lines[0].split("\t") == ["SNP", "CHR", "BP", "A1", "A2", "P", "BETA", "SE", "N"]
    assert lines[1].split("\t")[2] == "100" and '"' not in "".join(lines)
    for broken, message in ((["#" + lines[0]] + lines[1:], "starts with '#'"),
                            ([lines[0], lines[1].replace("rs0", '"rs0"')] + lines[2:], "quoted"),
                            ([lines[0].replace("\t", " ")] + lines[1:], "header"),
                            ([lines[0], lines[1].replace("\t100\t", "\t100.0\t")] + lines[2:], "integer")):
        with gzip.open(tmp_path / "bad.txt.gz", "wt") as fh:
            fh.write("\n".join(broken) + "\n")
        with pytest.raises(GeneticsError, match=message):
            fuma.validate_fuma(str(tmp_path / "bad.txt.gz"))
    assert fuma.strand_ambiguous(_sumstats()).tolist() == [False, False, False, False, False]
    assert fuma.strand_ambiguous(_sumstats().assign(A1="A", A2="T")).all()


def test_ldsc_l2_writes_scores_and_the_m_files_it_would_crash_on(tiny_world, tmp_path):
    plink_tools()
    world, _, _ = tiny_world
    try:
        bin_dir = ldsc.find_executables(None, str(ROOT))
    except GeneticsError:
        pytest.skip("ldsc's environment (.venv-ldsc) is not built: make venv")
    ldsc.build_reference(bin_dir, str(world / "genotypes" / "gwas"), str(tmp_path / "ref"), 1000)
    iids = set(pd.read_csv(world / "genotypes" / "gwas.fam", sep=r"\s+", header=None, dtype=str)[1])
    for fam in (tmp_path / "ref").glob("*.fam"):
        assert not set(fam.read_text().split()) & iids, f"{fam.name} holds sample ids"
    chromosomes = (tmp_path / "ref" / "chromosomes.txt").read_text().split()
    assert chromosomes == ["1", "2", "3"]  # autosomes of the panel; X has no LD scores
    bim = pd.read_csv(tmp_path / "ref" / "panel.1.bim", sep="\t", header=None)
    scores = pd.read_csv(tmp_path / "ref" / "chr1.l2.ldscore.gz", sep="\t")
    assert 0.95 * len(bim) < len(scores) <= len(bim) and (scores["L2"] >= 0.9).mean() > 0.95
    m = float((tmp_path / "ref" / "chr1.l2.M").read_text())
    m_common = float((tmp_path / "ref" / "chr1.l2.M_5_50").read_text())
    assert m == len(scores) and 0 < m_common < m  # the SNPs ldsc kept (it drops monomorphic ones)
    snplist = pd.read_csv(tmp_path / "ref" / "snplist.tsv", sep="\t")
    panel = sum(len(pd.read_csv(path, sep="\t", header=None)) for path in (tmp_path / "ref").glob("panel.*.bim"))
    # about the autosomal panel (it repeats the world's planted duplicate variants, ~0.3%)
    assert list(snplist.columns) == ["SNP", "A1", "A2"] and 0.9 * panel < len(snplist) < 1.05 * panel
    annot = np.array([[1.0], [0.0], [1.0], [1.0]])
    ldsc.write_m_files(str(tmp_path / "x"), annot, np.array([0.3, 0.2, 0.01, 0.5]))
    assert (tmp_path / "x.l2.M").read_text() == "3\n" and (tmp_path / "x.l2.M_5_50").read_text() == "2\n"


def test_parse_h2_and_fdr():
    text = "Total Observed scale h2: 0.3512 (0.0421)\nLambda GC: 1.12\nMean Chi^2: 1.2\nIntercept: 1.01 (0.009)\n"
    found = ldsc.parse_h2(text)
    assert found["h2"] == 0.3512 and found["h2_se"] == 0.0421 and found["ci_low"] == pytest.approx(0.3512 - 0.0825,
                                                                                                    abs=1e-3)
    with pytest.raises(GeneticsError, match="Total Observed scale h2"):
        ldsc.parse_h2("nothing")
    q = ldsc.fdr_bh(np.array([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5], rtol=1e-6)


def test_balanced_split_and_debiased_bag(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    table = pd.DataFrame({"cohort": "g", "participant_id": [f"p{i}" for i in range(n)], "session_id": "ses-1",
                          "age": rng.uniform(44, 84, n), "sex": rng.choice(["M", "F"], n, p=[0.8, 0.2])})
    buckets = [[44, 53], [54, 63], [64, 73], [74, 83]]
    split, counts = balanced_split(table, buckets, 10, "error", 0)
    train = split[split["split"] == "train"]
    assert len(train) == 80 and (train.groupby(["bucket", "sex"]).size() == 10).all()
    assert (counts["train"] == 10).all() and len(counts) == 8
    with pytest.raises(BrainAgeError, match=r"age bucket 44-53, sex [FM]: \d+ subjects, fewer than the 200"):
        balanced_split(table, buckets, 200, "error", 0)
    split, counts = balanced_split(table, buckets, 30, "use_all", 0)
    short = counts["available"] < 30
    assert short.any() and (counts.loc[short, "train"] == counts.loc[short, "available"]).all()
    assert (counts.loc[~short, "train"] == 30).all() and (split["split"] == "validation").sum() > 0
    age = rng.uniform(45, 80, 300)
    X = np.column_stack([age + rng.normal(0, 4, 300), rng.normal(size=(300, 3))])
    train_mask = np.arange(300) < 150
    predicted = predict_ages(X, age, train_mask, 1.0, 5, 0)
    assert np.corrcoef(predicted[~train_mask], age[~train_mask])[0, 1] > 0.9
    bag = debias(predicted - age, age)
    assert abs(np.corrcoef(bag, age)[0, 1]) < 1e-8 and abs(np.corrcoef(predicted - age, age)[0, 1]) > 0.05


def test_a_pair_ldsc_cannot_estimate_gets_na_and_a_note(tmp_path):
    """ldsc 2.0.1 hides a numerical failure behind a crash of its own error handler; that pair is NA, noted."""
    fake = tmp_path / "ldsc.py"
    fake.write_text("#!/bin/sh\necho \"TypeError: '>=' not supported between instances of 'FloatingPointError' "
                    "and 'int'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    table = ldsc.genetic_correlations(str(tmp_path), ["a.gz", "b.gz", "c.gz"], ["a", "b", "c"], "ref", "ref",
                                      str(tmp_path / "rg"), intercept=1.0)
    assert len(table) == 3 and (table["rg"] == "NA").all()
    assert (table["note"] == "ldsc failed (FloatingPointError)").all()

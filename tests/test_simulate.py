"""The simulated world: images, planted pose and atrophy, FreeSurfer-format stats, genotypes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import plink_tools

from rnce.cohort import load_cohort
from rnce.simulate import anatomy as an
from rnce.simulate import images as im
from rnce.simulate.freesurfer import ASEG_ROWS

ASEG_HEADER = "Index SegId NVoxels Volume_mm3 StructName normMean normStdDev normMin normMax normRange"
APARC_HEADER = "StructName NumVert SurfArea GrayVol ThickAvg ThickStd MeanCurv GausCurv FoldInd CurvInd"
ETIV = re.compile(r"^# Measure EstimatedTotalIntraCranialVol, eTIV, Estimated Total Intracranial Volume, "
                  r"([0-9.]+), mm\^3$", re.M)


def _latent(world, cohort):
    return pd.read_csv(world / "truth" / f"{cohort}_latent.tsv", sep="\t")


def test_tables_follow_the_contract(tiny_world):
    world, cfg, truth = tiny_world
    for cohort, roles in (("pretrain", ["pretrain"]), ("evaluate", ["evaluate"])):
        table = load_cohort(cohort, {"participants": str(world / "participants" / f"{cohort}.tsv"), "roles": roles})
        assert table["participant_id"].nunique() == cfg["cohorts"][cohort]["n_subjects"]
        assert table["site"].nunique() == cfg["cohorts"][cohort]["sites"]
    evaluate = load_cohort("evaluate", {"participants": str(world / "participants" / "evaluate.tsv"),
                                        "roles": ["evaluate"]})
    assert set(evaluate["diagnosis"]) <= {"CN", "MCI", "AD"}
    assert evaluate.groupby("participant_id").size().max() > 1  # several visits
    assert evaluate["amyloid"].dropna().isin([0, 1]).all()
    assert (evaluate.loc[evaluate["diagnosis"] == "AD", "years_to_ad"] == 0).all()
    gwas = load_cohort("gwas", {"participants": str(world / "participants" / "gwas.tsv"), "roles": ["gwas"],
                                "genotypes": str(world / "genotypes" / "gwas"), "images": False,
                                "subjects_dir": str(world / "freesurfer" / "gwas")})
    assert "t1w" not in gwas.columns and gwas["genotype_id"].notna().mean() > 0.9
    for key in ("causal_variants", "bag_snp_h2", "enriched_cell_type", "sites"):
        assert key in truth
    assert json.loads((world / "ground_truth.json").read_text())["sites"] == truth["sites"]


def test_images_load_with_their_orientation(tiny_world):
    world, cfg, _ = tiny_world
    latent = pd.concat([_latent(world, "pretrain"), _latent(world, "evaluate")])
    assert {"RAS"} < set(latent["orientation"])
    for row in latent.head(10).itertuples():
        img = nib.load(world / "images" / ("pretrain" if row.participant_id.startswith("pre") else "evaluate")
                       / f"{row.participant_id}_{row.session_id}_T1w.nii.gz")
        assert "".join(nib.aff2axcodes(img.affine)) == row.orientation
        assert np.allclose(img.header.get_zooms(), cfg["voxel_size_mm"])
        data = img.get_fdata()
        assert np.isfinite(data).all() and data.max() > 500


def _mask_moments(mask: np.ndarray, affine: np.ndarray):
    xyz = nib.affines.apply_affine(affine, np.argwhere(mask))
    return xyz.mean(0), np.cov(xyz.T), len(xyz)


def test_pose_is_what_was_asked(tiny_world):
    """Head centroid, principal axis and size in each image follow its planted pose."""
    world, cfg, _ = tiny_world
    v = cfg["voxel_size_mm"]
    anat = an.anatomy_table()
    space = im.load_template_space(v, anat[["x", "y", "z"]].to_numpy(float), np.full(len(anat), 10.0))
    template = im.template_intensity(space, space.gm, space.wm, 0.0, 1.0)
    c_t, m_t, n_t = _mask_moments(template > 0.35, space.affine)
    axis_t = np.linalg.eigh(m_t)[1][:, -1]
    latent = _latent(world, "evaluate")
    for row in latent.head(8).itertuples():
        img = nib.as_closest_canonical(nib.load(world / "images" / "evaluate"
                                                / f"{row.participant_id}_{row.session_id}_T1w.nii.gz"))
        data = img.get_fdata() / 1000.0
        scale_site = np.percentile(data[data > 0.3], 90) / 0.8
        c_s, m_s, n_s = _mask_moments(data > 0.35 * scale_site, img.affine)
        pose = im.pose_matrix(np.array([row.rotation_x, row.rotation_y, row.rotation_z]),
                              np.array([row.translation_x, row.translation_y, row.translation_z]), row.scale)
        expected = pose[:3, :3] @ c_t + pose[:3, 3]
        assert np.linalg.norm(c_s - expected) < v, (row, c_s, expected)
        axis_s = np.linalg.eigh(m_s)[1][:, -1]
        assert abs(axis_s @ (pose[:3, :3] @ axis_t / row.scale)) > 0.97
        assert n_s / n_t == pytest.approx(row.scale**3, rel=0.15)


def test_atrophy_field_thins_where_asked_and_ventricles_grow():
    anat = an.anatomy_table()
    centroids = anat[["x", "y", "z"]].to_numpy(float)
    space = im.load_template_space(4.0, centroids, np.where(anat["kind"] == "thickness", 14.0, 6.0))
    none = np.zeros(len(anat))
    hippo = none.copy()
    hippo[(anat["name"] == "Left-Hippocampus").to_numpy()] = 0.6
    gm0, wm0 = im.atrophied_tissue(space, none, 1.0)
    gm1, _ = im.atrophied_tissue(space, hippo, 1.0)
    xyz = nib.affines.apply_affine(space.affine, np.indices(gm0.shape).reshape(3, -1).T).reshape(*gm0.shape, 3)

    def near(point, radius):
        return np.linalg.norm(xyz - np.array(point), axis=-1) < radius

    left_hippo = near(centroids[(anat["name"] == "Left-Hippocampus").to_numpy()][0], 8)
    right_hippo = near(centroids[(anat["name"] == "Right-Hippocampus").to_numpy()][0], 8)
    assert gm1[left_hippo].sum() < 0.8 * gm0[left_hippo].sum()
    assert gm1[right_hippo].sum() > 0.97 * gm0[right_hippo].sum()
    _, wm_big = im.atrophied_tissue(space, none, 1.3)
    csf0 = (space.mask - gm0 - wm0)[space.ventricle > 0].sum()
    gm_big, _ = im.atrophied_tissue(space, none, 1.3)
    csf_big = np.clip(space.mask - gm_big - wm_big, 0, 1)
    window = near(im.VENTRICLE_CENTRE, 30)
    assert csf_big[window].sum() > 1.3 * np.clip(space.mask - gm0 - wm0, 0, 1)[window].sum()
    assert csf0 > 0


def test_focal_thinning_removes_grey_matter_inside_its_sphere_only():
    anat = an.anatomy_table()
    space = im.load_template_space(4.0, anat[["x", "y", "z"]].to_numpy(float),
                                   np.where(anat["kind"] == "thickness", 14.0, 6.0), focal_radius=10.0)
    gm, _ = im.atrophied_tissue(space, np.zeros(len(anat)), 1.0)
    thinned = im.focal_thinning(space, gm, 0.5)
    inside, outside = space.focal > 0.99, space.focal == 0
    assert gm[inside].sum() > 5  # the sphere holds grey matter to lose
    assert thinned[inside].sum() == pytest.approx(0.5 * gm[inside].sum())
    assert np.array_equal(thinned[outside], gm[outside])
    # FreeSurfer's precuneus sees a small share of it (the sphere is ~12% of each precuneus' grey matter)
    assert 0.05 < im.focal_share(10.0) < 0.2


def test_stats_only_world_puts_freesurfer_in_adnis_ranges_and_the_oracle_finds_amyloid(tmp_path):
    """The calibrated world (config.yaml) is as hard as ADNI for FreeSurfer features; the planted
    image-only quantity itself classifies amyloid status well."""
    from conftest import ROOT, load_config

    from rnce.simulate import simulate_world
    from rnce.simulate.calibration import fs_probe_figures, in_ranges, stats_only

    cfg = load_config(ROOT / "config" / "config.yaml")["simulate"]
    simulate_world(stats_only(cfg, 1000), tmp_path)
    figures = fs_probe_figures(tmp_path, n_boot=40)
    checked = in_ranges(figures)
    assert len(checked) == 6 and checked["inside"].all(), checked.round(3).to_string()
    oracle = figures.set_index(["task", "feature_set"])["mean"]
    assert oracle[("amyloid", "oracle")] >= 0.85
    assert oracle[("amyloid", "oracle")] > oracle[("amyloid", "fs")] + 0.15
    latent = pd.read_csv(tmp_path / "truth" / "evaluate_latent.tsv", sep="\t")
    assert latent["focal_thinning"].between(0, cfg["focal"]["depth"]).all()
    assert latent[["focal_thinning", "amyloid_load"]].corr().iloc[0, 1] > 0.6


def test_latent_atrophy_follows_age_and_disease(tiny_world):
    world, _, _ = tiny_world
    latent = pd.concat([_latent(world, "pretrain"), _latent(world, "evaluate")])
    assert latent[["brain_age", "ventricle_scale"]].corr(method="spearman").iloc[0, 1] > 0.5


def _stats_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]


def _check_aseg(path: Path, flavour: str) -> float:
    text = path.read_text()
    assert f"# ColHeaders  {ASEG_HEADER}" in text
    rows = _stats_rows(path)
    assert all(len(r) == 10 for r in rows)
    names = [r[4] for r in rows]
    expected = [n + ("-Proper" if flavour == "fs6" and n.endswith("-Thalamus") else "") for _, n in ASEG_ROWS]
    assert names == expected
    return float(ETIV.search(text).group(1))


def _check_aparc(path: Path) -> dict[str, float]:
    text = path.read_text()
    assert f"# ColHeaders {APARC_HEADER}" in text
    rows = _stats_rows(path)
    assert len(rows) == 34 and all(len(r) == 10 for r in rows)
    return {r[0]: float(r[4]) for r in rows}


def test_freesurfer_stats_parse_like_real_ones(tiny_world):
    world, _, _ = tiny_world
    latent = _latent(world, "evaluate")
    assert set(latent["fs_flavour"]) == {"fs6", "fs7"}
    thickness = []
    for row in latent.itertuples():
        subject = world / "freesurfer" / "evaluate" / f"{row.participant_id}_{row.session_id}"
        etiv = _check_aseg(subject / "stats" / "aseg.stats", row.fs_flavour)
        assert etiv == pytest.approx(row.etiv, rel=0.05)
        lh = _check_aparc(subject / "stats" / "lh.aparc.stats")
        assert all(1.0 < t < 5.0 for t in lh.values())
        assert (subject / "scripts" / "recon-all.done").read_text().startswith("------")
        thickness.append((row.severity, lh["entorhinal"]))
    sev, ent = np.array(thickness).T
    assert np.corrcoef(sev, ent)[0, 1] < -0.4  # disease thins the entorhinal cortex


@pytest.mark.skipif(not os.environ.get("RNCE_REAL_DATA"), reason="set RNCE_REAL_DATA to the real-data folder")
def test_freesurfer_stats_match_real_files(tiny_world):
    """Opt-in: the simulated format against real FreeSurfer 7.2 (bert) and 6.0.1 (fMRIPrep) files."""
    real = Path(os.environ["RNCE_REAL_DATA"]) / "freesurfer"
    _check_aseg(real / "bert" / "stats" / "aseg.stats", "fs7")
    _check_aseg(real / "nfmrix_sub-01" / "stats" / "aseg.stats", "fs6")
    assert set(_check_aparc(real / "bert" / "stats" / "lh.aparc.stats")) == set(
        _check_aparc(next((tiny_world[0] / "freesurfer" / "evaluate").iterdir()) / "stats" / "lh.aparc.stats"))


def _plink(*args: str, tool: str = "plink2") -> None:
    subprocess.run([tool, *args, "--silent"], check=True, capture_output=True)


def _ids(path: Path, column: str, query: str | None = None) -> set[str]:
    table = pd.read_csv(path, sep=r"\s+")
    table.columns = [c.lstrip("#") for c in table.columns]
    return set((table.query(query) if query else table)[column].astype(str))


def test_plink_reads_genotypes_and_qc_removes_planted_problems(tiny_world, tmp_path):
    plink_tools()
    world, cfg, truth = tiny_world
    bfile = str(world / "genotypes" / "gwas")
    out = str(tmp_path / "qc")
    kinds = pd.read_csv(f"{bfile}.bim", sep="\t", header=None)[1]
    assert len(kinds) == sum(truth["planted_variants"].values())

    _plink("--bfile", bfile, "--check-sex", "--out", out, tool="plink1.9")
    assert _ids(Path(f"{out}.sexcheck"), "IID", "STATUS == 'PROBLEM'") == set(truth["sex_mismatches"])

    _plink("--bfile", bfile, "--missing", "--out", out)
    assert _ids(Path(f"{out}.smiss"), "IID", "F_MISS > 0.03") == set(truth["high_missing_samples"])
    bim = pd.read_csv(f"{bfile}.bim", sep="\t", header=None, names=["chrom", "snp", "cm", "pos", "a1", "a2"])
    latent_kind = pd.read_csv(world / "truth" / "causal_variants.tsv", sep="\t")
    assert len(latent_kind) == cfg["genetics"]["n_causal"] + 1

    _plink("--bfile", bfile, "--rm-dup", "exclude-all", "list", "--out", out)
    dup_ids = set(Path(f"{out}.rmdup.list").read_text().split())
    assert len(dup_ids) == cfg["genetics"]["duplicates"]

    _plink("--bfile", bfile, "--autosome", "--rm-dup", "exclude-all", "--geno", "0.03", "--mind", "0.03",
           "--maf", "0.01", "--hwe", "1e-10", "--make-just-bim", "--out", out)
    kept = set(pd.read_csv(f"{out}.bim", sep="\t", header=None)[1])
    assert not kept & dup_ids
    _plink("--bfile", bfile, "--autosome", "--hardy", "--out", out)
    hwe_fail = _ids(Path(f"{out}.hardy"), "ID", "P < 1e-10")
    assert len(hwe_fail) >= cfg["genetics"]["hwe_violations"] and not kept & hwe_fail
    assert len(bim) - len(kept) > cfg["genetics"]["high_missing_variants"] + cfg["genetics"]["hwe_violations"]

    _plink("--bfile", bfile, "--autosome", "--hwe", "1e-10", "--maf", "0.01", "--geno", "0.03",
           "--king-cutoff", "0.0884", "--out", out)
    removed = _ids(Path(f"{out}.king.cutoff.out.id"), "IID")
    pairs = truth["related_pairs"]
    assert all(a in removed or b in removed for a, b in pairs)
    # beyond the planted pairs, little cryptic relatedness (under 2% of samples)
    n_samples = len(Path(f"{bfile}.fam").read_text().splitlines())
    assert len(removed) - len(pairs) <= 0.02 * n_samples


def test_strong_locus_drives_acceleration(tiny_world):
    from pandas_plink import read_plink1_bin

    world, _, truth = tiny_world
    geno = read_plink1_bin(str(world / "genotypes" / "gwas.bed"), verbose=False)
    dosage = geno.sel(variant=geno["snp"] == truth["strong_locus"]["snp"]).values[:, 0]
    iid = pd.Series(dosage, index=geno["iid"].values)
    latent = _latent(world, "gwas")
    latent["dosage"] = iid.reindex("G" + latent["participant_id"]).to_numpy()
    ok = latent.dropna(subset=["dosage"])
    r = np.corrcoef(ok["dosage"], ok["acceleration"])[0, 1]
    assert r**2 > 0.08  # planted: 15% of the acceleration variance


def test_enriched_cell_type_covers_causal_variants(tiny_world):
    world, _, truth = tiny_world
    causal = pd.read_csv(world / "truth" / "causal_variants.tsv", sep="\t")

    def covered(cell):
        bed = pd.read_csv(world / "annotations" / f"{cell}.bed", sep="\t", header=None, names=["c", "s", "e"])
        hits = 0
        for rec in causal.itertuples():
            sub = bed[bed["c"] == f"chr{rec.chrom}"]
            hits += bool(((sub["s"] <= rec.pos) & (sub["e"] > rec.pos)).any())
        return hits / len(causal)

    assert covered(truth["enriched_cell_type"]) == 1.0
    others = [c for c in truth["cell_types"] if c != truth["enriched_cell_type"]]
    assert max(covered(c) for c in others) < 0.3

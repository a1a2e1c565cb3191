"""ComBat: site effects go, age effects stay; bad input is a clear error; the model re-applies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from rnce import harmonize
from rnce.cohort import load_cohort
from rnce.features.extract import extract_shard
from rnce.harmonize import HarmonizeError
from rnce.regions import read_regions


@pytest.fixture(scope="module")
def raw(tiny_world) -> pd.DataFrame:
    world = tiny_world[0]
    frames = []
    for cohort in ("pretrain", "evaluate", "gwas"):
        spec = {"participants": str(world / "participants" / f"{cohort}.tsv"), "roles": ["brain_age"],
                "subjects_dir": str(world / "freesurfer" / cohort), "images": cohort != "gwas"}
        rows = load_cohort(cohort, spec).to_dict("records")
        frames.append(extract_shard(rows, "subjects_dir")[0])
    return pd.concat(frames, ignore_index=True)


def _site_share(table: pd.DataFrame, column: str) -> float:
    """Share of (age-adjusted) variance explained by cohort:site."""
    batch = table["cohort"] + ":" + table["site"]
    resid = table[column] - np.polyval(np.polyfit(table["age"], table[column], 1), table["age"])
    return resid.groupby(batch).transform("mean").var() / resid.var()


def _within_site_age_slope(table: pd.DataFrame, column: str) -> float:
    batch = table["cohort"] + ":" + table["site"]
    y = table[column] - table[column].groupby(batch).transform("mean")
    x = table["age"] - table["age"].groupby(batch).transform("mean")
    return float((x * y).sum() / (x * x).sum())


def test_site_variance_drops_fivefold_and_age_effect_stays(raw):
    model, harmonized = harmonize.learn(raw, ["age", "sex"])
    columns = [c for c in model.features if c != "eTIV"]
    before = np.mean([_site_share(raw, c) for c in columns])
    after = np.mean([_site_share(harmonized, c) for c in columns])
    assert before / after >= 5, (before, after)
    ratio = np.array([_within_site_age_slope(harmonized, c) / _within_site_age_slope(raw, c) for c in columns])
    assert abs(np.median(ratio) - 1) < 0.10


def test_model_saved_and_applied_again_gives_the_same(raw, tmp_path):
    model, harmonized = harmonize.learn(raw, ["age", "sex", "diagnosis"])
    harmonize.save(model, str(tmp_path / "m.pkl"), str(tmp_path / "m.json"))
    again = harmonize.apply(harmonize.load(str(tmp_path / "m.pkl")), raw)
    assert np.allclose(again[model.features], harmonized[model.features])
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["n_images"] == len(raw) and "neuroharmonize" not in summary
    # gwas and half the pretrain sites have no diagnoses: those indicators are dropped, not singular
    assert summary["covariate_columns"][:2] == ["age", "sex_M"]


def test_unseen_site_is_an_error_listing_sites(raw):
    model, _ = harmonize.learn(raw, ["age", "sex"])
    other = raw.head(3).copy()
    other["site"] = "new-scanner"
    with pytest.raises(HarmonizeError, match=r"\['pretrain:new-scanner'\] were not seen.*known sites: \["):
        harmonize.apply(model, other)


def test_site_with_one_image_is_an_error_or_merged(raw):
    lonely = raw.copy()
    lonely.loc[0, "site"] = "lonely"
    with pytest.raises(HarmonizeError, match=r"fewer than 5 images.*pretrain:lonely \(1\)"):
        harmonize.learn(lonely, ["age", "sex"])
    lonely.loc[0, "site"] = raw.loc[0, "site"]
    gwas = lonely.index[lonely["cohort"] == "gwas"]
    lonely.loc[gwas[:5], "site"] = [f"tiny{i}" for i in range(5)]
    model, out = harmonize.learn(lonely, ["age", "sex"], small_sites="merge")
    assert model.batch_map["gwas:tiny0"] == "gwas:small-sites" and model.batch_counts["gwas:small-sites"] == 5
    with pytest.raises(HarmonizeError, match="still too small"):
        harmonize.learn(lonely, ["age", "sex"], small_sites="merge", min_images_per_site=6)


def test_constant_feature_is_passed_through_and_reported(raw):
    table = raw.copy()
    table["WM-hypointensities_volume"] = 500.0
    model, out = harmonize.learn(table, ["age", "sex"])
    assert model.passthrough == {"WM-hypointensities_volume": "constant"}
    assert (out["WM-hypointensities_volume"] == 500.0).all()
    assert "WM-hypointensities_volume" not in model.features


def test_nan_feature_is_an_error_listing_images(raw):
    table = raw.copy()
    table.loc[3, "lh_entorhinal_thickness"] = np.nan
    pid, ses = table.loc[3, ["participant_id", "session_id"]]
    with pytest.raises(HarmonizeError, match=rf"1 image\(s\) have NaN features: {pid} {ses} .*lh_entorhinal"):
        harmonize.learn(table, ["age", "sex"])


def test_auxiliary_matrix_is_zscored_on_pretrain_with_box_columns(raw):
    _, harmonized = harmonize.learn(raw, ["age", "sex"])
    regions = read_regions(ROOT / "config" / "regions.tsv")
    aux, info = harmonize.auxiliary_matrix(harmonized, regions, ["pretrain"])
    assert len(info["columns"]) == 104 and "eTIV" not in aux.columns
    pre = aux[aux["cohort"] == "pretrain"][info["columns"]]
    assert np.allclose(pre.mean(), 0, atol=1e-9) and np.allclose(pre.std(ddof=0), 1)
    assert set(info["boxes"]) == set(regions["name"])
    assert info["boxes"]["lh_parietal"] == [f"lh_{r}_thickness" for r in
                                            ("postcentral", "supramarginal", "superiorparietal", "inferiorparietal",
                                             "precuneus")]
    assert "Left-Hippocampus_volume" in info["boxes"]["lh_medial_temporal"]
    assert "CC_Central_volume" in info["boxes"]["rh_cingulate"]


def test_bad_regions_table_names_file_line_and_column(tmp_path):
    from rnce.regions import RegionsError

    text = (ROOT / "config" / "regions.tsv").read_text().splitlines()
    header_at = next(i for i, line in enumerate(text) if not line.startswith("#"))
    row = text[header_at + 3].split("\t")
    row[3] = str(float(row[2]) - 5)  # x_max below x_min
    text[header_at + 3] = "\t".join(row)
    (tmp_path / "regions.tsv").write_text("\n".join(text) + "\n")
    with pytest.raises(RegionsError, match=rf"line {header_at + 4}, column 'x_min'/'x_max'"):
        read_regions(tmp_path / "regions.tsv")


def test_single_site_study_passes_features_through_and_method_none_does_too(raw, tmp_path, caplog):
    """A one-scanner cohort has no batch effect to remove: `all` runs, the features are unchanged, the log and
    the model summary say why (it used to stop with 'ComBat needs at least two batches')."""
    import logging

    one_site = raw[raw["cohort"] == "evaluate"].assign(site="scanner1").reset_index(drop=True)
    with caplog.at_level(logging.WARNING, logger="rnce.harmonize"):
        model, harmonized = harmonize.learn(one_site, ["age", "sex"])
    assert "one batch (evaluate:scanner1)" in caplog.text
    assert harmonized.equals(one_site) and harmonize.apply(model, one_site).equals(one_site)
    assert set(model.summary()["passthrough"]) == set(harmonize._feature_columns(one_site))
    model, harmonized = harmonize.learn(raw, ["age", "sex"], method="none")
    assert harmonized.equals(raw) and all(v == "harmonize.method none" for v in model.passthrough.values())
    # the workflow step: every output written, the summary says pass-through
    raw_path = tmp_path / "raw.tsv"
    one_site.to_csv(raw_path, sep="\t", index=False)
    out = {k: str(tmp_path / f"{k}.out") for k in ("harmonized", "model", "summary", "auxiliary", "boxes")}
    harmonize.harmonize_features(str(raw_path), str(ROOT / "config" / "regions.tsv"), ["age", "sex"], 5, "error",
                                 [], ["evaluate"], out["harmonized"], out["model"], out["summary"], out["auxiliary"],
                                 out["boxes"])
    summary = json.loads(open(out["summary"]).read())
    assert summary["features"] == [] and summary["n_images"] == len(one_site)

"""The brain-age report: baselines that a cohort-confounded model cannot beat, metrics within groups, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnce.brain_age import write_summary
from rnce.brain_age_report import baselines, by_group
from rnce.io import write_tsv


def two_cohorts(within_r: float, seed: int = 0, ranges=((69, 96), (23, 51))) -> pd.DataFrame:
    """Two cohorts (by default aged 69-96 and 23-51, as the real scans of issue 31), 2 sites each; the prediction
    is each cohort's mean age plus ``within_r`` of the subject's own deviation from it, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for cohort, (lo, hi) in zip(("old", "young"), ranges, strict=True):
        age = rng.uniform(lo, hi, 200)
        predicted = age.mean() + within_r * (age - age.mean()) + rng.normal(0, 3, 200)
        rows.append(pd.DataFrame({"cohort": cohort, "participant_id": [f"{cohort}{i}" for i in range(200)],
                                  "session_id": "ses-1", "site": [f"{cohort}-{i % 2}" for i in range(200)],
                                  "sex": "F", "age": age, "predicted_age": predicted,
                                  "split": np.where(np.arange(200) < 100, "train", "validation")}))
    bag = pd.concat(rows, ignore_index=True)
    bag["bag_raw"] = bag["predicted_age"] - bag["age"]
    bag["bag"] = bag["bag_raw"] - np.polyval(np.polyfit(bag["age"], bag["bag_raw"], 1), bag["age"])
    return bag


def test_a_model_that_only_tells_cohorts_apart_is_flagged():
    row = baselines(two_cohorts(within_r=0.0), "fs")
    assert row["pearson_r"] > 0.9  # looks good over both cohorts ...
    assert row["mae_cohort_mean"] <= row["mae"] * 1.05 and row["mae_mean_age"] > 2 * row["mae"]
    assert "cohort explains more of age" in row["warning"]
    groups = by_group(two_cohorts(within_r=0.0), "fs").set_index(["by", "group"])
    assert abs(groups.loc[("cohort", "old"), "pearson_r"]) < 0.3  # ... and knows nothing within a cohort


def test_a_model_that_knows_age_within_cohorts_shows_it_within_them():
    """Where cohorts differ this much in age, pooled figures cannot tell a good model from a confounded one (the
    warning stands: cohort explains 0.9 of age): the within-cohort figures and the baselines do."""
    good = baselines(two_cohorts(within_r=1.0), "fs")
    assert "cohort explains more of age" in good["warning"] and good["mae"] < 0.5 * good["mae_cohort_mean"]
    groups = by_group(two_cohorts(within_r=1.0), "fs").set_index(["by", "group"])
    assert groups.loc[("cohort", "young"), "pearson_r"] > 0.8 and groups.loc[("site", "old-1"), "n"] == 50
    overlapping = baselines(two_cohorts(within_r=1.0, ranges=((44, 83), (44, 83))), "fs")
    assert overlapping["warning"] == "" and overlapping["r2_cohort_mean"] < 0.05


def test_the_summary_writes_the_baselines_and_the_figures(tmp_path):
    bags, metrics = [], []
    for name, r in (("fs", 0.0), ("rnce", 1.0)):
        bags.append(str(tmp_path / f"{name}_bag.tsv"))
        write_tsv(two_cohorts(r, ranges=((50, 83), (44, 77))), bags[-1])
        metrics.append(str(tmp_path / f"{name}_metrics.tsv"))
        write_tsv(pd.DataFrame([{"feature_set": name, "mae": 1.0}]), metrics[-1])
    out = {k: str(tmp_path / f"{k}.{'png' if k in ('heatmap', 'scatter', 'bag_vs_age') else 'tsv'}")
           for k in ("metrics", "baselines", "groups", "correlation", "heatmap", "scatter", "bag_vs_age")}
    write_summary(bags, metrics, ["fs", "rnce"], out)
    table = pd.read_csv(out["baselines"], sep="\t", keep_default_na=False).set_index("feature_set")
    assert table.loc["fs", "warning"] and not table.loc["rnce", "warning"]
    assert table.loc["rnce", "mae_site_mean"] == pytest.approx(table.loc["fs", "mae_site_mean"])
    groups = pd.read_csv(out["groups"], sep="\t")
    assert set(groups["by"]) == {"cohort", "site"} and len(groups) == 2 * (2 + 4)
    for figure in ("scatter", "bag_vs_age", "heatmap"):
        assert (tmp_path / f"{figure}.png").stat().st_size > 10_000

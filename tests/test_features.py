"""Structural features: the stats reader on good and broken subjects, the three backends."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, fake_recon_all

from rnce.cohort import CohortError, load_cohort
from rnce.features.extract import extract_shard
from rnce.features.freesurfer import (
    StatsError,
    feature_names,
    read_subject,
    read_subjects,
    recon_all_status,
)

REAL = os.environ.get("RNCE_REAL_DATA")


def _subject(tiny_world, cohort="evaluate", index=0) -> Path:
    world = tiny_world[0]
    latent = pd.read_csv(world / "truth" / f"{cohort}_latent.tsv", sep="\t")
    row = latent.iloc[index]
    return world / "freesurfer" / cohort / f"{row.participant_id}_{row.session_id}"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_reads_all_features_of_fs6_and_fs7_subjects(tiny_world):
    latent = pd.read_csv(tiny_world[0] / "truth" / "evaluate_latent.tsv", sep="\t")
    for flavour in ("fs6", "fs7"):
        index = int(np.flatnonzero(latent["fs_flavour"] == flavour)[0])
        series = read_subject(_subject(tiny_world, index=index))
        assert list(series.index) == feature_names() and len(series) == 105
        assert series.notna().all() and series.attrs["missing"] == []
        assert 3000 < series["Left-Thalamus_volume"] < 15000
        assert series["eTIV"] == pytest.approx(latent["etiv"].iat[index], rel=0.05)


def test_truncated_aparc_is_an_error_naming_subject_and_file(tiny_world, tmp_path):
    subject = _copy(_subject(tiny_world), tmp_path / "sub-trunc")
    path = subject / "stats" / "lh.aparc.stats"
    text = path.read_text()
    path.write_text(text[: len(text) - 30])
    with pytest.raises(StatsError, match=r"subject sub-trunc: .*lh\.aparc\.stats is truncated"):
        read_subject(subject)
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) - 20] + "\n")
    with pytest.raises(StatsError, match=r"sub-trunc: .*lh\.aparc\.stats, line \d+: \d+ fields"):
        read_subject(subject)


def test_missing_structure_is_nan_and_reported(tiny_world, tmp_path, caplog):
    subject = _copy(_subject(tiny_world), tmp_path / "sub-miss")
    path = subject / "stats" / "aseg.stats"
    lines = [line for line in path.read_text().splitlines() if "Left-Hippocampus" not in line]
    path.write_text("\n".join(line.replace("# NRows 45", "# NRows 44") for line in lines) + "\n")
    with caplog.at_level(logging.WARNING):
        series = read_subject(subject)
    assert np.isnan(series["Left-Hippocampus_volume"]) and series.attrs["missing"] == ["Left-Hippocampus_volume"]
    assert series.drop("Left-Hippocampus_volume").notna().all()
    assert "Left-Hippocampus_volume" in caplog.text


def test_non_numeric_value_names_line_and_column(tiny_world, tmp_path):
    subject = _copy(_subject(tiny_world), tmp_path / "sub-nan")
    path = subject / "stats" / "rh.aparc.stats"
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("entorhinal"))
    fields = lines[row].split()
    fields[4] = "n/a"
    lines[row] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StatsError, match=rf"sub-nan: .*rh\.aparc\.stats, line {row + 1}, column 'ThickAvg': 'n/a'"):
        read_subject(subject)


def test_subject_without_stats_is_an_error_and_unfinished_or_failed_ones_are_excluded(tiny_world, tmp_path):
    no_stats = _copy(_subject(tiny_world, index=0), tmp_path / "no_stats")
    shutil.rmtree(no_stats / "stats")
    with pytest.raises(StatsError, match=r"subject no_stats: .*aseg\.stats is missing"):
        read_subject(no_stats)
    unfinished = _copy(_subject(tiny_world, index=1), tmp_path / "unfinished")
    (unfinished / "scripts" / "recon-all.done").unlink()
    failed = _copy(_subject(tiny_world, index=2), tmp_path / "failed")
    (failed / "scripts" / "recon-all.log").write_text(
        "ERROR RETURN OF LINE SEARCH (normal chatter)\nrecon-all -s failed exited with ERRORS at Mon Jan 1\n")
    good = _copy(_subject(tiny_world, index=3), tmp_path / "good")
    (good / "scripts" / "recon-all.log").write_text(
        "ERROR RETURN OF LINE SEARCH\nrecon-all -s good finished without error at Mon Jan 1\n")
    dirs = [str(unfinished), str(failed), str(good), str(tmp_path / "absent")]
    keys = [{"participant_id": f"p{i}", "session_id": "s"} for i in range(4)]
    features, excluded = read_subjects(dirs, keys)
    assert list(features["participant_id"]) == ["p2"]
    reasons = dict(zip(excluded["participant_id"], excluded["reason"], strict=True))
    assert "recon-all.done is missing" in reasons["p0"]
    assert "exited with ERRORS" in reasons["p1"]
    assert "does not exist" in reasons["p3"]
    assert recon_all_status(good) is None


def test_stats_only_folders_are_judged_by_their_stats_and_incomplete_ones_excluded_or_all_named(tiny_world, tmp_path):
    """Shared FreeSurfer stats often come without scripts/: complete stats are used (with a note), an aseg-only
    subject is excluded with its reason, and under features.incomplete: error every bad subject is named at once."""
    from rnce.features.freesurfer import IncompleteSubjectsError

    shared = _copy(_subject(tiny_world, index=0), tmp_path / "shared")
    shutil.rmtree(shared / "scripts")
    aseg_only = _copy(_subject(tiny_world, index=1), tmp_path / "aseg_only")
    shutil.rmtree(aseg_only / "scripts")
    for hemi in ("lh", "rh"):
        (aseg_only / "stats" / f"{hemi}.aparc.stats").unlink()
    truncated = _copy(_subject(tiny_world, index=2), tmp_path / "truncated")
    path = truncated / "stats" / "lh.aparc.stats"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    dirs = [str(shared), str(aseg_only), str(truncated)]
    keys = [{"participant_id": f"p{i}", "session_id": "s"} for i in range(3)]
    features, notes = read_subjects(dirs, keys)
    assert list(features["participant_id"]) == ["p0"] and features.drop(columns=list(keys[0])).notna().all().all()
    rows = notes.set_index("participant_id")
    assert rows.loc["p0", "excluded"] == False and "no scripts/ folder" in rows.loc["p0", "reason"]  # noqa: E712
    assert rows.loc["p1", "excluded"] == True and "stats/lh.aparc.stats, stats/rh.aparc.stats missing" in rows.loc["p1", "reason"]  # noqa: E712,E501
    assert rows.loc["p2", "excluded"] == True and "truncated" in rows.loc["p2", "reason"]  # noqa: E712
    with pytest.raises(IncompleteSubjectsError) as err:
        read_subjects(dirs, keys, incomplete="error")
    assert "2 FreeSurfer subject(s)" in str(err.value) and "aseg_only" in str(err.value) and "truncated" in str(err.value)
    # the workflow's scripts print such an error without a traceback
    code = ("from rnce.logs import to_file; from rnce.features.freesurfer import IncompleteSubjectsError; "
            "to_file(None); raise IncompleteSubjectsError('2 FreeSurfer subject(s) cannot be used')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "2 FreeSurfer subject(s)" in result.stderr and "Traceback" not in result.stderr
    # the note is not a failure: the kept image stays in the evaluation and brain-age tables
    from rnce.qc_tables import failed_images

    notes.assign(cohort="c").rename(columns={"subject_dir": "source"}).to_csv(tmp_path / "ex.tsv", sep="\t", index=False)
    assert sorted(failed_images([], str(tmp_path / "ex.tsv"))["participant_id"]) == ["p1", "p2"]


def test_duplicated_freesurfer_subject_is_an_error(tmp_path):
    table = pd.DataFrame({"participant_id": ["a", "b"], "session_id": ["1", "1"], "age": [60, 61], "sex": ["M", "F"],
                          "site": ["s", "s"], "freesurfer_id": ["subj1", "subj1"]})
    table.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    with pytest.raises(CohortError, match="several images map to one FreeSurfer subject: subj1"):
        load_cohort("c", {"participants": str(tmp_path / "p.tsv"), "roles": ["brain_age"], "images": False,
                          "subjects_dir": str(tmp_path)})


@pytest.mark.skipif(not REAL, reason="set RNCE_REAL_DATA to the real-data folder")
def test_real_freesurfer_outputs(tmp_path, caplog, tiny_world):
    real = Path(REAL) / "freesurfer"
    bert = read_subject(real / "bert")  # FreeSurfer 7.2
    assert bert.notna().all()
    assert bert["Left-Thalamus_volume"] == 8066.3 and bert["lh_entorhinal_thickness"] == 3.069
    assert bert["eTIV"] == pytest.approx(1520021.264474)
    fs6 = read_subject(real / "nfmrix_sub-01")  # FreeSurfer 6.0.1: Left-Thalamus-Proper
    assert fs6.notna().all() and fs6["Left-Thalamus_volume"] == 7342.7
    old = _copy(_subject(tiny_world), tmp_path / "old")  # FreeSurfer 5.1 aseg.stats: IntraCranialVol only
    shutil.copy(real / "old_format_fs51" / "stats" / "aseg.stats", old / "stats" / "aseg.stats")
    with caplog.at_level(logging.WARNING):
        series = read_subject(old)
    assert series["eTIV"] == pytest.approx(1218205.205907) and "IntraCranialVol" in caplog.text
    assert series["Left-Thalamus_volume"] == 7820.0


def test_recon_all_backend_with_a_fake_recon_all(tmp_path, monkeypatch, tiny_world):
    from rnce.features.recon_all import run_recon_all

    bin_dir = fake_recon_all(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    image = next((tiny_world[0] / "images" / "evaluate").iterdir())
    sd = tmp_path / "subjects"
    subject = run_recon_all(image, sd, "sub-01", threads=2)
    assert read_subject(subject)["lh_entorhinal_thickness"] == 2.5
    run_recon_all(image, sd, "sub-01", threads=2)  # finished: reused
    assert (bin_dir / "calls.txt").read_text().split() == ["sub-01"]
    (subject / "scripts" / "recon-all.done").unlink()  # unfinished: run again
    run_recon_all(image, sd, "sub-01", threads=2)
    assert (bin_dir / "calls.txt").read_text().split() == ["sub-01", "sub-01"]


def test_ants_backend_measures_boxes_and_excludes_a_bad_image(tiny_world, tmp_path):
    from rnce.features.ants import ants_feature_names, ants_features
    from rnce.regions import read_regions

    regions = read_regions(ROOT / "config" / "regions.tsv")
    image = sorted((tiny_world[0] / "images" / "evaluate").iterdir())[0]
    values, measures = ants_features(image, regions, thickness_iterations=3)  # 3: fast, thickness too thin
    columns = ants_feature_names(regions)
    assert list(values) == columns and len(columns) == 18 * 2 + 3
    assert not any(c.endswith("_volume") and "Hippocampus" in c for c in columns)
    values = pd.Series(values)
    assert values.notna().all() and 0.8e6 < values["ants_icv"] < 3e6
    assert values["ants_csf_volume"] > values["ants_ventricle_csf_volume"] > 0
    assert (values[[c for c in columns if c.endswith("_thickness")]] > 0).all()
    assert measures["icv_litres"] == pytest.approx(values["ants_icv"] / 1e6)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    rows = [{"participant_id": "p1", "session_id": "s", "cohort": "c", "site": "x", "age": 70, "sex": "F",
             "diagnosis": "CN", "t1w": str(broken)}]
    features, excluded = extract_shard(rows, "ants", str(ROOT / "config" / "regions.tsv"))
    assert features.empty and list(excluded["participant_id"]) == ["p1"] and excluded["excluded"].iat[0]
    assert "ANTs failed" in excluded["reason"].iat[0]


def test_an_implausible_ants_image_is_excluded_with_its_measures(monkeypatch):
    from rnce.features import ants

    def fake(path, regions, iterations, resolution):
        icv = 2.8 if path == "big.nii.gz" else 1.5
        return ({name: 1.0 for name in ants.ants_feature_names(regions)},
                {"icv_litres": icv, "gm_fraction": 0.45, "wm_fraction": 0.35, "csf_fraction": 0.2, "thickness_mm": 2.4})

    monkeypatch.setattr(ants, "ants_features", fake)
    rows = [{"participant_id": p, "session_id": "s", "cohort": "c", "site": "x", "age": 70, "sex": "F",
             "diagnosis": "CN", "t1w": f"{p}.nii.gz"} for p in ("big", "ok")]
    features, excluded = extract_shard(rows, "ants", str(ROOT / "config" / "regions.tsv"))
    assert list(features["participant_id"]) == ["ok"]
    notes = excluded.set_index("participant_id")
    assert notes.loc["big", "excluded"] and "icv_litres 2.8 outside 1.0-2.2" in notes.loc["big", "reason"]
    assert not notes.loc["ok", "excluded"] and notes.loc["ok", "reason"].startswith("ANTs measures: icv_litres 1.5")
    assert ants.implausible({"icv_litres": 1.5, "gm_fraction": 0.7, "wm_fraction": 0.2, "csf_fraction": 0.1,
                             "thickness_mm": 0.8}) == ["gm_fraction 0.7 outside 0.25-0.65", "thickness_mm 0.8 outside 1.0-5.0"]


@pytest.mark.skipif(not REAL, reason="set RNCE_REAL_DATA to the real-data folder")
def test_ants_fallback_measures_are_plausible_on_the_real_dev_scans():
    """Issue 31: ICV between 1.0 and 2.2 l on every real head (registration and tissue classes; three thickness
    iterations), and the full default fallback plausible on one of them."""
    from rnce.features.ants import ants_features, implausible
    from rnce.regions import read_regions

    regions = read_regions(ROOT / "config" / "regions.tsv")
    scans = sorted((Path(REAL) / "T1").rglob("*.nii.gz"))
    assert len(scans) >= 5
    for path in scans:
        measures = ants_features(path, regions, thickness_iterations=3)[1]
        assert 1.0 <= measures["icv_litres"] <= 2.2, (path.name, measures)
        assert not [p for p in implausible(measures) if not p.startswith("thickness")], (path.name, measures)
    features, measures = ants_features(scans[-1], regions)
    assert implausible(measures) == [] and 1.2 < measures["thickness_mm"] < 3.5, measures
    assert np.isfinite(list(features.values())).all()


def test_outliers_are_not_called_in_tiny_sites():
    from rnce.features.extract import outliers

    rng = np.random.default_rng(0)
    big = pd.DataFrame({"participant_id": [f"b{i}" for i in range(30)], "session_id": "1", "cohort": "c",
                        "site": "big", "age": 60.0, "sex": "M", "diagnosis": "CN", "x": rng.normal(size=30)})
    big.loc[0, "x"] = 40.0
    tiny = pd.DataFrame({"participant_id": ["t0", "t1", "t2"], "session_id": "1", "cohort": "c", "site": "tiny",
                         "age": 60.0, "sex": "M", "diagnosis": "CN", "x": [1.0, 1.01, 3.0]})  # z of 130 at n = 3
    flagged = outliers(pd.concat([big, tiny], ignore_index=True))
    assert list(flagged["participant_id"]) == ["b0"]

"""The participants-table contract: good tables load, bad ones name file, line and column."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import good_table, write_image

from rnce.cohort import (
    CohortError,
    assign_shards,
    load_cohort,
    read_bids,
    read_participants,
    shard_count,
)


def _write(folder, table):
    path = folder / "participants.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def test_good_table_loads_typed(tmp_path):
    table = read_participants(_write(tmp_path, good_table(tmp_path)))
    assert len(table) == 4
    assert table["age"].dtype.kind == "f"
    assert table["t1w"].iloc[0] == str(tmp_path / "img" / "s0.nii.gz")
    assert table["amyloid"].isna().all()


def _error(tmp_path, table) -> str:
    with pytest.raises(CohortError) as err:
        read_participants(_write(tmp_path, table))
    return str(err.value)


def test_duplicate_participant_session(tmp_path):
    table = good_table(tmp_path)
    table.loc[2, ["participant_id", "session_id"]] = ["sub0", "ses-1"]
    msg = _error(tmp_path, table)
    assert "participants.tsv, line 4, column 'participant_id+session_id'" in msg
    assert "duplicate of line 2" in msg


def test_missing_required_column(tmp_path):
    msg = _error(tmp_path, good_table(tmp_path).drop(columns="sex"))
    assert "column 'sex': required column is missing" in msg


@pytest.mark.parametrize("value,expected", [("sixty", "'sixty' is not a number"),
                                            ("150", "150 is above the maximum 120"),
                                            ("-3", "-3 is below the minimum 0")])
def test_bad_age(tmp_path, value, expected):
    table = good_table(tmp_path)
    table["age"] = table["age"].astype(str)
    table.loc[1, "age"] = value
    msg = _error(tmp_path, table)
    assert f"line 3, column 'age': {expected}" in msg


def test_unknown_sex_code(tmp_path):
    table = good_table(tmp_path)
    table.loc[3, "sex"] = "unknown"
    assert "line 5, column 'sex': 'unknown' is not one of ['M', 'F']" in _error(tmp_path, table)


def test_bids_and_lower_case_sex_codes_are_read(tmp_path):
    table = good_table(tmp_path)
    table["sex"] = (["male", "Female", "m", "f", "M", "F"] * len(table))[: len(table)]
    table.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    assert list(read_participants(tmp_path / "p.tsv")["sex"]) == (["M", "F"] * len(table))[: len(table)]


def test_image_that_does_not_exist(tmp_path):
    table = good_table(tmp_path)
    table.loc[0, "t1w"] = "img/missing.nii.gz"
    msg = _error(tmp_path, table)
    assert "line 2, column 't1w': image file does not exist" in msg and "missing.nii.gz" in msg


def test_cohort_with_no_images(tmp_path):
    msg = _error(tmp_path, good_table(tmp_path).iloc[0:0])
    assert "the table has no rows: the cohort has no images" in msg


def test_empty_required_value_and_several_problems_reported(tmp_path):
    table = good_table(tmp_path)
    table["age"] = table["age"].astype(str)
    table.loc[0, "site"] = ""
    table.loc[2, "age"] = "x"
    msg = _error(tmp_path, table)
    assert "2 problem(s)" in msg
    assert "line 2, column 'site': required value is empty" in msg and "line 4, column 'age'" in msg


def test_unknown_role_and_role_requirements(tmp_path):
    path = _write(tmp_path, good_table(tmp_path))
    with pytest.raises(CohortError, match=r"unknown role\(s\) \['pretraining'\]"):
        load_cohort("c", {"participants": str(path), "roles": ["pretraining"]})
    with pytest.raises(CohortError, match="role gwas needs 'genotypes'"):
        load_cohort("c", {"participants": str(path), "roles": ["gwas"]})
    table = load_cohort("c", {"participants": str(path), "roles": ["evaluate", "gwas"], "genotypes": "x"})
    assert (table["cohort"] == "c").all()


def test_images_false_allows_no_t1w(tmp_path):
    table = good_table(tmp_path).drop(columns="t1w")
    path = _write(tmp_path, table)
    with pytest.raises(CohortError, match="column 't1w': required column is missing"):
        read_participants(path)
    assert len(read_participants(path, images=False)) == 4


def test_shards_are_stable_when_a_participant_is_added():
    ids = [f"sub{i:05d}" for i in range(1000)]
    table = pd.DataFrame({"participant_id": ids, "session_id": "ses-1"})
    before = assign_shards(table, 50)
    grown = pd.concat([table, pd.DataFrame({"participant_id": ["new"], "session_id": ["ses-1"]})])
    after = assign_shards(grown, 50)
    assert shard_count(1000, 50) == shard_count(1001, 50) == 32
    assert (after["shard"].iloc[:1000].to_numpy() == before["shard"].to_numpy()).all()
    assert before["shard"].str.fullmatch(r"\d{4}").all()
    sizes = before["shard"].value_counts()
    assert sizes.max() < 3 * sizes.mean()  # hash spreads images evenly enough
    assert shard_count(35761, 100) == 512


def test_bids_root(tmp_path):
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "sex": ["F", "M"], "site": ["a", "b"],
                  "age": ["70", "71"]}).to_csv(root / "participants.tsv", sep="\t", index=False)
    for sub in ("sub-01", "sub-02"):
        for ses in ("1", "2"):
            write_image(root / sub / f"ses-{ses}" / "anat" / f"{sub}_ses-{ses}_T1w.nii.gz")
    pd.DataFrame({"session_id": ["ses-1", "ses-2"], "age": ["70", "72.5"]}).to_csv(
        root / "sub-01" / "sub-01_sessions.tsv", sep="\t", index=False)
    table = read_bids(root)
    assert list(table["participant_id"]) == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert list(table["session_id"]) == ["ses-1", "ses-2", "ses-1", "ses-2"]
    assert table.loc[1, "age"] == 72.5 and table.loc[3, "age"] == 71
    assert (table["diagnosis"] == "unknown").all()
    (root / "participants.tsv").write_text("participant_id\tsex\tsite\tage\nsub-01\tX\ta\t70\nsub-02\tmale\tb\t71\n")
    with pytest.raises(CohortError, match=r"participants.tsv, sub-01 ses-1, column 'sex': 'X' is not one of"):
        read_bids(root)
    # a value from a sessions.tsv names that file
    (root / "participants.tsv").write_text("participant_id\tsex\tsite\tage\nsub-01\tF\ta\t70\nsub-02\tmale\tb\t71\n")
    pd.DataFrame({"session_id": ["ses-1", "ses-2"], "age": ["70", "old"]}).to_csv(
        root / "sub-01" / "sub-01_sessions.tsv", sep="\t", index=False)
    with pytest.raises(CohortError, match=r"sub-01_sessions.tsv, sub-01 ses-2, column 'age': 'old' is not a number"):
        read_bids(root)
    # a one-scanner dataset without a site column: the error says what to do; the cohort's `site` key fills it
    (root / "sub-01" / "sub-01_sessions.tsv").unlink()
    (root / "participants.tsv").write_text("participant_id\tsex\tage\nsub-01\tfemale\t70\nsub-02\tmale\t71\n")
    with pytest.raises(CohortError, match=r"column 'site': required column is missing \(a single-site cohort"):
        read_bids(root)
    table = load_cohort("one", {"bids": str(root), "roles": ["pretrain"], "site": "scanner1", "features": "ants"})
    assert (table["site"] == "scanner1").all() and list(table["sex"]) == ["F", "F", "M", "M"]


def test_canonical_config_sorts_keys_but_keeps_the_cohorts_order():
    from rnce.workflow_config import canonical, make_canonical

    config = {"ssl": {"stage1": {"epochs": 1, "batch_size": 2}, "methods": ["simclr", "rnce"]},
              "cohorts": {"ukb": {"roles": ["pretrain"], "participants": "u.tsv"}, "adni": {"participants": "a.tsv"}},
              "simulate": {"cohorts": {"z": {"n": 1}, "a": {"n": 2}}}}
    result = canonical(config)
    assert list(result) == ["cohorts", "simulate", "ssl"] and list(result["ssl"]["stage1"]) == ["batch_size", "epochs"]
    assert list(result["cohorts"]) == ["ukb", "adni"] and list(result["cohorts"]["ukb"]) == ["participants", "roles"]
    assert list(result["simulate"]["cohorts"]) == ["z", "a"] and result["ssl"]["methods"] == ["simclr", "rnce"]
    same = dict(config)
    make_canonical(same)
    assert repr(same) == repr(result) and same == config

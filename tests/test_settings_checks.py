"""Settings the data make impossible are errors before any job (rnce.settings_checks), one test per check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY_CONFIG, load_config, run_snakemake

from rnce.plan.sizes import Cohort, Sizes
from rnce.regions import read_regions
from rnce.settings_checks import SettingsError, brain_age_problems, check_settings, ssl_problems

REGIONS = read_regions(ROOT / "config" / "regions.tsv")


def sizes(n_pretrain: int) -> Sizes:
    return Sizes({"pre": Cohort("pre", ["pretrain"], True, "subjects_dir", {"0000": n_pretrain}, n_pretrain, True)})


def ssl_config(**changes) -> dict:
    ssl = load_config(TINY_CONFIG)["ssl"]
    for key, value in changes.items():
        block, _, field = key.partition("__")
        if field:
            ssl[block] = {**ssl[block], field: value}
        else:
            ssl[key] = value
    return ssl


def test_the_tiny_settings_pass():
    assert ssl_problems(ssl_config(), sizes(120), REGIONS) == []


def test_a_batch_larger_than_the_pretraining_images():
    problems = ssl_problems(ssl_config(validation_fraction=0.1, stage1__batch_size=110), sizes(120), REGIONS)
    assert problems == [next(p for p in problems if p.startswith("ssl.stage1.batch_size: 110 is larger than the 108 "
                                                                  "images"))]
    assert "120 pretraining images, less ssl.validation_fraction 0.1" in problems[0]
    reconstruction = ssl_problems(ssl_config(reconstruction__batch_size=200), sizes(120), REGIONS)
    assert any(p.startswith("ssl.reconstruction.batch_size: 200 is larger than the 120 images") for p in reconstruction)


def test_an_rnce_batch_not_larger_than_the_representation():
    problems = ssl_problems(ssl_config(rep_dim=32, stage1__batch_size=32), sizes(500), REGIONS)
    assert any(p.startswith("ssl.stage1.batch_size: 32 is not larger than ssl.rep_dim 32") for p in problems), problems
    # SimCLR alone has no residual: the same batch is fine
    assert ssl_problems(ssl_config(rep_dim=32, stage1__batch_size=32, methods=["simclr"]), sizes(500), REGIONS) == []


def test_an_rnce_batch_not_larger_than_the_auxiliary_columns():
    problems = ssl_problems(ssl_config(stage2__batch_size=100), sizes(500), REGIONS)
    assert problems == ["ssl.stage2.batch_size: 100 is not larger than the 104 auxiliary columns: R-NCE's "
                        "R' = H - P_A[H] (eq. 2) is zero when a batch has no more samples than A has columns"]


def ages(n_per: dict[tuple[int, str], int]) -> pd.DataFrame:
    rows = [{"participant_id": f"p{a}{s}{i}", "age": a + 0.5, "sex": s} for (a, s), n in n_per.items()
            for i in range(n)]
    return pd.DataFrame(rows)


BRAIN_AGE = {"age_buckets": [[44, 53], [54, 63]], "train_per_bucket": 5, "short_buckets": "error"}


def test_age_buckets_that_miss_the_cohorts_ages():
    young = ages({(23, "F"): 10, (30, "M"): 10})
    problems = brain_age_problems(BRAIN_AGE, {"ixi": young})
    assert problems == ["brain_age.age_buckets: [[44, 53], [54, 63]] hold none of the 20 brain-age subjects "
                        "(ages 24-30 in ixi)"]


def test_a_train_per_bucket_more_than_a_bucket_holds():
    table = ages({(45, "F"): 9, (45, "M"): 9, (55, "F"): 3, (55, "M"): 9})
    problems = brain_age_problems(BRAIN_AGE, {"c": table})
    assert problems == [p for p in problems if "54-63, sex F holds (3 subjects)" in p] and len(problems) == 1
    assert brain_age_problems({**BRAIN_AGE, "short_buckets": "use_all"}, {"c": table}) == []
    everything = brain_age_problems({**BRAIN_AGE, "short_buckets": "use_all", "train_per_bucket": 9}, {"c": table})
    assert everything and "every subject would train, none validate" in everything[0]


def test_every_problem_is_named_at_once():
    with pytest.raises(SettingsError) as err:
        check_settings({"ssl": ssl_config(stage1__batch_size=500, stage2__batch_size=100), "brain_age": BRAIN_AGE},
                       sizes(120), REGIONS, {"c": ages({(23, "F"): np.int64(4)})})
    text = str(err.value)
    assert text.count("\n  ") == 3 and "stage1.batch_size: 500" in text and "age_buckets" in text


def test_the_dry_run_stops_on_an_impossible_batch(tmp_path):
    result = run_snakemake("all", "-n", "--configfile", str(ROOT / "config" / "config.yaml"), "--config",
                           "ssl={stage1: {epochs: 1, batch_size: 170, learning_rate: 0.001, weight_decay: 0.0}}",
                           "--directory", str(tmp_path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "ssl.stage1.batch_size: 170 is larger than the 162 images rnce/simclr train on" in output, output[-2000:]

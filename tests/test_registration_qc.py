"""The registration QC decision: per-site robust z with a floor, over stored scores (rnce.imaging.qc)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnce.imaging.qc import decide

REAL = os.environ.get("RNCE_REAL_DATA")


def _scores(site: str, values, reason: str = "") -> pd.DataFrame:
    return pd.DataFrame({"participant_id": [f"{site}{i}" for i in range(len(values))], "site": site,
                         "template_correlation": values, "reason": reason})


def test_each_site_is_judged_against_its_own_distribution_and_the_floor():
    rng = np.random.default_rng(0)
    low_site = np.r_[rng.normal(0.47, 0.02, 30), 0.40]  # a 2 mm, older site: 0.40 is an ordinary low score
    high_site = np.r_[rng.normal(0.65, 0.02, 30), 0.42]  # a 1 mm site: 0.42 is 4.6 robust SDs below its median
    small = [0.30, 0.40, 0.45]  # too few for a robust z: the floor alone
    table = decide(pd.concat([_scores("low", low_site), _scores("high", high_site), _scores("small", small),
                              _scores("bad", [0.6], "tissue segmentation: 2 classes")], ignore_index=True),
                   floor=0.35, robust_z=3.5, min_site_size=10)
    failed = table.loc[~table["passed"], ["participant_id", "reason"]].set_index("participant_id")["reason"]
    assert set(failed.index) == {"high30", "small0", "bad0"}, failed
    assert "robust SDs below site high's median" in failed["high30"] and "register.qc_robust_z" in failed["high30"]
    assert "< register.qc_floor 0.35" in failed["small0"] and failed["bad0"].startswith("tissue segmentation")
    assert table.loc[table["site"] == "small", "robust_z"].isna().all()
    assert (table.loc[table["site"] == "low", "site_images"] == 31).all()
    # a tight site: the spread is at least MIN_SPREAD (0.05), so 0.1 below its median is no outlier, 0.2 is
    tight = decide(_scores("tight", [0.6] * 20 + [0.5, 0.4]), 0.35, 3.5, 10)
    assert list(tight["passed"]) == [True] * 21 + [False]


def test_an_image_without_a_score_fails():
    table = decide(_scores("a", [np.nan, 0.5]), 0.35, 3.5, 10)
    assert list(table["passed"]) == [False, True] and table["reason"].iat[0] == "no template_correlation"


@pytest.mark.skipif(not REAL, reason="set RNCE_REAL_DATA to the real-data folder")
def test_real_scans_pass_and_every_deliberately_broken_registration_fails(tmp_path):
    """Issue 31: the real dev scans (4 IXI at 2 mm, one 0.88 mm head), a tilted head and one down to the
    shoulders pass; upside down, mirrored, permuted axes, half cropped, inverted contrast and noise fail."""
    from broken_scans import BROKEN, LEGITIMATE, broken_versions

    from rnce.imaging.register import register_to_template

    scans = sorted((Path(REAL) / "T1").rglob("*.nii.gz"))
    paths = {p.name.split(".")[0]: str(p) for p in scans}
    assert len(paths) >= 5
    paths.update(broken_versions(paths[min(k for k in paths if k.startswith("IXI"))], tmp_path))
    rows = [{"participant_id": name, "site": "dev", "reason": "",
             "template_correlation": register_to_template(path, resolution=2.0).template_correlation}
            for name, path in paths.items()]
    table = decide(pd.DataFrame(rows), floor=0.35, robust_z=3.5, min_site_size=10).set_index("participant_id")
    broken = table.loc[list(BROKEN)]
    good = table.drop(index=list(BROKEN))
    assert not broken["passed"].any(), broken
    assert good["passed"].all() and set(LEGITIMATE) <= set(good.index), good
    assert good["template_correlation"].min() - broken["template_correlation"].max() > 0.08, table

"""How hard the simulated world is: FreeSurfer's probe figures on a stats-only evaluate cohort.

The world must be as hard as real data: FreeSurfer features of the simulated
evaluate cohort, harmonized (ComBat, age and sex) and probed exactly as the
evaluation stage does (tuned L2, leave-``n_holdout``-out bootstrap), should
land in the ranges published for ADNI (:data:`ADNI_RANGES`; sources in
config/README.md, section ``simulate``). The planted image-only quantity (the
focal amyloid-driven thinning, ``truth/evaluate_latent.tsv``) is probed too:
it is the oracle the image-only task can reach.

Only tests and checks use this module; no stage imports it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# FreeSurfer-feature linear-probe figures in ADNI (AUROC; age: R^2 of CN), the calibration targets
ADNI_RANGES = {
    "ad_vs_cn": (0.85, 0.93), "mci_vs_cn": (0.65, 0.78), "ad_vs_mci": (0.70, 0.82),
    "conversion_3y": (0.70, 0.82), "amyloid": (0.55, 0.68), "age": (0.35, 0.60),
}
TASKS = ["age", "ad_vs_cn", "mci_vs_cn", "ad_vs_mci", "conversion", "amyloid"]


def stats_only(cfg: dict, n_subjects: int = 1000, sites: int = 3) -> dict:
    """The ``simulate`` block with only an evaluate cohort of ``n_subjects``, no images."""
    out = copy.deepcopy(cfg)
    spec = dict(cfg["cohorts"].get("evaluate", {"age_range": [55, 92], "max_visits": 5}))
    spec.update(n_subjects=n_subjects, sites=sites, images=False, scanned_visits=1)
    spec.setdefault("max_visits", 5)
    out["cohorts"] = {"evaluate": spec}
    return out


def fs_probe_figures(world: str | Path, n_boot: int = 100, n_holdout: int = 100, seed: int = 0) -> pd.DataFrame:
    """Probe figures (task, n, metric mean, SD) of the harmonized FreeSurfer features and of the oracle
    (the planted image-only quantity) on a simulated world's evaluate cohort."""
    from rnce.evaluate.probes import bootstrap_scores
    from rnce.evaluate.tasks import task_kind, task_labels
    from rnce.features.freesurfer import read_subject
    from rnce.harmonize import learn

    world = Path(world)
    table = pd.read_csv(world / "participants" / "evaluate.tsv", sep="\t",
                        dtype={"participant_id": str, "session_id": str}).assign(cohort="evaluate")
    features = pd.DataFrame([read_subject(world / "freesurfer" / "evaluate" / f"{p}_{s}").drop("eTIV")
                             for p, s in table[["participant_id", "session_id"]].to_numpy()])
    raw = pd.concat([table[["participant_id", "session_id", "cohort", "site", "age", "sex"]], features], axis=1)
    _, harmonized = learn(raw, ["age", "sex"])
    latent = pd.read_csv(world / "truth" / "evaluate_latent.tsv", sep="\t",
                         dtype={"participant_id": str, "session_id": str})
    key = ["participant_id", "session_id"]
    labels = task_labels(table, TASKS, [3])
    rows = []
    for task, part in labels.groupby("task", sort=False):
        y = part["label"].to_numpy(float)
        X = part[key].merge(harmonized, on=key, how="left")[list(features.columns)].to_numpy(float)
        oracle = part[key].merge(latent, on=key, how="left")[["focal_thinning"]].to_numpy(float)
        kind = task_kind(task)
        for name, data in (("fs", X), ("oracle", oracle)):
            scores = bootstrap_scores(data, y, kind, n_boot=n_boot, n_holdout=min(n_holdout, len(y) // 4),
                                      seed=seed)
            rows.append({"task": task, "feature_set": name, "n": len(y), "mean": scores.mean(),
                         "sd": scores.std(ddof=1)})
    return pd.DataFrame(rows)


def in_ranges(figures: pd.DataFrame) -> pd.DataFrame:
    """The FS rows with the ADNI range of their task and whether they fall inside it."""
    fs = figures[figures["feature_set"] == "fs"].copy()
    fs["low"] = fs["task"].map(lambda t: ADNI_RANGES.get(t, (np.nan, np.nan))[0])
    fs["high"] = fs["task"].map(lambda t: ADNI_RANGES.get(t, (np.nan, np.nan))[1])
    fs["inside"] = (fs["mean"] >= fs["low"]) & (fs["mean"] <= fs["high"])
    return fs.dropna(subset=["low"])


def main(argv: list[str] | None = None) -> None:
    """``python -m rnce.simulate.calibration [config.yaml]``: the calibration table of a config's world."""
    import argparse
    import tempfile

    import yaml

    from rnce.simulate.world import simulate_world

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("config", nargs="?", default="config/config.yaml")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=100)
    args = parser.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())["simulate"]
    with tempfile.TemporaryDirectory() as world:
        simulate_world(stats_only(cfg, args.subjects), world)
        figures = fs_probe_figures(world, n_boot=args.n_boot)
    table = figures.pivot(index="task", columns="feature_set", values="mean")
    checked = in_ranges(figures).set_index("task")
    table["adni_range"] = checked["low"].astype(str) + "-" + checked["high"].astype(str)
    table["fs_inside"] = checked["inside"]
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()

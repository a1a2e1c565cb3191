"""An ablation row of the planted study: R-NCE retrained on the study's images with one or more settings
changed (default: ``aux_ridge=1``, the ridge-shrunk fit of A on H, against the study's exact projection of
eq. 2), probed with the study's full protocol (its bootstraps and holdouts) and compared with the study's
R-NCE by the paired permutation test. Needs a finished study (`make study`); the models are kept under
results_study/ablation/<name>/, so an interrupted run resumes.

Run from the repo root: python benchmarks/ablation.py [--set aux_ridge=1] [--cores 2]
Last line: ablation: <name> - rnce on amyloid +0.xx (goal: reported, no direction)
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
import study_report as report
import yaml
from learning_curve import train_size

from rnce.evaluate.probes import permutation_pvalue
from rnce.evaluate.run import probe_feature_set
from rnce.ssl.data import Images, validation_mask
from rnce.ssl.embed import embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="an ssl setting to change (default aux_ridge=1)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    changes = args.set or ["aux_ridge=1"]
    overrides = {}
    for item in changes:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. aux_ridge=1")
        overrides[key] = yaml.safe_load(value)
    config = report.study_config()
    unknown = [k for k in overrides if k not in config["ssl"]]
    if unknown:
        raise SystemExit(f"--set: {unknown} are not ssl settings; known: {sorted(config['ssl'])}")
    results = report.ROOT / config["results"]
    name = "rnce_" + "_".join(f"{k}{v}" for k, v in overrides.items())
    folder = results / "ablation" / name
    pretrain = [c for c, spec in config["cohorts"].items() if "pretrain" in spec["roles"]]
    images = Images(results / "patches", pretrain)
    full = int((~validation_mask(images.table, config["ssl"]["validation_fraction"])).sum())
    trained = train_size(full, full, config, results, args.cores, folder, overrides)
    evaluate = [c for c, spec in config["cohorts"].items() if "evaluate" in spec["roles"]]
    embedding = folder / "embedding.tsv"
    if not embedding.exists():
        embed("rnce", str(results / "patches"), evaluate, trained["aggregator"], trained["encoders"], str(embedding))
    ev = config["evaluate"]
    boot = probe_feature_set(str(results / "evaluation" / "labels.tsv"), str(results / "evaluation" / "tasks.tsv"),
                             str(embedding), name, ev["n_boot"], ev["n_holdout"], ev["seed"], ev["l2"],
                             str(folder / "bootstrap.tsv"), ev["l2_grid"], ev["inner_folds"])
    study = pd.read_csv(results / "evaluation" / "bootstrap" / "rnce.tsv", sep="\t")
    rows = []
    for task, mine in boot.groupby("task"):
        theirs = study[study["task"] == task].sort_values("bootstrap")["score"].to_numpy()
        ours = mine.sort_values("bootstrap")["score"].to_numpy()
        rows.append({"task": task, name: f"{ours.mean():.3f} ({ours.std(ddof=1):.3f})",
                     "rnce": f"{theirs.mean():.3f} ({theirs.std(ddof=1):.3f})",
                     "difference": round(float(ours.mean() - theirs.mean()), 3),
                     "p_value": permutation_pvalue(ours, theirs, ev["n_perm"], ev["seed"])})
    table = pd.DataFrame(rows)
    print(f"\nAblation {name} against the study's R-NCE (mean (SD) over {ev['n_boot']} bootstraps, paired "
          "permutation p)")
    print(table.to_string(index=False))
    gain = float(table.loc[table["task"] == "amyloid", "difference"].iat[0]) if "amyloid" in set(table["task"]) \
        else np.nan
    print(f"ablation: {name} - rnce on amyloid {gain:+.3f} (goal: reported, no direction)")


if __name__ == "__main__":
    main()

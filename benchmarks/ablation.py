"""An ablation row of the planted study: R-NCE retrained on the study's images with one or more settings
changed (default: ``aux_ridge=1``, the ridge-shrunk fit of A on H, against the study's exact projection of
eq. 2), probed with the study's full protocol (its bootstraps and holdouts) and compared with the study's
R-NCE by the paired permutation test; next to it, the two models' pretraining-only criteria (held-out pretrain
subjects, rnce.ssl.validation: what a choice between them may be made on) and their embeddings' diagnostics
(auxiliary and focal-thinning CV R^2 on the evaluate images, reported, never used to choose). Needs a finished study (`make study`); the models are kept under
results_study/ablation/<name>/, so an interrupted run resumes.

Run from the repo root: python benchmarks/ablation.py [--set aux_ridge=1] [--cores 2]
Last line: ablation: <name> - rnce on amyloid +0.xx (goal: reported, no direction)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import study_report as report
import yaml
from learning_curve import train_size, training_images

from rnce.evaluate.probes import permutation_pvalue
from rnce.evaluate.run import probe_feature_set
from rnce.ssl.diagnostics import diagnostics
from rnce.ssl.embed import embed
from rnce.ssl.validation import validation


def print_side_by_side(results: Path, folder: Path, name: str) -> None:
    """The pretraining-only criteria and the embeddings' diagnostics of the study's R-NCE and of the ablation."""
    study = results / "ssl" / "rnce"
    rows = []
    for label, where in (("rnce", study), (name, folder)):
        if not (where / "validation.tsv").exists():
            continue
        val = pd.read_csv(where / "validation.tsv", sep="\t")
        stage1 = val[val["representation"] == "stage1"].groupby("metric")["value"].median()
        emb = val[val["representation"] == "embedding"].set_index("metric")["value"]
        diag = pd.read_csv(where / "diagnostics.tsv", sep="\t")
        diag = diag[diag["representation"] == "embedding"].set_index("target")["cv_r2"]
        rows.append({"model": label, "held-out stage-1 aux R^2 (median box)": stage1.get("auxiliary_r2"),
                     "held-out stage-1 NCE top-1": stage1.get("nce_top1"),
                     "held-out embedding aux R^2": emb.get("auxiliary_r2"),
                     "held-out embedding NCE top-1": emb.get("nce_top1"),
                     "evaluate: embedding aux CV R^2": diag.get("auxiliary"),
                     "evaluate: embedding focal CV R^2": diag.get("focal_thinning")})
    print("\nPretraining-only criteria (held-out pretrain subjects; what a choice may use) and, reported only, "
          "the embeddings' diagnostics on the evaluate images")
    print(pd.DataFrame(rows).round(3).T.to_string(header=False))


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
    full = training_images(config, results)
    trained = train_size(full, full, config, results, args.cores, folder, overrides)
    evaluate = [c for c, spec in config["cohorts"].items() if "evaluate" in spec["roles"]]
    embedding = folder / "embedding.tsv"
    if not embedding.exists():
        embed("rnce", str(results / "patches"), evaluate, trained["aggregator"], trained["encoders"], str(embedding))
    features = results / "features"
    if not (folder / "validation.tsv").exists():
        validation("rnce", str(results / "patches"), pretrain, trained["encoders"], trained["aggregator"],
                   str(features / "auxiliary.tsv"), str(features / "auxiliary_boxes.json"),
                   trained["encoder_settings"], trained["aggregator_settings"], str(folder / "validation.tsv"),
                   args.cores)
    if not (folder / "diagnostics.tsv").exists():
        diagnostics("rnce", str(results / "patches"), evaluate, trained["encoders"], trained["aggregator"],
                    str(features / "auxiliary.tsv"), str(features / "auxiliary_boxes.json"),
                    [str(results / "demo" / "truth" / f"{c}_latent.tsv") for c in evaluate],
                    str(folder / "diagnostics.tsv"))
    print_side_by_side(results, folder, name)
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

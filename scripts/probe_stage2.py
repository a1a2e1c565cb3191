"""What stage 2 keeps of what stage 1 has: a finished study's stage-1 representations of the evaluate images
side by side (all boxes, the most a 64-d embedding could keep), their first 64 principal components (fitted on
the pretrain images), and aggregator embeddings, probed for the tasks (5-fold CV: amyloid, AD vs CN and MCI vs
CN AUROC, age R^2 of the CN subjects) and for what rnce.ssl.diagnostics measures (auxiliary features, planted
focal thinning: 5-fold CV ridge R^2). Reproduces docs/study.md stage-2 figures.

Probe the study's own models:
    python scripts/probe_stage2.py results_study rnce
Train one aggregator variant first (config/study.yaml's ssl settings with overrides, on the study's frozen
encoders and pretrain images; about a minute on one core), then probe it with the rest:
    python scripts/probe_stage2.py results_study rnce --train --set stage2.learning_rate=0.003 --set seed=1
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from probe_stage1 import study_ssl
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from rnce.ssl import train
from rnce.ssl.data import ID_COLUMNS, Images
from rnce.ssl.diagnostics import box_targets, cv_r2
from rnce.ssl.embed import image_representations
from rnce.ssl.jobs import make_job, settings
from rnce.ssl.tasks import box_representations

TASKS = {"amyloid": "classification", "ad_vs_cn": "classification", "mci_vs_cn": "classification",
         "age": "regression"}


def task_score(x: np.ndarray, ids: pd.DataFrame, labels: pd.DataFrame, task: str) -> float:
    """5-fold CV AUROC (logistic) or R^2 (ridge) of one task, penalty chosen inside each fold."""
    rows = ids.reset_index().merge(labels[labels["task"] == task], on=ID_COLUMNS)
    x, y = x[rows["index"].to_numpy()], rows["label"].to_numpy(float)
    grid = np.logspace(-4, 4, 9)
    if TASKS[task] == "regression":
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=1 / grid))
        return float(r2_score(y, cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=0))))
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=grid, cv=5, max_iter=2000))
    p = cross_val_predict(model, x, y.astype(int), cv=StratifiedKFold(5, shuffle=True, random_state=0),
                          method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def train_aggregator(results: Path, method: str, encoders: dict[str, str], overrides: list[str], out: Path) -> str:
    ssl, _ = study_ssl(overrides)
    features = results / "features"
    job = make_job(method, "aggregator", settings(ssl, method, "aggregator"), str(results / "patches"),
                   ["pretrain"], {"model": str(out / "aggregator.pt"), "metrics": str(out / "metrics.tsv"),
                                  "checkpoints": str(out / "checkpoints")},
                   auxiliary=str(features / "auxiliary.tsv"), auxiliary_boxes=str(features / "auxiliary_boxes.json"),
                   encoders=encoders)
    train.run(job)
    return job["out"]["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("method", choices=["rnce", "simclr", "barlow_twins"])
    parser.add_argument("--train", action="store_true", help="also train an aggregator (study settings + --set)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an ssl setting of config/study.yaml, e.g. stage2.epochs=400")
    parser.add_argument("--cohort", default="evaluate")
    args = parser.parse_args()
    results, features = args.results, args.results / "features"
    boxes = json.loads((features / "auxiliary_boxes.json").read_text())["boxes"]
    encoders = {box: str(results / "ssl" / args.method / "encoders" / f"{box}.pt") for box in boxes}
    missing = [p for p in [*encoders.values(), results / "evaluation" / "labels.tsv"] if not Path(p).exists()]
    if missing:
        raise SystemExit(f"{missing[0]}: missing; run the study first (make study)")
    device = torch.device("cpu")
    images, pretrain = Images(results / "patches", [args.cohort]), Images(results / "patches", ["pretrain"])
    ids = images.table[ID_COLUMNS].astype(str)
    try:
        keep, aux, focal = box_targets(images, str(features / "auxiliary.tsv"), str(features / "auxiliary_boxes.json"),
                                       "all", str(results / "demo" / "truth" / f"{args.cohort}_latent.tsv"))
    except ValueError as err:
        raise SystemExit(str(err)) from None
    reps = box_representations(images, encoders, device)
    flat, flat_pretrain = reps.flatten(1).numpy(), box_representations(pretrain, encoders, device).flatten(1).numpy()
    mean, sd = flat_pretrain.mean(0), flat_pretrain.std(0) + 1e-6
    _, _, vt = np.linalg.svd((flat_pretrain - mean) / sd, full_matrices=False)
    representations = {"stage 1, all boxes side by side": flat,
                       "stage 1, 64 principal components": ((flat - mean) / sd) @ vt[:64].T}
    aggregators = {"the study's aggregator": str(results / "ssl" / args.method / "aggregator.pt")}
    with tempfile.TemporaryDirectory() as scratch:
        if args.train:
            label = f"aggregator {' '.join(args.set) or 'as in the study'}"
            aggregators[label] = train_aggregator(results, args.method, encoders, args.set, Path(scratch))
        for label, path in aggregators.items():
            representations[label] = image_representations(args.method, images, encoders, path, device, box_reps=reps)
    labels = pd.read_csv(results / "evaluation" / "labels.tsv", sep="\t",
                         dtype={"participant_id": str, "session_id": str})
    print(f"{args.method}: {len(ids)} {args.cohort} images; 5-fold CV")
    for label, x in representations.items():
        scores = {task: task_score(x, ids, labels, task) for task in TASKS}
        scores["auxiliary"] = float(np.nanmean(cv_r2(x[keep], aux[keep])))
        scores["focal thinning"] = float(cv_r2(x[keep], focal[keep])[0])
        print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()

"""R-NCE's learning curve in the pretraining cohort's size: does stage 2 gain from the paper's data regime?

Trains R-NCE (all 18 stage-1 encoders, then the aggregator) on nested subsets of the planted study's
training images (whole subjects, rnce.ssl.data.nested_subset) at equal optimizer steps (stage 1 and stage 2
keep the study's step counts: fewer images, more epochs), with the study's settings, and probes each on one
fixed evaluation cohort (the study's evaluate images): amyloid and AD vs CN AUROC (the paper's bootstrap
protocol with --n-boot samples), and the embedding's auxiliary and focal-thinning 5-fold CV R^2
(rnce.ssl.diagnostics). The full size is the study's own R-NCE (its models, re-probed with the same
bootstraps). Needs a finished study (`make study`); models are kept under results_study/curve/n<size>/, so
an interrupted curve resumes where it stopped.

Cost on 2 cores: each smaller size trains 18 encoders and an aggregator, about the study's R-NCE training;
the default sizes took 45.5 min wall on 2 cores, 2026-12-07 (docs/study.md, round 3).

Run from the repo root: python benchmarks/learning_curve.py [--sizes 641 2000] [--cores 2] [--n-boot 200]
Last line: learning_curve: amyloid AUROC full - smallest +0.xx (goal > 0)
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import study_report as report

from rnce.evaluate.run import probe_feature_set
from rnce.regions import read_regions
from rnce.ssl import train
from rnce.ssl.data import Images, validation_mask
from rnce.ssl.diagnostics import diagnostics
from rnce.ssl.embed import embed
from rnce.ssl.jobs import make_job, settings

ROOT = report.ROOT
TASKS = ["amyloid", "ad_vs_cn"]


def equal_steps_epochs(full_images: int, full_epochs: int, images: int, batch: int) -> int:
    """Epochs over ``images`` that give about the optimizer steps of ``full_epochs`` over ``full_images``."""
    steps = (full_images // batch) * full_epochs
    return max(1, round(steps / max(1, images // batch)))


def training_images(config: dict, results: Path) -> int:
    """The study's R-NCE training images: the pretrain images less the validation share."""
    pretrain = [c for c, spec in config["cohorts"].items() if "pretrain" in spec["roles"]]
    images = Images(results / "patches", pretrain)
    return int((~validation_mask(images.table, config["ssl"]["validation_fraction"])).sum())


def train_size(size: int, full: int, config: dict, results: Path, cores: int, out: Path | None = None,
               overrides: dict | None = None) -> dict:
    """Train R-NCE on ``size`` of the ``full`` training images (``overrides``: ssl settings changed, e.g.
    ``{"aux_ridge": 1.0}``); returns the encoders, the aggregator, the stage-1 epochs and the jobs' settings."""
    ssl = {**config["ssl"], **(overrides or {})}
    out = out or results / "curve" / f"n{size}"
    pretrain = [c for c, spec in config["cohorts"].items() if "pretrain" in spec["roles"]]
    common = {"patch_root": str(results / "patches"), "cohorts": pretrain,
              "auxiliary": str(results / "features" / "auxiliary.tsv"),
              "auxiliary_boxes": str(results / "features" / "auxiliary_boxes.json")}
    stage1 = {**ssl["stage1"], "epochs": equal_steps_epochs(full, ssl["stage1"]["epochs"], size,
                                                            ssl["stage1"]["batch_size"])}
    stage2 = {**ssl["stage2"], "epochs": equal_steps_epochs(full, ssl["stage2"]["epochs"], size,
                                                            ssl["stage2"]["batch_size"])}
    sized = {**ssl, "stage1": stage1, "stage2": stage2}

    def paths(name: str) -> dict:
        return {"model": str(out / f"{name}.pt"), "metrics": str(out / "metrics" / f"{name}.tsv"),
                "checkpoints": str(out / "checkpoints" / name)}

    boxes = read_regions(ROOT / "config" / "regions.tsv")["name"].tolist()
    subset = {"train_images": size} if size < full else {}
    encoder_settings = settings(sized, "rnce", "encoder", config["register"]["resolution_mm"])
    aggregator_settings = settings(sized, "rnce", "aggregator")
    jobs = [make_job("rnce", "encoder", {**encoder_settings, **subset}, out=paths(f"encoder_{b}"), box=b, **common)
            for b in boxes]
    todo = [j for j in jobs if not Path(j["out"]["model"]).exists()]
    logging.info("n = %d: stage 1 %d epochs, stage 2 %d epochs; %d of %d encoders to train", size, stage1["epochs"],
                 stage2["epochs"], len(todo), len(jobs))
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(train.run, todo))
    encoders = {j["box"]: j["out"]["model"] for j in jobs}
    aggregator = make_job("rnce", "aggregator", {**aggregator_settings, **subset},
                          out=paths("aggregator"), encoders=encoders, threads=cores, **common)
    if not Path(aggregator["out"]["model"]).exists():
        train.run(aggregator)
    return {"encoders": encoders, "aggregator": aggregator["out"]["model"], "epochs": stage1["epochs"],
            "encoder_settings": encoder_settings, "aggregator_settings": aggregator_settings}


def probe(results: Path, config: dict, folder: Path, encoders: dict | None, aggregator: str | None, n_boot: int,
          embedding: Path | None = None, diag_path: Path | None = None) -> dict:
    """The curve's row for one trained R-NCE: embedding, diagnostics and bootstrap probes of the evaluate images
    (``embedding``, ``diag_path``: the study's own, for its models)."""
    evaluate = [c for c, spec in config["cohorts"].items() if "evaluate" in spec["roles"]]
    patches, features = str(results / "patches"), results / "features"
    folder.mkdir(parents=True, exist_ok=True)
    embedding = embedding or folder / "embedding.tsv"
    if not embedding.exists():
        embed("rnce", patches, evaluate, aggregator, encoders, str(embedding))
    diag_path = diag_path or folder / "diagnostics.tsv"
    if not diag_path.exists():
        diagnostics("rnce", patches, evaluate, encoders, aggregator, str(features / "auxiliary.tsv"),
                    str(features / "auxiliary_boxes.json"),
                    [str(results / "demo" / "truth" / f"{c}_latent.tsv") for c in evaluate], str(diag_path))
    diag = pd.read_csv(diag_path, sep="\t")
    diag = diag[diag["representation"] == "embedding"].set_index("target")["cv_r2"]
    ev = config["evaluate"]
    boot = probe_feature_set(str(results / "evaluation" / "labels.tsv"), str(results / "evaluation" / "tasks.tsv"),
                             str(embedding), "rnce", n_boot, ev["n_holdout"], ev["seed"], ev["l2"],
                             str(folder / "bootstrap.tsv"), ev["l2_grid"], ev["inner_folds"])
    mean = boot.groupby("task")["score"].mean()
    return {**{t: round(float(mean.get(t, float("nan"))), 3) for t in TASKS},
            "embedding_auxiliary_r2": diag.get("auxiliary"), "embedding_focal_r2": diag.get("focal_thinning")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[641, 2000],
                        help="pretraining sizes below the study's (which is always the last point)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = report.study_config()
    results = ROOT / config["results"]
    ssl = config["ssl"]
    full = training_images(config, results)
    rows = []
    for size in sorted(s for s in args.sizes if s < full):
        start = time.monotonic()
        trained = train_size(size, full, config, results, args.cores)
        row = probe(results, config, results / "curve" / f"n{size}", trained["encoders"], trained["aggregator"],
                    args.n_boot)
        rows.append({"pretrain_images": size, "stage1_epochs": trained["epochs"], **row,
                     "minutes": round((time.monotonic() - start) / 60, 1)})
    start = time.monotonic()
    row = probe(results, config, results / "curve" / f"n{full}", None, None, args.n_boot,
                results / "embeddings" / "rnce.tsv", results / "ssl" / "rnce" / "diagnostics.tsv")
    rows.append({"pretrain_images": full, "stage1_epochs": ssl["stage1"]["epochs"], **row,
                 "minutes": round((time.monotonic() - start) / 60, 1)})
    table = pd.DataFrame(rows)
    print(f"\nR-NCE at equal stage-1 steps ({ssl['stage1']['batch_size']} per step), one evaluation cohort; AUROC "
          f"means over {args.n_boot} bootstraps; embedding CV R^2 (minutes: this run's training and probing; the "
          "full size is the study's models, probed only)")
    print(table.to_string(index=False))
    gain = table["amyloid"].iat[-1] - table["amyloid"].iat[0]
    print(f"learning_curve: amyloid AUROC full - smallest {gain:+.3f} (goal > 0)")


if __name__ == "__main__":
    main()

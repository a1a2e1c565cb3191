"""What benchmarks/planted_study.py and benchmarks/learning_curve.py read from a finished study: the study's
settings (config/study.yaml over the schema's defaults), the raw-voxel ceiling and each representation's share
of it, the pretraining-only validation criteria, and the power of the planted locus at a BAG's correlation
with the planted acceleration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "study.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
GENOME_WIDE = 5e-8


def study_config(path: Path = CONFIG) -> dict:
    """config/study.yaml with the ``ssl``, ``register`` and ``evaluate`` sections completed from the schema's
    defaults."""
    config = yaml.safe_load(path.read_text())
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    for section in ("ssl", "register", "evaluate"):
        defaults = {k: v["default"] for k, v in schema[section]["properties"].items() if "default" in v}
        config[section] = {**defaults, **(config.get(section) or {})}
        if section == "ssl":
            aug = {k: v["default"] for k, v in schema["ssl"]["properties"]["augment"]["properties"].items()}
            config["ssl"]["augment"] = {**aug, **(config["ssl"].get("augment") or {})}
    return config


def diagnostics_table(results: Path) -> pd.DataFrame:
    paths = sorted((results / "ssl").glob("*/diagnostics.tsv"))
    return pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True) if paths else pd.DataFrame()


def ceiling(results: Path) -> float:
    path = results / "ssl" / "ceiling.tsv"
    return float(pd.read_csv(path, sep="\t")["r2"].iat[0]) if path.exists() else float("nan")


def print_ceiling(results: Path) -> None:
    """The raw-voxel ceiling of the auxiliary features and every representation's auxiliary R^2 as a share."""
    top, table = ceiling(results), diagnostics_table(results)
    if not np.isfinite(top):
        print("\nRaw-voxel ceiling: not computed (no ssl/ceiling.tsv)")
        return
    print(f"\nRaw-voxel ceiling (ridge from every box's voxels, fitted on the pretrain images, scored on the "
          f"evaluate images): mean auxiliary R^2 {top:.3f}")
    if table.empty:
        return
    aux = table[(table["target"] == "auxiliary") & (table["box"] == "all")]
    for row in aux.itertuples():
        name = "embedding (the paper's)" if row.representation == "embedding" else "stage 1, all boxes side by side"
        print(f"  {row.method:8s} {name:34s} CV R^2 {row.cv_r2:.3f} = {row.cv_r2 / top:.2f} of the ceiling")


def print_validation(results: Path) -> None:
    """The pretraining-only criteria (held-out pretrain subjects), median over the boxes and the embedding's."""
    paths = sorted((results / "ssl").glob("*/validation.tsv"))
    if not paths:
        print("\nValidation (held-out pretrain subjects): not computed (no ssl/<method>/validation.tsv)")
        return
    table = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    table["stage"] = np.where(table["representation"] == "embedding", "embedding", "stage 1 (median over boxes)")
    print(f"\nPretraining-only criteria on {table['n_images'].max()} held-out pretrain images (the yardstick for "
          "choosing settings; no evaluation label is read)")
    print(table.pivot_table(index=["method", "stage"], columns="metric", values="value", aggfunc="median")
          .round(3).to_string())


# How each SSL setting of config/study.yaml was chosen (docs/study.md has the measurements): printed next to
# its value, so a reader sees which came from the paper, which from the design, which from a criterion
# (and which criterion: only pretraining-only ones are allowed from round 3 on).
CHOICES = {
    "aux_ridge": "the paper's eq. 2 (exact projection), the headline by design; the pretraining-only criteria "
                 "prefer aux_ridge 1 (benchmarks/ablation.py, docs/study.md round 3)",
    "aux_weight": "the paper's eq. 3 (no weight; the auxiliary term a sum over the batch's entries)",
    "augment.blur_mm": "the package default in mm (the paper gives no magnitude)",
    "stage1.epochs": "pretraining-only: 12 epochs (round 4) lowered R-NCE's held-out stage-1 auxiliary R^2 from "
                     "0.41 to 0.15 and its loss rose; 4 epochs (164 steps, round 2's step count) kept",
    "stage1.batch_size": "carried from round 2 (the paper gives none; B > rep_dim for eq. 2)",
    "stage1.learning_rate": "carried from round 2, where it was picked on the evaluate images' planted "
                            "focal thinning (no labels, but not pretraining-only); not re-chosen",
    "stage2.batch_size": "design: larger than the 104 auxiliary columns a view can cover (eq. 2)",
    "stage2.epochs": "pretraining-only: the training loss has flattened (loss curves below)",
}


def print_choices(config: dict) -> None:
    """The study's SSL settings, each with how it was chosen (:data:`CHOICES`)."""
    print("\nHow the SSL settings were chosen (no evaluation label was read for any of them)")
    for key, how in CHOICES.items():
        value = config["ssl"]
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        print(f"  {key} = {value}: {how}")


def locus_power(n: int, variance_fraction: float, r: float, alpha: float = GENOME_WIDE) -> float:
    """Power of a 1-df test at ``alpha`` for a locus explaining ``variance_fraction`` of the planted acceleration,
    seen through a BAG correlated ``r`` with it: non-centrality n q r^2 / (1 - q r^2)."""
    share = variance_fraction * r**2
    ncp = n * share / (1 - share)
    return float(stats.ncx2.sf(stats.chi2.isf(alpha, 1), 1, ncp))


def bag_power(results: Path, feature_sets: list[str]) -> pd.DataFrame:
    """Per BAG: its correlation with the planted acceleration, the GWAS N, the locus's power at that r and the
    smallest p within 250 kb of the planted strong locus."""
    truth = json.loads((results / "demo" / "ground_truth.json").read_text())["strong_locus"]
    latent = pd.read_csv(results / "demo" / "truth" / "gwas_latent.tsv", sep="\t", dtype={"participant_id": str})
    rows = []
    for name in feature_sets:
        bag_path, sumstats = results / "brain_age" / f"{name}_bag.tsv", results / "gwas" / f"{name}_bag.sumstats"
        if not bag_path.exists() or not sumstats.exists():
            continue
        bag = pd.read_csv(bag_path, sep="\t", dtype={"participant_id": str}).merge(latent, on="participant_id")
        r = float(np.corrcoef(bag["bag"], bag["acceleration"])[0, 1])
        ss = pd.read_csv(sumstats, sep="\t", dtype={"CHR": str})
        near = ss[(ss["CHR"] == str(truth["chrom"])) & ((ss["BP"] - truth["pos"]).abs() <= 250_000)]
        n = int(ss["N"].max())
        rows.append({"bag": name, "r_acceleration": round(r, 3), "n": n,
                     "power_at_r": round(locus_power(n, truth["variance_fraction"], r), 3),
                     "min_p_near_locus": float(near["P"].min()) if len(near) else float("nan")})
    return pd.DataFrame(rows)

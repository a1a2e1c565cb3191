"""What a brain-age model knows beyond who was scanned where: baselines, per-group metrics and the warning.

A model's validation MAE and r over several cohorts (or sites) can look good only because the groups
differ in age: a predictor that outputs each group's mean age does the same. Next to the model's MAE and
r, :func:`baselines` gives the mean-age baseline (every validation subject gets the training mean) and the
per-cohort (and per-site) mean-age baselines (each gets its group's training mean), and :func:`by_group`
the model's MAE and r within each cohort and each site. The warning: the share of age variance the groups'
means explain (R^2 of the per-group baseline) exceeds what the model adds beyond them (the model's R^2
less that share), or the model's MAE is no better than the per-group baseline's.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

GROUPS = ("cohort", "site")


def _r2(predicted: np.ndarray, age: np.ndarray) -> float:
    total = float(((age - age.mean()) ** 2).sum())
    return 1 - float(((age - predicted) ** 2).sum()) / total if total > 0 else float("nan")


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else float("nan")


def group_means(bag: pd.DataFrame, by: str) -> np.ndarray:
    """Each validation subject's group's training mean age (the training mean where its group has none)."""
    train, valid = bag[bag["split"] == "train"], bag[bag["split"] == "validation"]
    means = train.groupby(by)["age"].mean()
    return valid[by].map(means).fillna(train["age"].mean()).to_numpy(float)


def baselines(bag: pd.DataFrame, feature_set: str) -> dict:
    """One feature set's validation MAE, r and R^2 next to those of the mean-age baselines, and its warning."""
    train, valid = bag[bag["split"] == "train"], bag[bag["split"] == "validation"]
    age, predicted = valid["age"].to_numpy(float), valid["predicted_age"].to_numpy(float)
    row = {"feature_set": feature_set, "n_validation": len(valid), "mae": float(np.abs(predicted - age).mean()),
           "pearson_r": _r(predicted, age), "r2": _r2(predicted, age),
           "mae_mean_age": float(np.abs(age - train["age"].mean()).mean())}
    warnings = []
    for by in [g for g in GROUPS if g in bag.columns and bag[g].nunique() > 1]:
        means = group_means(bag, by)
        row[f"mae_{by}_mean"], row[f"r_{by}_mean"], row[f"r2_{by}_mean"] = (
            float(np.abs(age - means).mean()), _r(means, age), _r2(means, age))
        explained, added = row[f"r2_{by}_mean"], row["r2"] - row[f"r2_{by}_mean"]
        if row[f"mae_{by}_mean"] <= row["mae"] or explained > added:
            warnings.append(f"{by} explains more of age (R^2 {explained:.2f}, MAE {row[f'mae_{by}_mean']:.2f} y "
                            f"from each {by}'s mean age) than the model adds ({added:+.2f}); judge it within {by}s")
    row["warning"] = "; ".join(warnings)
    for text in warnings:
        log.warning("%s: %s", feature_set, text)
    return row


def by_group(bag: pd.DataFrame, feature_set: str) -> pd.DataFrame:
    """The model's validation MAE and r within each cohort and each site."""
    valid = bag[bag["split"] == "validation"]
    rows = []
    for by in [g for g in GROUPS if g in valid.columns]:
        for group, part in valid.groupby(by, sort=True):
            age, predicted = part["age"].to_numpy(float), part["predicted_age"].to_numpy(float)
            rows.append({"feature_set": feature_set, "by": by, "group": group, "n": len(part),
                         "mae": float(np.abs(predicted - age).mean()), "pearson_r": _r(predicted, age),
                         "age_sd": float(age.std())})
    return pd.DataFrame(rows, columns=["feature_set", "by", "group", "n", "mae", "pearson_r", "age_sd"])


def report(bags: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(baselines per feature set, metrics per feature set x cohort/site); the numbers also go to the log."""
    table = pd.DataFrame([baselines(b, f) for f, b in bags.items()])
    groups = pd.concat([by_group(b, f) for f, b in bags.items()], ignore_index=True)
    for rec in table.itertuples():
        extra = "".join(f", {by}-mean baseline MAE {getattr(rec, f'mae_{by}_mean'):.2f}"
                        for by in GROUPS if hasattr(rec, f"mae_{by}_mean"))
        log.info("%s: MAE %.2f y, r %.3f; mean-age baseline MAE %.2f%s", rec.feature_set, rec.mae, rec.pearson_r,
                 rec.mae_mean_age, extra)
    return table, groups

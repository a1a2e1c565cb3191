"""Brain age and the brain-age gap (METHOD §8).

One image per subject (the first: youngest) of the brain_age cohorts. An age x
sex balanced training subset (``train_per_bucket`` subjects in each age bucket
x sex), the same for every feature set, is drawn first; a bucket with fewer
subjects than asked is an error, or with ``short_buckets: use_all`` gives all
it has (logged, and counted in ``buckets.tsv``). Per feature set a ridge
regression of age on the standardised features (``l2`` as in evaluation) is
fitted on the training subset and validated on the rest (MAE, Pearson r).
Every subject's BAG is out of sample: the validation subjects' from that
model, the training subjects' from ``cv_folds``-fold cross-fitting within the
training subset. BAG = predicted - true age, then de-biased by
orthogonalising against true age (Smith et al. 2019): the residual of BAG
regressed on age over all subjects.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rnce.cohort import cohort_records
from rnce.evaluate.run import feature_matrix, read_features
from rnce.evaluate.tasks import IMAGE, baseline_visits
from rnce.io import write_tsv
from rnce.qc_tables import failed_images

log = logging.getLogger(__name__)

SPLIT_COLUMNS = [*IMAGE, "site", "age", "sex", "bucket", "split"]
BAG_COLUMNS = [*IMAGE, "site", "sex", "age", "predicted_age", "bag", "bag_raw", "split"]


class BrainAgeError(ValueError):
    """Subjects or features a brain-age model cannot be built from."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def bucket_of(age: pd.Series, buckets: list[list[float]]) -> pd.Series:
    """'44-53' style labels of the (inclusive) age buckets; NaN outside every bucket."""
    labels = pd.Series(np.nan, index=age.index, dtype=object)
    for lo, hi in buckets:
        labels[(age >= lo) & (age < hi + 1)] = f"{lo:g}-{hi:g}"
    return labels


def balanced_split(table: pd.DataFrame, buckets: list[list[float]], per_bucket: int, short_buckets: str,
                   seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(split table, bucket counts): ``per_bucket`` training subjects per age bucket x sex, the rest validation."""
    base = baseline_visits(table)
    base["bucket"] = bucket_of(base["age"], buckets)
    rng = np.random.default_rng(seed)
    base["split"] = "validation"
    counts = []
    for (bucket, sex), group in base.dropna(subset=["bucket"]).groupby(["bucket", "sex"], sort=True):
        take = min(per_bucket, len(group))
        counts.append({"bucket": bucket, "sex": sex, "available": len(group), "asked": per_bucket, "train": take})
        if len(group) < per_bucket and short_buckets == "error":
            raise BrainAgeError(f"age bucket {bucket}, sex {sex}: {len(group)} subjects, fewer than the "
                                f"{per_bucket} asked (brain_age.train_per_bucket); lower it or set "
                                "brain_age.short_buckets: use_all")
        if len(group) < per_bucket:
            log.warning("age bucket %s, sex %s: %d subjects, fewer than %d: all used for training", bucket, sex,
                        len(group), per_bucket)
        base.loc[rng.choice(group.index.to_numpy(), take, replace=False), "split"] = "train"
    expected = {(f"{lo:g}-{hi:g}", s) for lo, hi in buckets for s in ("F", "M")}
    missing = sorted(expected - {(c["bucket"], c["sex"]) for c in counts})
    if missing and short_buckets == "error":
        raise BrainAgeError(f"age bucket x sex {missing[0][0]} {missing[0][1]}: no subjects; set "
                            "brain_age.short_buckets: use_all to go on without it")
    if (base["split"] == "validation").sum() < 3:
        raise BrainAgeError(f"{len(base)} subjects leave {(base['split'] == 'validation').sum()} for validation: "
                            "lower brain_age.train_per_bucket")
    return base[[c for c in SPLIT_COLUMNS if c in base.columns]].reset_index(drop=True), pd.DataFrame(counts)


def _ridge_fit(X: np.ndarray, y: np.ndarray, l2: float):
    mean, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (X - mean) / sd
    Zc, yc = Z - Z.mean(axis=0), y - y.mean()
    coef = np.linalg.solve(Zc.T @ Zc + l2 * np.eye(Z.shape[1]), Zc.T @ yc)
    intercept = y.mean() - Z.mean(axis=0) @ coef
    return lambda new: ((new - mean) / sd) @ coef + intercept


def predict_ages(X: np.ndarray, age: np.ndarray, train: np.ndarray, l2: float, folds: int, seed: int) -> np.ndarray:
    """Out-of-sample predicted age of every subject (cross-fitted within the training subset)."""
    predicted = np.empty(len(age))
    model = _ridge_fit(X[train], age[train], l2)
    predicted[~train] = model(X[~train])
    train_idx = np.flatnonzero(train)
    fold = np.random.default_rng(seed).permutation(len(train_idx)) % folds
    for k in range(folds):
        inner = _ridge_fit(X[train_idx[fold != k]], age[train_idx[fold != k]], l2)
        predicted[train_idx[fold == k]] = inner(X[train_idx[fold == k]])
    return predicted


def debias(bag: np.ndarray, age: np.ndarray) -> np.ndarray:
    """BAG orthogonalised against age: the residual of BAG ~ 1 + age."""
    design = np.column_stack([np.ones_like(age), age])
    beta, *_ = np.linalg.lstsq(design, bag, rcond=None)
    return bag - design @ beta


def write_split(records: list[dict], registration_qc: list[str], exclusions: str | None, buckets: list[list[float]],
                per_bucket: int, short_buckets: str, seed: int, out_split: str, out_buckets: str) -> None:
    table = pd.DataFrame.from_records(records)
    if table.empty:
        raise BrainAgeError("no cohort has the role brain_age")
    failed = failed_images(registration_qc, exclusions)
    keys = pd.MultiIndex.from_frame(table[IMAGE])
    dropped = keys.isin(pd.MultiIndex.from_frame(failed[IMAGE])) if len(failed) else np.zeros(len(table), bool)
    if dropped.any():
        log.info("%d image(s) failed QC and are left out", int(dropped.sum()))
    split, counts = balanced_split(table[~dropped], buckets, per_bucket, short_buckets, seed)
    log.info("%d subjects: %d training, %d validation", len(split), (split["split"] == "train").sum(),
             (split["split"] == "validation").sum())
    write_tsv(split, out_split)
    write_tsv(counts, out_buckets)


def split_job(cohorts: dict[str, dict], results: str, registration_qc: list[str], exclusions: str | None,
              buckets: list[list[float]], per_bucket: int, short_buckets: str, seed: int, out_split: str,
              out_buckets: str) -> None:
    """write_split on the brain_age cohorts' tables (``cohorts``: their config entries)."""
    records = cohort_records(cohorts, results, ["participant_id", "session_id", "site", "age", "sex"])
    write_split(records, registration_qc, exclusions, buckets, per_bucket, short_buckets, seed, out_split,
                out_buckets)


def write_bag(split_path: str, features_path: str, feature_set: str, l2: float, folds: int, seed: int,
              out_bag: str, out_metrics: str) -> pd.DataFrame:
    """One feature set's brain-age model: ``{feature_set}_bag.tsv`` and its validation metrics."""
    split = pd.read_csv(split_path, sep="\t", dtype={"participant_id": str, "session_id": str, "cohort": str})
    X = feature_matrix(read_features(features_path, feature_set), features_path, feature_set, split[IMAGE])
    age = split["age"].to_numpy(float)
    train = (split["split"] == "train").to_numpy()
    predicted = predict_ages(X, age, train, l2, folds, seed)
    raw = predicted - age
    out = split[[c for c in (*IMAGE, "site", "sex", "age") if c in split.columns]].copy()
    out["predicted_age"], out["bag"], out["bag_raw"], out["split"] = predicted, debias(raw, age), raw, split["split"]
    valid = ~train
    metrics = pd.DataFrame([{
        "feature_set": feature_set, "n_train": int(train.sum()), "n_validation": int(valid.sum()),
        "mae": float(np.abs(raw[valid]).mean()), "pearson_r": float(np.corrcoef(predicted[valid], age[valid])[0, 1]),
        "bag_sd": float(out["bag"].std()), "age_bag_r_before": float(np.corrcoef(raw, age)[0, 1]),
        "age_bag_r_after": float(np.corrcoef(out["bag"], age)[0, 1])}])
    log.info("%s: validation MAE %.2f years, r %.3f (%d training subjects, %d features)", feature_set,
             metrics["mae"].iat[0], metrics["pearson_r"].iat[0], train.sum(), X.shape[1])
    write_tsv(out[[c for c in BAG_COLUMNS if c in out.columns]], out_bag)
    write_tsv(metrics, out_metrics)
    return out


def write_summary(bag_paths: list[str], metrics_paths: list[str], feature_sets: list[str], out: dict[str, str]
                  ) -> None:
    """All feature sets' metrics, the baselines and per-group metrics (:mod:`rnce.brain_age_report`), the
    phenotypic correlation matrix of the BAGs and the figures. ``out``: metrics, baselines, groups,
    correlation, heatmap, scatter, bag_vs_age paths."""
    from rnce.brain_age_report import report
    from rnce.plots import bag_correlation_heatmap, bag_vs_age_figure, predicted_age_figure

    bags = {f: pd.read_csv(p, sep="\t", dtype={"participant_id": str, "cohort": str, "site": str})
            for f, p in zip(feature_sets, bag_paths, strict=True)}
    wide = pd.DataFrame({f: b.set_index(["cohort", "participant_id"])["bag"] for f, b in bags.items()})
    correlation = wide.corr()
    correlation.index.name = "feature_set"
    table, groups = report(bags)
    write_tsv(pd.concat([pd.read_csv(p, sep="\t") for p in metrics_paths], ignore_index=True), out["metrics"])
    write_tsv(table, out["baselines"])
    write_tsv(groups, out["groups"])
    write_tsv(correlation.reset_index(), out["correlation"])
    bag_correlation_heatmap(correlation, out["heatmap"])
    predicted_age_figure({f: b[b["split"] == "validation"] for f, b in bags.items()}, out["scatter"])
    bag_vs_age_figure(bags, out["bag_vs_age"])

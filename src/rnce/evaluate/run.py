"""The evaluation stage's jobs: task labels, one feature set's bootstrap scores, the summary and Figure 2.

Evaluation works on tables: the evaluate cohorts' rows, the QC tables, and a
feature table per feature set (``fs``: the harmonized structural features
without eTIV; an SSL method: its embeddings' ``dim_*`` columns).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from rnce.cohort import cohort_records
from rnce.evaluate import tasks as task_lib
from rnce.evaluate.probes import ProbeError, bootstrap_fit, permutation_pvalue
from rnce.features import KEYS
from rnce.io import write_tsv
from rnce.qc_tables import failed_images

log = logging.getLogger(__name__)

ID = {"participant_id": str, "session_id": str, "cohort": str}
NOT_FEATURES = set(KEYS) | {"eTIV"}
CLINICAL_COLUMNS = ["participant_id", "session_id", "age", "sex", "diagnosis", "amyloid", "years_to_ad",
                    "followup_years"]
SCORE_COLUMNS = ["task", "metric", "feature_set", "mean", "sd", "n", "n_boot", "status", "reason"]
PVALUE_COLUMNS = ["task", "feature_set_a", "feature_set_b", "mean_a", "mean_b", "difference", "p_value", "n_perm"]


def write_labels(records: list[dict], registration_qc: list[str], exclusions: str | None, tasks: list[str],
                 conversion_years: list[float], n_holdout: int, min_class_size: int, out_labels: str,
                 out_tasks: str) -> pd.DataFrame:
    """labels.tsv (task, cohort, participant_id, session_id, label) and tasks.tsv (counts, run or skipped)."""
    table = pd.DataFrame.from_records(records)
    if table.empty:
        raise task_lib.TaskError("no evaluate cohort has any image: give a cohort the role 'evaluate'")
    labels = task_lib.task_labels(table, tasks, conversion_years)
    labels, dropped = task_lib.drop_qc_failures(labels, failed_images(registration_qc, exclusions))
    summary = task_lib.task_table(labels, task_lib.task_names(tasks, conversion_years), n_holdout, min_class_size,
                                  dropped)
    for row in summary.itertuples():
        log.info("%s: %d subjects%s, %s%s", row.task, row.n,
                 "" if pd.isna(row.n_positive) else f" ({row.n_positive} positive)", row.status,
                 f" ({row.reason})" if row.reason else "")
    write_tsv(labels, out_labels)
    write_tsv(summary, out_tasks)
    return summary


def read_features(path: str, feature_set: str) -> pd.DataFrame:
    """A feature table: the image columns and the features (every column but KEYS and eTIV)."""
    table = pd.read_csv(path, sep="\t", dtype=ID)
    if not [c for c in table.columns if c not in NOT_FEATURES]:
        raise ProbeError(f"{path}: feature set '{feature_set}' has no feature columns")
    return table


def labels_job(cohorts: dict[str, dict], results: str, registration_qc: list[str], exclusions: str | None,
               tasks: list[str], conversion_years: list[float], n_holdout: int, min_class_size: int, out_labels: str,
               out_tasks: str) -> None:
    """write_labels on the evaluate cohorts' tables (``cohorts``: their config entries)."""
    records = cohort_records(cohorts, results, CLINICAL_COLUMNS)
    write_labels(records, registration_qc, exclusions, tasks, conversion_years, n_holdout, min_class_size, out_labels,
                 out_tasks)


def feature_matrix(table: pd.DataFrame, path: str, feature_set: str, images: pd.DataFrame) -> np.ndarray:
    """The features of ``images`` (cohort, participant_id, session_id) in their order, from a feature table."""
    columns = [c for c in table.columns if c not in NOT_FEATURES]
    dup = table.duplicated(task_lib.IMAGE, keep=False)
    if dup.any():
        first = table[dup].iloc[0]
        raise ProbeError(f"{path}: feature set '{feature_set}' has {int(dup.sum())} rows for images listed more than "
                         f"once (first: line {int(np.flatnonzero(dup.to_numpy())[0]) + 2}, cohort "
                         f"'{first['cohort']}', {first['participant_id']} {first['session_id']})")
    merged = images.merge(table, on=task_lib.IMAGE, how="left", indicator=True, validate="many_to_one")
    missing = merged[merged["_merge"] == "left_only"]
    if len(missing):
        counts = ", ".join(f"{n} of cohort '{c}'" for c, n in missing["cohort"].value_counts().sort_index().items())
        first = missing.iloc[0]
        raise ProbeError(f"{path}: feature set '{feature_set}' has no row for {len(missing)} baseline image(s) "
                         f"the tasks need ({counts}; first: {first['participant_id']} {first['session_id']}); "
                         "they passed every QC table, so the feature table is out of date or from other cohorts")
    values = merged[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        row = merged.iloc[i]
        raise ProbeError(f"{path}: feature set '{feature_set}' has NaN or non-numeric values in "
                         f"{int(bad.any(axis=1).sum())} image(s) (first: cohort '{row['cohort']}', "
                         f"{row['participant_id']} {row['session_id']}, column '{columns[j]}')")
    return values


def probe_feature_set(labels_path: str, tasks_path: str, features_path: str, feature_set: str, n_boot: int,
                      n_holdout: int, seed: int, l2: float | str, out: str, l2_grid=None,
                      inner_folds: int = 5) -> pd.DataFrame:
    """Bootstrap scores of one feature set on every task that runs: (task, feature_set, bootstrap, score,
    l2: the penalty of that bootstrap sample's probe)."""
    labels = pd.read_csv(labels_path, sep="\t", dtype=ID)
    summary = pd.read_csv(tasks_path, sep="\t", keep_default_na=False)
    table = read_features(features_path, feature_set)
    parts = []
    for row in summary[summary["status"] == "run"].itertuples():
        rows = labels[labels["task"] == row.task].reset_index(drop=True)
        X = feature_matrix(table, features_path, feature_set, rows[task_lib.IMAGE])
        scores, penalties = bootstrap_fit(X, rows["label"].to_numpy(), row.kind, n_boot, n_holdout, seed, l2,
                                          l2_grid, inner_folds)
        log.info("%s on %s: %s %.3f (SD %.3f, %d subjects, %d features; median L2 %.3g)", feature_set, row.task,
                 row.metric, scores.mean(), scores.std(ddof=1), len(rows), X.shape[1], np.median(penalties))
        parts.append(pd.DataFrame({"task": row.task, "feature_set": feature_set, "bootstrap": np.arange(n_boot),
                                   "score": scores, "l2": penalties}))
    columns = ["task", "feature_set", "bootstrap", "score", "l2"]
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    write_tsv(result, out)
    return result


def summarise(tasks_path: str, bootstrap_paths: list[str], feature_sets: list[str], n_perm: int,
              seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scores (mean, SD over bootstrap samples, per task and feature set) and the pairwise p-values.

    ``feature_sets`` name the bootstrap tables in order; a skipped task still gets a row per feature set
    (with its reason) even when no task ran and the tables are empty."""
    summary = pd.read_csv(tasks_path, sep="\t", keep_default_na=False)
    boots = pd.concat([pd.read_csv(p, sep="\t") for p in bootstrap_paths], ignore_index=True)
    scores, pvalues = [], []
    for row in summary.itertuples():
        by_set = {f: boots.loc[(boots["task"] == row.task) & (boots["feature_set"] == f)].sort_values("bootstrap")[
            "score"].to_numpy() for f in feature_sets}
        for f, s in by_set.items():
            ran = row.status == "run"
            scores.append({"task": row.task, "metric": row.metric, "feature_set": f,
                           "mean": s.mean() if ran else np.nan, "sd": s.std(ddof=1) if ran else np.nan,
                           "n": row.n, "n_boot": len(s), "status": row.status, "reason": row.reason})
        if row.status != "run":
            continue
        for a, b in itertools.combinations(feature_sets, 2):
            pvalues.append({"task": row.task, "feature_set_a": a, "feature_set_b": b, "mean_a": by_set[a].mean(),
                            "mean_b": by_set[b].mean(), "difference": by_set[a].mean() - by_set[b].mean(),
                            "p_value": permutation_pvalue(by_set[a], by_set[b], n_perm, seed), "n_perm": n_perm})
    return pd.DataFrame(scores, columns=SCORE_COLUMNS), pd.DataFrame(pvalues, columns=PVALUE_COLUMNS)


SHORT_TRAINING_EPOCHS = 20  # below this, a stage-1 run is a smoke test: Figure 2 says so


def training_note(feature_sets: list[str], epochs: dict[str, int]) -> str:
    """Figure 2's subtitle: how many epochs each SSL stage of the compared sets trained (``epochs``:
    stage1, stage2, reconstruction), and a warning when that is too short to rank anything."""
    contrastive = [f for f in feature_sets if f in ("rnce", "simclr", "barlow_twins")]
    reconstruction = [f for f in feature_sets if f in ("models_genesis", "lssl")]
    parts = []
    if contrastive:
        parts.append(f"stage 1 {epochs['stage1']} epochs, stage 2 {epochs['stage2']} epochs")
    if reconstruction:
        parts.append(f"reconstruction {epochs['reconstruction']} epochs")
    if not parts:
        return ""
    short = min([epochs["stage1"]] * bool(contrastive) + [epochs["reconstruction"]] * bool(reconstruction))
    warning = " - too short to rank the methods" if short < SHORT_TRAINING_EPOCHS else ""
    return "SSL training: " + "; ".join(parts) + warning


def write_summary(tasks_path: str, bootstrap_paths: list[str], feature_sets: list[str], n_perm: int, seed: int,
                  out_scores: str, out_pvalues: str, out_figure: str, epochs: dict[str, int] | None = None) -> None:
    from rnce.plots import probe_figure

    scores, pvalues = summarise(tasks_path, bootstrap_paths, feature_sets, n_perm, seed)
    write_tsv(scores, out_scores)
    write_tsv(pvalues, out_pvalues)
    probe_figure(scores, out_figure, training_note(feature_sets, epochs) if epochs else "")
    log.info("%d task x feature set scores, %d pairwise tests", len(scores), len(pvalues))

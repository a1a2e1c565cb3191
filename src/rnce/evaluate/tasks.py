"""The probe tasks of the evaluate cohorts (METHOD §7): one label per subject, at the baseline visit.

- ``age``: CN subjects, age (R^2);
- ``ad_vs_cn``, ``mci_vs_cn``, ``ad_vs_mci``: baseline diagnosis (AUROC, the
  first-named class positive);
- ``conversion_{T}y``: subjects not AD at baseline (CN or MCI); positive when
  AD is first diagnosed within T years (``years_to_ad <= T``), negative when
  followed for at least T years without converting, otherwise excluded
  (censored);
- ``amyloid``: amyloid status at baseline (positive 1), where measured.

The baseline visit is each subject's youngest session. A subject whose baseline
image failed a QC step (registration, feature extraction) is dropped from every
task and counted; which images that is comes from the QC tables, so a feature
set that still misses a subject afterwards is an error, never a silent drop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUBJECT = ["cohort", "participant_id"]
IMAGE = ["cohort", "participant_id", "session_id"]
DIAGNOSIS_TASKS = {"ad_vs_cn": ("AD", "CN"), "mci_vs_cn": ("MCI", "CN"), "ad_vs_mci": ("AD", "MCI")}
TASK_COLUMNS = ["task", "kind", "metric", "n", "n_positive", "n_negative", "n_qc_excluded", "status", "reason"]


class TaskError(ValueError):
    """Clinical columns that cannot give the tasks' labels."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def task_names(tasks: list[str], conversion_years: list[float]) -> list[str]:
    """Configured task names, conversion expanded per horizon (``conversion_3y``)."""
    out = []
    for task in tasks:
        if task == "conversion":
            out += [f"conversion_{_years(t)}y" for t in conversion_years]
        else:
            out.append(task)
    return out


def _years(t: float) -> str:
    return f"{t:g}".replace(".", "p")


def task_kind(task: str) -> str:
    return "regression" if task == "age" else "classification"


def baseline_visits(table: pd.DataFrame) -> pd.DataFrame:
    """Each subject's youngest session (ties: the first session id)."""
    ordered = table.sort_values(SUBJECT + ["age", "session_id"], kind="stable")
    return ordered.drop_duplicates(SUBJECT, keep="first").reset_index(drop=True)


def _check_conversion(base: pd.DataFrame) -> None:
    bad = base["diagnosis"].isin(["CN", "MCI"]) & (base["years_to_ad"] == 0)
    if bad.any():
        row = base[bad].iloc[0]
        raise TaskError(f"cohort '{row['cohort']}', participant {row['participant_id']} {row['session_id']}: "
                        f"columns 'diagnosis' and 'years_to_ad' disagree ({row['diagnosis']} at baseline, but AD "
                        f"diagnosed 0 years later); {int(bad.sum())} baseline row(s) like this")


def task_labels(table: pd.DataFrame, tasks: list[str], conversion_years: list[float]) -> pd.DataFrame:
    """Long table (task, cohort, participant_id, session_id, label) of every configured task.

    ``table``: the evaluate cohorts' rows (one per image) with cohort,
    participant_id, session_id, age, diagnosis and, for the tasks that need
    them, amyloid, years_to_ad and followup_years.
    """
    base = baseline_visits(table)
    parts = []

    def add(task: str, rows: pd.Series, label: pd.Series) -> None:
        part = base.loc[rows, IMAGE].copy()
        part.insert(0, "task", task)
        part["label"] = label[rows].astype(float).to_numpy()
        parts.append(part)

    for task in task_names(tasks, conversion_years):
        if task == "age":
            add(task, base["diagnosis"] == "CN", base["age"])
        elif task in DIAGNOSIS_TASKS:
            positive, negative = DIAGNOSIS_TASKS[task]
            add(task, base["diagnosis"].isin([positive, negative]), (base["diagnosis"] == positive).astype(int))
        elif task == "amyloid":
            if "amyloid" not in base.columns:
                raise TaskError("task 'amyloid' needs the column 'amyloid' in the evaluate cohorts' tables")
            add(task, base["amyloid"].notna(), base["amyloid"])
        else:
            for column in ("years_to_ad", "followup_years"):
                if column not in base.columns:
                    raise TaskError(f"task '{task}' needs the column '{column}' in the evaluate cohorts' tables")
            _check_conversion(base)
            horizon = next(t for t in conversion_years if f"conversion_{_years(t)}y" == task)
            at_risk = base["diagnosis"].isin(["CN", "MCI"])
            converted = base["years_to_ad"].notna() & (base["years_to_ad"] <= horizon)
            followed = base["followup_years"].fillna(0) >= horizon
            add(task, at_risk & (converted | followed), converted.astype(int))
    columns = ["task", *IMAGE, "label"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def drop_qc_failures(labels: pd.DataFrame, failed: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Labels without the images in ``failed`` (cohort, participant_id, session_id); count dropped per task."""
    keys = pd.MultiIndex.from_frame(labels[IMAGE])
    bad = keys.isin(pd.MultiIndex.from_frame(failed[IMAGE])) if len(failed) else np.zeros(len(labels), bool)
    dropped = labels.loc[bad, "task"].value_counts()
    return labels[~bad].reset_index(drop=True), dropped


def task_table(labels: pd.DataFrame, tasks: list[str], n_holdout: int, min_class_size: int,
               qc_dropped: pd.Series | None = None) -> pd.DataFrame:
    """Counts per task and whether it runs: a task too small for the holdout is skipped, with the reason."""
    rows = []
    for task in tasks:
        y = labels.loc[labels["task"] == task, "label"].to_numpy()
        kind = task_kind(task)
        row = {"task": task, "kind": kind, "metric": "R2" if kind == "regression" else "AUROC", "n": len(y),
               "n_positive": pd.NA, "n_negative": pd.NA,
               "n_qc_excluded": int(qc_dropped.get(task, 0)) if qc_dropped is not None else 0,
               "status": "run", "reason": ""}
        reason = ""
        if len(y) < n_holdout + max(2 * min_class_size, 10):
            reason = (f"{len(y)} subjects: fewer than the {n_holdout} held out plus "
                      f"{max(2 * min_class_size, 10)} to train on")
        if kind == "classification":
            n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
            row.update(n_positive=n_pos, n_negative=n_neg)
            for name, count in (("positive", n_pos), ("negative", n_neg)):
                held = round(n_holdout * count / max(len(y), 1))
                if not reason and (held < min_class_size or count - held < min_class_size):
                    reason = (f"{count} {name} subjects: fewer than {min_class_size} would be among the {n_holdout} "
                              f"held out ({held}) or left to train on ({count - held})")
        if reason:
            row.update(status="skipped", reason=reason)
        rows.append(row)
    return pd.DataFrame(rows, columns=TASK_COLUMNS)

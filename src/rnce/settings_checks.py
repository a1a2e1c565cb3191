"""Settings the data make impossible, found when the workflow starts (dry runs included), before any job.

Each problem names the key, its value and the count that makes it impossible:

- a training batch larger than the images it trains on (``ssl.stage1/stage2/reconstruction.batch_size``
  against the pretraining images, less ``ssl.validation_fraction`` for the contrastive methods);
- an R-NCE batch not larger than the dimensions eq. 2 projects on: the residual R = A - P_H[A] is zero
  when a batch has no more samples than H has dimensions (``ssl.rep_dim``), and R' = H - P_A[H] is zero
  when it has no more than A has columns (a box's auxiliary columns in stage 1, all of them in stage 2);
- brain-age age buckets that hold none of the brain-age cohorts' subjects, an empty bucket x sex with
  ``short_buckets: error``, and a ``train_per_bucket`` that leaves a bucket (``short_buckets: error``) or
  every bucket (``use_all``: nothing left to validate on) without enough subjects.

A simulated cohort whose table does not exist yet is checked on its expected size; its ages are checked by
the brain-age job itself.
"""

from __future__ import annotations

import pandas as pd

from rnce.brain_age import bucket_of
from rnce.features.freesurfer import feature_names
from rnce.harmonize import box_columns
from rnce.plan.sizes import Sizes
from rnce.workflow_config import CONTRASTIVE


class SettingsError(ValueError):
    """Settings the data make impossible (one line per problem)."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def ssl_problems(ssl: dict, sizes: Sizes, regions: pd.DataFrame) -> list[str]:
    n_pre = sizes.images("pretrain")
    if not n_pre:
        return []
    out = []
    vf = ssl["validation_fraction"]
    n_train = int(n_pre * (1 - vf))
    contrastive = [m for m in ssl["methods"] if m in CONTRASTIVE]
    reconstruction = [m for m in ssl["methods"] if m not in CONTRASTIVE]
    kept = f", less ssl.validation_fraction {vf}" if vf else ""
    for block, n, methods, what in (("stage1", n_train, contrastive, f"{n_pre} pretraining images{kept}"),
                                    ("stage2", n_train, contrastive, f"{n_pre} pretraining images{kept}"),
                                    ("reconstruction", n_pre, reconstruction, "pretraining images")):
        batch = ssl[block]["batch_size"]
        if methods and batch > n:
            out.append(f"ssl.{block}.batch_size: {batch} is larger than the {n} images {'/'.join(methods)} "
                       f"train on ({what}{', expected' if not all(c.exact for c in sizes.with_role('pretrain')) else ''})")
    if "rnce" in ssl["methods"]:
        columns = box_columns(regions, feature_names(include_etiv=False))
        widest = max(columns, key=lambda b: len(columns[b]))
        for block, n_aux, where in (("stage1", len(columns[widest]), f"box {widest}'s auxiliary columns"),
                                    ("stage2", len(feature_names(include_etiv=False)), "auxiliary columns")):
            batch = ssl[block]["batch_size"]
            if batch <= ssl["rep_dim"]:
                out.append(f"ssl.{block}.batch_size: {batch} is not larger than ssl.rep_dim {ssl['rep_dim']}: "
                           "R-NCE's residual R = A - P_H[A] (eq. 2) is zero when a batch has no more samples than "
                           "H has dimensions")
            if batch <= n_aux:
                out.append(f"ssl.{block}.batch_size: {batch} is not larger than the {n_aux} {where}: R-NCE's "
                           "R' = H - P_A[H] (eq. 2) is zero when a batch has no more samples than A has columns")
    return out


def brain_age_problems(brain_age: dict, tables: dict[str, pd.DataFrame]) -> list[str]:
    """``tables``: the brain-age cohorts' tables that exist (age, sex, participant_id)."""
    if not tables:
        return []
    people = pd.concat([t[["participant_id", "age", "sex"]] for t in tables.values()]).groupby(
        "participant_id", sort=False).first()  # a subject's first image, as the split takes it
    buckets, per_bucket, short = brain_age["age_buckets"], brain_age["train_per_bucket"], brain_age["short_buckets"]
    people["bucket"] = bucket_of(people["age"], buckets)
    if people["bucket"].isna().all():
        return [f"brain_age.age_buckets: {buckets} hold none of the {len(people)} brain-age subjects (ages "
                f"{people['age'].min():.0f}-{people['age'].max():.0f} in {', '.join(tables)})"]
    counts = people.dropna(subset=["bucket"]).groupby(["bucket", "sex"]).size()
    out = []
    for lo, hi in buckets:
        for sex in ("F", "M"):
            n = int(counts.get((f"{lo:g}-{hi:g}", sex), 0))
            if short == "error" and n < per_bucket:
                out.append(f"brain_age.train_per_bucket: {per_bucket} is more than age bucket {lo:g}-{hi:g}, sex "
                           f"{sex} holds ({n} subjects); lower it, change brain_age.age_buckets, or set "
                           "brain_age.short_buckets: use_all")
    if short == "use_all" and (counts <= per_bucket).all():
        out.append(f"brain_age.train_per_bucket: {per_bucket} is at least what every age bucket x sex holds "
                   f"(at most {int(counts.max())} subjects): every subject would train, none validate")
    return out


def check_settings(config: dict, sizes: Sizes, regions: pd.DataFrame, brain_age_tables: dict[str, pd.DataFrame]
                   ) -> None:
    """Raise :class:`SettingsError` listing every impossible setting."""
    problems = ssl_problems(config["ssl"], sizes, regions) + brain_age_problems(config["brain_age"],
                                                                                  brain_age_tables)
    if problems:
        raise SettingsError("settings the data make impossible:\n  " + "\n  ".join(problems))

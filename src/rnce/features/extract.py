"""Feature tables: one shard of images at a time, then all cohorts in ``results/features/raw.tsv``.

Every row of a feature table is one image: ``participant_id``, ``session_id``,
``cohort``, ``site``, ``age``, ``sex``, ``diagnosis`` (the covariates ComBat
needs), then the features: the 104 FreeSurfer features and ``eTIV``
(backends ``subjects_dir`` and ``recon_all``) or the ``ants_...`` features.
Images that cannot be used go to an exclusions table with the reason, never
silently.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rnce.features import KEYS
from rnce.features.freesurfer import read_subjects
from rnce.io import write_tsv
from rnce.regions import read_regions

log = logging.getLogger(__name__)

EXCLUSION_COLUMNS = KEYS + ["source", "excluded", "reason"]  # excluded false: a note on a kept image
OUTLIER_Z = 5.0
MIN_OUTLIER_SITE = 10  # images of a cohort:site below which no value is called an outlier


class FeatureError(ValueError):
    """Feature tables that cannot be combined or used."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def extract_shard(rows: list[dict], backend: str, regions: str | None = None,
                  thickness_iterations: int = 15, incomplete: str = "exclude",
                  ants_resolution: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and exclusions of one shard of images.

    ``rows`` carry the :data:`KEYS` and ``freesurfer_dir`` (FreeSurfer
    backends) or ``t1w`` (ants). A broken FreeSurfer subject that claims to
    be finished is an error; a failed or implausible ANTs image is excluded
    with its reason (:func:`rnce.features.ants.implausible`), and a kept one
    gets a note with its measures.
    """
    keys = [{k: r.get(k) for k in KEYS} for r in rows]
    if backend in ("subjects_dir", "recon_all"):
        features, excluded = read_subjects([r["freesurfer_dir"] for r in rows], keys, incomplete)
        excluded = excluded.rename(columns={"subject_dir": "source"})
        return features, excluded.reindex(columns=EXCLUSION_COLUMNS)
    if backend != "ants":
        raise FeatureError(f"unknown features backend {backend!r}")
    from rnce.features.ants import ants_feature_names, ants_features, implausible

    boxes = read_regions(regions)
    records, excluded = [], []
    for key, row in zip(keys, rows, strict=True):
        try:
            values, measures = ants_features(row["t1w"], boxes, thickness_iterations, ants_resolution)
        except Exception as err:  # one bad image fails only itself
            log.error("ANTs features failed for %s: %s", row["t1w"], err)
            excluded.append({**key, "source": row["t1w"], "excluded": True,
                             "reason": f"ANTs failed: {type(err).__name__}: {err}"})
            continue
        summary = ", ".join(f"{k} {v:.3g}" for k, v in measures.items())
        problems = implausible(measures)
        if problems:
            log.warning("ANTs features of %s implausible: %s", row["t1w"], "; ".join(problems))
            excluded.append({**key, "source": row["t1w"], "excluded": True,
                             "reason": f"ANTs measures implausible: {'; '.join(problems)} ({summary})"})
        else:
            records.append({**key, **values})
            excluded.append({**key, "source": row["t1w"], "excluded": False, "reason": f"ANTs measures: {summary}"})
    features = pd.DataFrame(records, columns=KEYS + ants_feature_names(boxes))
    return features, pd.DataFrame(excluded, columns=EXCLUSION_COLUMNS)


def write_shard(rows: list[dict], backend: str, out_features: str, out_exclusions: str,
                regions: str | None = None, thickness_iterations: int = 15, incomplete: str = "exclude",
                ants_resolution: float = 2.0) -> None:
    features, excluded = extract_shard(rows, backend, regions, thickness_iterations, incomplete, ants_resolution)
    write_tsv(features, out_features)
    write_tsv(excluded, out_exclusions)
    dropped = int((excluded["excluded"].astype(str).str.lower() == "true").sum())
    log.info("%d images with features, %d excluded", len(features), dropped)


def _feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in KEYS]


def robust_z(values: pd.Series, groups: pd.Series) -> pd.Series:
    """(x - median) / (1.4826 MAD) within each group."""
    med = values.groupby(groups).transform("median")
    mad = (values - med).abs().groupby(groups).transform("median") * 1.4826
    return (values - med) / mad.replace(0, np.nan)


def outliers(table: pd.DataFrame, threshold: float = OUTLIER_Z, min_site_size: int = MIN_OUTLIER_SITE) -> pd.DataFrame:
    """Feature values more than ``threshold`` robust SDs from their cohort:site median, in sites of at least
    ``min_site_size`` images (a median and MAD of a handful of images flag half of them: z of 70 at n = 3)."""
    batch = table["cohort"] + ":" + table["site"]
    sizes = batch.map(batch.value_counts())
    small = sorted(set(batch[sizes < min_site_size]))
    if small:
        log.info("outliers not flagged in %d site(s) with fewer than %d images: %s", len(small), min_site_size,
                 ", ".join(small))
    table, batch = table[sizes >= min_site_size], batch[sizes >= min_site_size]
    found = []
    for column in _feature_columns(table):
        z = robust_z(table[column], batch)
        for i in np.flatnonzero((z.abs() > threshold).to_numpy()):
            found.append({"participant_id": table["participant_id"].iat[i], "session_id": table["session_id"].iat[i],
                          "cohort": table["cohort"].iat[i], "site": table["site"].iat[i], "feature": column,
                          "value": table[column].iat[i], "robust_z": round(float(z.iat[i]), 2)})
    return pd.DataFrame(found, columns=["participant_id", "session_id", "cohort", "site", "feature", "value",
                                        "robust_z"])


def combine(feature_paths: list[str], exclusion_paths: list[str], out_raw: str, out_exclusions: str,
            out_outliers: str, out_figure: str) -> pd.DataFrame:
    """All shards into ``raw.tsv``, the exclusions report, the outlier list and the QC figure."""
    tables = [pd.read_csv(p, sep="\t", dtype={"participant_id": str, "session_id": str}) for p in feature_paths]
    raw = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) else tables[0]
    families = {c: ("ants" if c.startswith("ants_") else "freesurfer") for c in _feature_columns(raw)}
    by_cohort = {c: {families[f] for f in _feature_columns(raw) if t[f].notna().any()}
                 for c, t in raw.groupby("cohort")}
    mixed = sorted(c for c, fam in by_cohort.items() if len(fam) > 1)
    if mixed:
        raise FeatureError(f"cohort(s) {mixed} have both FreeSurfer and ANTs features")
    raw = raw.sort_values(["cohort", "participant_id", "session_id"]).reset_index(drop=True)
    excluded = pd.concat([pd.read_csv(p, sep="\t", dtype=str) for p in exclusion_paths], ignore_index=True)
    flagged = outliers(raw)
    write_tsv(raw, out_raw)
    write_tsv(excluded, out_exclusions)
    write_tsv(flagged, out_outliers)
    from rnce.plots import feature_qc_figure

    feature_qc_figure(raw, flagged, out_figure)
    log.info("%d images, %d features, %d excluded, %d outlying values", len(raw), len(_feature_columns(raw)),
             len(excluded), len(flagged))
    return raw


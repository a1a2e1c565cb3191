"""ComBat harmonization of structural features (neuroHarmonize), with a saved, re-applicable model.

Batch = ``cohort:site``; covariates age and sex (``M`` = 1), diagnosis optional
(one-hot). Rules where neuroHarmonize would fail or be silent:

- a batch with fewer than ``min_images_per_site`` images is an error, or with
  ``small_sites: merge`` it joins the batch ``{cohort}:small-sites`` (an error
  if that one is still too small);
- a feature that is constant overall or within a batch cannot be scaled by
  ComBat: it is passed through unharmonized and listed in the model summary;
- NaN features or covariates are an error listing the images;
- at apply time, a batch the model has not seen is an error listing the
  unseen and the known batches (neuroHarmonize would return NaN rows);
- a single-site study (one batch) or ``harmonize.method: none``: the features
  are passed through unharmonized, with a warning in the log and the reason
  for every feature in the model summary.

The auxiliary matrix A of R-NCE is the harmonized features (FreeSurfer's 104,
or the ANTs ones; never eTIV) z-scored with the mean and SD of the pretrain
cohorts, and each box's columns come from ``config/regions.tsv``.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rnce.features import KEYS
from rnce.io import atomic_path, write_text, write_tsv
from rnce.regions import read_regions

log = logging.getLogger(__name__)

SMALL_SITES = "small-sites"
DIAGNOSES = ("CN", "MCI", "AD", "unknown")


class HarmonizeError(ValueError):
    """Input that ComBat cannot harmonize as asked."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


@dataclass
class ComBatModel:
    """A fitted ComBat model and what it needs to be applied again."""

    features: list[str]
    passthrough: dict[str, str]
    covariates: list[str]
    covariate_columns: list[str]  # the design columns given to neuroHarmonize besides SITE
    batch_map: dict[str, str]  # cohort:site -> batch label used by ComBat
    batch_counts: dict[str, int]
    neuroharmonize: dict = field(repr=False)

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("neuroharmonize")
        out["n_images"] = int(sum(self.batch_counts.values()))
        return out


def _feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in KEYS]


def _check_complete(table: pd.DataFrame, columns: list[str], what: str) -> None:
    bad = table[columns].isna()
    if bad.to_numpy().any():
        rows = np.flatnonzero(bad.any(axis=1).to_numpy())
        listed = "; ".join(
            f"{table['participant_id'].iat[i]} {table['session_id'].iat[i]} ({table['cohort'].iat[i]}): "
            + ", ".join(bad.columns[bad.iloc[i].to_numpy()][:5])
            for i in rows[:10])
        more = f" ... and {len(rows) - 10} more" if len(rows) > 10 else ""
        raise HarmonizeError(f"{len(rows)} image(s) have NaN {what}: {listed}{more}")


def _covariates(table: pd.DataFrame, covariates: list[str], batches: pd.Series,
                columns: list[str] | None = None) -> pd.DataFrame:
    """neuroHarmonize's covariate frame. Without ``columns`` (learning), diagnosis indicators that are
    constant within every batch are dropped: they are collinear with the batches (e.g. a cohort
    without diagnoses) and would make the design singular."""
    _check_complete(table, [c for c in covariates if c != "diagnosis"], "covariates")
    covars = pd.DataFrame({"SITE": batches.to_numpy()})
    if "age" in covariates:
        covars["age"] = table["age"].astype(float).to_numpy()
    if "sex" in covariates:
        covars["sex_M"] = (table["sex"] == "M").astype(float).to_numpy()
    if "diagnosis" in covariates:
        for level in DIAGNOSES[1:]:
            indicator = (table["diagnosis"] == level).astype(float)
            if columns is not None or indicator.groupby(batches.to_numpy()).nunique().max() > 1:
                covars[f"dx_{level}"] = indicator.to_numpy()
    if columns is not None:
        covars = covars[["SITE", *columns]]
    return covars


def _batch_map(table: pd.DataFrame, min_images: int, small_sites: str) -> dict[str, str]:
    batch = table["cohort"] + ":" + table["site"]
    counts = batch.value_counts()
    small = counts[counts < min_images]
    mapping = {b: b for b in counts.index}
    if small.empty:
        return mapping
    listed = ", ".join(f"{b} ({n})" for b, n in small.items())
    if small_sites != "merge":
        raise HarmonizeError(f"site(s) with fewer than {min_images} images (min_images_per_site): {listed}; "
                             "add images, drop them, or set harmonize.small_sites: merge")
    for b in small.index:
        mapping[b] = f"{b.split(':', 1)[0]}:{SMALL_SITES}"
    merged = pd.Series(mapping).reindex(batch).value_counts()
    still = merged[merged < min_images]
    if not still.empty:
        raise HarmonizeError(f"merged small sites are still too small: {dict(still)}; sites were {listed}")
    log.warning("merged small sites into %s-batches: %s", SMALL_SITES, listed)
    return mapping


def learn(table: pd.DataFrame, covariates: list[str], min_images_per_site: int = 5,
          small_sites: str = "error", seed: int = 0, method: str = "combat") -> tuple[ComBatModel, pd.DataFrame]:
    """Fit ComBat on ``table`` (a feature table) and return the model and the harmonized table.

    ``method`` ``none``, or a table with one batch (a single-site study: there is no batch effect to
    remove): every feature is passed through unharmonized, with a warning, and the model says so."""
    features = _feature_columns(table)
    _check_complete(table, features, "features")
    if method not in ("combat", "none"):
        raise HarmonizeError(f"harmonize.method must be combat or none, got {method!r}")
    raw_batches = table["cohort"] + ":" + table["site"]
    if method == "none" or raw_batches.nunique() < 2:
        reason = "harmonize.method none" if method == "none" else f"one batch ({raw_batches.iat[0]}): nothing to harmonize"
        log.warning("features passed through unharmonized: %s", reason)
        counts = {k: int(v) for k, v in raw_batches.value_counts().items()}
        return ComBatModel([], dict.fromkeys(features, reason), list(covariates), [], {b: b for b in counts}, counts,
                           None), table.copy()
    from neuroHarmonize import harmonizationLearn

    mapping = _batch_map(table, min_images_per_site, small_sites)
    batches = raw_batches.map(mapping)
    values = table[features]
    overall = values.std(ddof=0)
    per_batch = values.groupby(batches.to_numpy()).std(ddof=0)
    passthrough = {}
    for column in features:
        if overall[column] == 0:
            passthrough[column] = "constant"
        elif (per_batch[column] == 0).any():
            passthrough[column] = f"constant within {', '.join(per_batch.index[per_batch[column] == 0])}"
    if passthrough:
        log.warning("passed through unharmonized: %s", passthrough)
    harmonized_cols = [c for c in features if c not in passthrough]
    if len(batches.unique()) < 2:
        raise HarmonizeError(f"ComBat needs at least two batches (cohort:site), got {sorted(batches.unique())} after "
                             f"merging small sites; set harmonize.method: none to pass the features through")
    covars = _covariates(table, covariates, batches)
    nh_model, adjusted = harmonizationLearn(table[harmonized_cols].to_numpy(float), covars, seed=seed)
    model = ComBatModel(harmonized_cols, passthrough, list(covariates), [c for c in covars if c != "SITE"], mapping,
                        {k: int(v) for k, v in batches.value_counts().items()}, nh_model)
    return model, _replace(table, harmonized_cols, adjusted)


def apply(model: ComBatModel, table: pd.DataFrame) -> pd.DataFrame:
    """Harmonize a feature table with a fitted model; unseen sites are an error (a pass-through model
    from :func:`learn` returns the table as it is)."""
    if model.neuroharmonize is None:
        return table.copy()
    from neuroHarmonize import harmonizationApply

    raw_batch = table["cohort"] + ":" + table["site"]
    unseen = sorted(set(raw_batch) - set(model.batch_map))
    if unseen:
        raise HarmonizeError(f"site(s) {unseen} were not seen when the ComBat model was learned; "
                             f"known sites: {sorted(model.batch_map)}")
    _check_complete(table, model.features, "features")
    covars = _covariates(table, model.covariates, raw_batch.map(model.batch_map), model.covariate_columns)
    adjusted = harmonizationApply(table[model.features].to_numpy(float), covars, model.neuroharmonize)
    return _replace(table, model.features, adjusted)


def _replace(table: pd.DataFrame, columns: list[str], values: np.ndarray) -> pd.DataFrame:
    """``table`` with ``columns`` replaced by ``values``, in one block (column-wise assignment is slow)."""
    block = pd.DataFrame(values, columns=columns, index=table.index)
    return pd.concat([table.drop(columns=columns), block], axis=1)[table.columns]


def save(model: ComBatModel, pickle_path: str, json_path: str) -> None:
    with atomic_path(pickle_path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(model, fh)
    write_text(json.dumps(model.summary(), indent=2), json_path)


def load(pickle_path: str) -> ComBatModel:
    with open(pickle_path, "rb") as fh:
        return pickle.load(fh)


def box_columns(regions: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Each box's auxiliary columns among ``columns`` (FreeSurfer or ANTs features)."""
    out = {}
    for rec in regions.itertuples():
        if any(c.startswith("ants_") for c in columns):
            wanted = [c for c in columns if c.startswith(f"ants_{rec.name}_")]
        else:
            side = "Left" if rec.hemisphere == "lh" else "Right"
            wanted = [f"{rec.hemisphere}_{r}_thickness" for r in filter(None, rec.dk_regions.split(","))]
            for s in filter(None, rec.aseg_structures.split(",")):
                wanted += [f"{side}-{s}_volume", f"{s}_volume"]
        out[rec.name] = [c for c in wanted if c in columns]
        if not out[rec.name]:
            raise HarmonizeError(f"box {rec.name} covers none of the feature columns")
    return out


def auxiliary_matrix(harmonized: pd.DataFrame, regions: pd.DataFrame, reference_cohorts: list[str]) -> tuple[
        pd.DataFrame, dict]:
    """Z-scored auxiliary features (no eTIV/ICV) and, per box, its columns and the z-score parameters."""
    columns = [c for c in _feature_columns(harmonized) if c not in ("eTIV", "ants_icv")]
    reference = harmonized[harmonized["cohort"].isin(reference_cohorts)] if reference_cohorts else harmonized
    if reference.empty:
        reference = harmonized
    mean = reference[columns].mean()
    sd = reference[columns].std(ddof=0).replace(0, 1.0)
    aux = pd.concat([harmonized[["participant_id", "session_id", "cohort"]], (harmonized[columns] - mean) / sd],
                    axis=1)
    info = {"boxes": box_columns(regions, columns), "columns": columns,
            "zscore_reference_cohorts": sorted(reference["cohort"].unique()),
            "mean": mean.round(6).to_dict(), "sd": sd.round(6).to_dict()}
    return aux, info


def harmonize_features(raw_path: str, regions_path: str, covariates: list[str], min_images_per_site: int,
                       small_sites: str, learn_cohorts: list[str] | None, reference_cohorts: list[str],
                       out_harmonized: str, out_model: str, out_summary: str, out_auxiliary: str,
                       out_boxes: str, method: str = "combat") -> None:
    """The harmonize step of the workflow: learn on ``learn_cohorts`` (all if empty), apply to all."""
    raw = pd.read_csv(raw_path, sep="\t", dtype={"participant_id": str, "session_id": str})
    training = raw[raw["cohort"].isin(learn_cohorts)] if learn_cohorts else raw
    model, _ = learn(training, covariates, min_images_per_site, small_sites, method=method)
    harmonized = apply(model, raw)
    regions = read_regions(regions_path)
    aux, info = auxiliary_matrix(harmonized, regions, reference_cohorts)
    save(model, out_model, out_summary)
    write_tsv(harmonized, out_harmonized)
    write_tsv(aux, out_auxiliary)
    write_text(json.dumps(info, indent=2), out_boxes)
    log.info("harmonized %d images x %d features over %d batches", len(harmonized), len(model.features),
             len(model.batch_counts))

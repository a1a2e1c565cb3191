"""Seconds and MB per unit of work, per rule: the package's measured table, or a refit on a run's benchmarks.

The model of one rule is ``seconds = s_fixed + s_per_unit * units`` and ``MB = mem_mb_fixed +
mem_mb_per_unit * mem_units`` (units from :mod:`rnce.plan.work`). The package ships the fit on its own
demo run (``rnce/data/unit_costs.tsv``, with the machine and date it was measured on); a user's previous
run refits it (``plan.calibrate_from``: that run's ``benchmarks`` folder, with the ``plan_jobs.tsv`` its
plan wrote next to it). Rules the run did not have keep the package's figures.
"""

from __future__ import annotations

import os
import platform
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["rule", "variant", "s_fixed", "s_per_unit", "mem_mb_fixed", "mem_mb_per_unit", "jobs", "measured_on",
           "date"]


MIN_RSS_MB = 20


class PlanError(ValueError):
    """A plan that cannot be made or a run that cannot fit: names the file or setting to change."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def package_table() -> pd.DataFrame:
    """The unit costs measured by the project (``rnce/data/unit_costs.tsv``)."""
    with resources.files("rnce").joinpath("data/unit_costs.tsv").open() as f:
        return pd.read_csv(f, sep="\t", comment="#", keep_default_na=False).astype(
            {"s_fixed": float, "s_per_unit": float, "mem_mb_fixed": float, "mem_mb_per_unit": float})


def read_benchmarks(folder: str | os.PathLike, keys: list[str]) -> pd.DataFrame:
    """Seconds and peak RSS (MB) of the benchmark files ``keys`` (relative to ``folder``) that exist; a
    file holding several repeats gives their mean seconds and largest RSS."""
    rows = []
    for key in keys:
        path = Path(folder) / key
        if not path.exists():
            continue
        table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        if "s" not in table.columns:
            raise PlanError(f"{path}: not a Snakemake benchmark file (no column 's')")
        rss = table["max_rss"].max() if "max_rss" in table.columns else np.nan
        # a job too short for psutil to sample reports no RSS, or that of its shell (a Python job holds 50 MB+)
        rows.append({"key": key, "s": float(table["s"].mean()), "max_rss": float(rss) if rss > MIN_RSS_MB else np.nan})
    return pd.DataFrame(rows, columns=["key", "s", "max_rss"])


def _fit(units: np.ndarray, values: np.ndarray, floor: float) -> tuple[float, float]:
    """``values = a + b * units`` with a, b >= 0; from one point (or one unit size) ``a`` is ``floor``
    (what any job of this machine costs), capped at the value."""
    if _sized(units):
        b, a = np.polyfit(units, values, 1)
        if a >= 0 and b >= 0:
            return float(a), float(b)
        if b < 0:
            return float(values.mean()), 0.0
        return 0.0, float(values.sum() / max(units.sum(), 1e-12))
    a = min(floor, float(values.min()))
    b = float((values.mean() - a) / units.mean()) if units.mean() > 0 else 0.0
    return a, max(b, 0.0)


def measured(jobs: pd.DataFrame, benchmarks: str | os.PathLike) -> pd.DataFrame:
    """A run's plan_jobs table (rule, variant, key, units, mem_units) with the seconds and RSS its benchmark
    folder holds for them."""
    out = jobs.merge(read_benchmarks(benchmarks, jobs["key"].tolist()), on="key")
    if out.empty:
        raise PlanError(f"{benchmarks}: none of the {len(jobs)} planned jobs has a benchmark file there")
    return out


def _sized(units: np.ndarray) -> bool:
    """Whether the jobs' units spread enough to fit a fixed and a per-unit part."""
    return len(units) >= 2 and bool(np.ptp(units) > 0.2 * units.mean())


def calibrate(runs: pd.DataFrame, machine: str | None = None, prior: pd.DataFrame | None = None) -> pd.DataFrame:
    """Unit costs fitted on measured jobs (:func:`measured`, of one run or several stacked). A rule measured
    at one size only takes its fixed seconds and MB from ``prior`` (the package's table) where it has the
    rule, else the median fixed part of the rules of its stage fitted at several sizes (what starting such a
    job costs), else the cheapest job measured. Only rules with at least one measured job."""
    from rnce.plan.work import UNITS

    runs = runs.assign(stage=runs["rule"].map(lambda r: UNITS[r][0]))
    s_floor = float(runs["s"].min())
    rss_floor = float(runs["max_rss"].min()) if runs["max_rss"].notna().any() else 0.0
    known = prior.set_index(["rule", "variant"]) if prior is not None else None
    groups = list(runs.groupby(["rule", "variant"], sort=False))
    fixed: dict[str, list[tuple[float, float]]] = {}
    for (_rule, _variant), group in groups:  # what a job of each stage costs to start, from rules fitted at sizes
        rss = group.dropna(subset=["max_rss"])
        if _sized(group["units"].to_numpy(float)) and _sized(rss["mem_units"].to_numpy(float)):
            fixed.setdefault(group["stage"].iat[0], []).append(
                (_fit(group["units"].to_numpy(float), group["s"].to_numpy(float), s_floor)[0],
                 _fit(rss["mem_units"].to_numpy(float), rss["max_rss"].to_numpy(float), rss_floor)[0]))
    rows = []
    for (rule, variant), group in groups:
        stage = fixed.get(group["stage"].iat[0])
        floor = float(np.median([f[0] for f in stage])) if stage else s_floor
        mem_floor = float(np.median([f[1] for f in stage])) if stage else rss_floor
        if known is not None and (rule, variant) in known.index and known.loc[(rule, variant), "jobs"] != 0:
            floor = known.loc[(rule, variant), "s_fixed"]
            mem_floor = known.loc[(rule, variant), "mem_mb_fixed"] or mem_floor
        s0, s1 = _fit(group["units"].to_numpy(float), group["s"].to_numpy(float), floor)
        rss = group.dropna(subset=["max_rss"])
        m0, m1 = _fit(rss["mem_units"].to_numpy(float), rss["max_rss"].to_numpy(float), mem_floor) \
            if len(rss) else (mem_floor, 0.0)
        rows.append({"rule": rule, "variant": variant, "s_fixed": s0, "s_per_unit": s1, "mem_mb_fixed": m0,
                     "mem_mb_per_unit": m1, "jobs": len(group),
                     "measured_on": machine or f"{platform.node()} ({os.cpu_count()} cores)",
                     "date": date.today().isoformat()})
    return pd.DataFrame(rows, columns=COLUMNS)


# a rule no run measured takes the costs of one doing the same work per unit
SAME_WORK = {"embed_regional": "embed/contrastive", "features_shard/recon_all": "features_shard/subjects_dir"}


def complete(fitted: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """``fitted`` with the rules it lacks: from a rule of the same work that it has (:data:`SAME_WORK`),
    else from ``base``."""
    index = fitted.set_index(["rule", "variant"]).index
    rows = []
    for rec in base.to_dict("records"):
        if (rec["rule"], rec["variant"]) in index:
            continue
        name = rec["rule"] + (f"/{rec['variant']}" if rec["variant"] else "")
        twin = SAME_WORK.get(name, "").split("/") + [""]
        match = fitted[(fitted["rule"] == twin[0]) & (fitted["variant"] == twin[1])]
        if len(match):
            rec = {**match.iloc[0].to_dict(), "rule": rec["rule"], "variant": rec["variant"], "jobs": 0,
                   "measured_on": f"as {twin[0]}: {match.iloc[0]['measured_on']}"}
        rows.append(rec)
    return pd.concat([fitted, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)


def unit_costs(calibrate_from: str | None) -> pd.DataFrame:
    """The package's table, with the rules a previous run measured refitted (``calibrate_from``: its
    benchmarks folder; its plan_jobs.tsv lies next to the folder)."""
    table = package_table()
    if not calibrate_from:
        return table
    jobs_path = Path(calibrate_from).parent / "plan_jobs.tsv"
    if not Path(calibrate_from).is_dir():
        raise PlanError(f"config plan.calibrate_from: {calibrate_from} is not a folder of benchmark files")
    if not jobs_path.exists():
        raise PlanError(f"config plan.calibrate_from: {jobs_path} is missing; the previous run's plan says what "
                        "work each job had: make it with `snakemake <its results>/plan.tsv --configfile <its "
                        "config>`")
    jobs = pd.read_csv(jobs_path, sep="\t", keep_default_na=False)
    return complete(calibrate(measured(jobs, calibrate_from), prior=table), table)

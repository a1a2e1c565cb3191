"""Latent anatomy of the simulated world: who is scanned when, and what their brain looks like.

Each image has a brain age ``b = age + acceleration`` and a disease severity
``d`` in [0, 1] (CN ~0, MCI 0.2-0.6, AD >= 0.6). Every structure of
``data/simulated_anatomy.tsv`` changes relative to its base value by
``age_per_decade * (b - 45) / 10 + ad_effect * d``, times an idiosyncratic
per-subject factor; volumes also scale with head size. The idiosyncratic
factor has a part shared by all of a person's cortex (thickness) or all of
their volumes (``shared_sd``: people differ as a whole, so averaging many
regions does not cancel it) and a regional part (``idiosyncrasy_sd``,
correlated between neighbouring structures, :func:`regional_factor`; four
times larger for the ventricles, CSF and white-matter hypointensities, whose
sizes vary most between people). The atrophy a given severity brings varies
between people too (``atrophy_factor``, log-normal with ``atrophy_sd`` and
mean 1: brain and cognitive reserve), so the diagnosis, set by the severity,
is not a function of the anatomy. The FreeSurfer-format
stats report these values with measurement noise and site offsets; the images
are rendered from the same values (see :mod:`rnce.simulate.images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

AD_THRESHOLD = 0.6
MCI_THRESHOLD = 0.2
REFERENCE_ETIV = 1.5e6


def anatomy_table() -> pd.DataFrame:
    """The structures of the simulated anatomy, expanded to both hemispheres.

    Columns: name (feature-like: ``lh_entorhinal``, ``Left-Hippocampus``, ``CSF``),
    structure, kind, hemi (lh/rh/mid), base, surface_area, x, y, z (MNI mm),
    age_per_decade, ad_effect.
    """
    with resources.files("rnce").joinpath("data/simulated_anatomy.tsv").open() as fh:
        table = pd.read_csv(fh, sep="\t", comment="#")
    rows = []
    for rec in table.to_dict("records"):
        if not rec["lateral"]:
            rows.append({**rec, "name": rec["structure"], "hemi": "mid"})
            continue
        for hemi, sign in (("lh", -1), ("rh", 1)):
            x = sign * abs(rec["x"])
            if rec["kind"] == "thickness":
                name = f"{hemi}_{rec['structure']}"
            else:
                name = f"{'Left' if hemi == 'lh' else 'Right'}-{rec['structure']}"
            rows.append({**rec, "name": name, "hemi": hemi, "x": x})
    return pd.DataFrame(rows).drop(columns="lateral").reset_index(drop=True)


@dataclass
class Person:
    """Subject-level latent traits."""

    participant_id: str
    sex: str
    site: str
    acceleration: float  # years of brain age beyond chronological age
    idiosyncrasy: np.ndarray  # relative per-structure offsets
    etiv: float
    amyloid_load: float  # latent, standard normal scale
    focal_noise: float = 0.0  # how much more (or less) focal thinning than the amyloid load gives
    atrophy_factor: float = 1.0  # how much atrophy the person's disease severity brings (reserve)


def relative_change(anat: pd.DataFrame, brain_age: np.ndarray, severity: np.ndarray) -> np.ndarray:
    """Relative change of every structure (images x structures) at given brain age and severity."""
    b = np.asarray(brain_age, float)[:, None]
    d = np.asarray(severity, float)[:, None]
    age_part = anat["age_per_decade"].to_numpy()[None, :] * (b - 45.0) / 10.0
    return age_part + anat["ad_effect"].to_numpy()[None, :] * d


def true_values(
    anat: pd.DataFrame,
    brain_age: np.ndarray,
    severity: np.ndarray,
    idiosyncrasy: np.ndarray,
    etiv: np.ndarray,
) -> np.ndarray:
    """True thickness (mm) / volume (mm^3) of every structure for every image."""
    change = relative_change(anat, brain_age, severity)
    # thinning cannot pass -60%; ventricles can grow a lot
    change = np.maximum(change, -0.6)
    values = anat["base"].to_numpy()[None, :] * (1.0 + change) * np.maximum(1.0 + idiosyncrasy, 0.2)
    is_volume = (anat["kind"] == "volume").to_numpy()
    values[:, is_volume] *= (np.asarray(etiv)[:, None] / REFERENCE_ETIV)
    return values


def diagnosis_of(severity: float) -> str:
    """Clinical label of a disease severity."""
    if severity >= AD_THRESHOLD:
        return "AD"
    if severity >= MCI_THRESHOLD:
        return "MCI"
    return "CN"


VARIABLE_STRUCTURES = ("Ventricle", "Vent", "CSF", "hypointensities")


REGIONAL_CORRELATION = 0.3  # share of the regional variance that neighbours share
REGIONAL_LENGTH_MM = 40.0  # distance over which that shared part decays (Gaussian)


def individual_sd(anat: pd.DataFrame, idiosyncrasy_sd: float) -> np.ndarray:
    """Regional SD of each structure's idiosyncratic factor."""
    variable = anat["name"].str.contains("|".join(VARIABLE_STRUCTURES)).to_numpy()
    return np.where(variable, 4.0, 1.0) * idiosyncrasy_sd


@cache
def regional_factor() -> np.ndarray:
    """A matrix L (structures x structures) such that L @ z (z standard normal) has unit variance and
    correlation ``REGIONAL_CORRELATION x exp(-d^2 / 2 l^2)`` between structures d mm apart: real regional
    variation is shared by neighbouring regions (so averaging them does not cancel it). Rows and
    columns follow :func:`anatomy_table`."""
    anat = anatomy_table()
    xyz = anat[["x", "y", "z"]].to_numpy(float)
    d2 = ((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(-1)
    near = np.exp(-d2 / (2 * REGIONAL_LENGTH_MM**2))
    cov = (1 - REGIONAL_CORRELATION) * np.eye(len(anat)) + REGIONAL_CORRELATION * near
    return np.linalg.cholesky(cov + 1e-9 * np.eye(len(anat)))


def draw_person(
    rng: np.random.Generator,
    participant_id: str,
    site: str,
    anat: pd.DataFrame,
    acceleration: float,
    idiosyncrasy_sd: float,
    shared_sd: float = 0.0,
    focal_noise_sd: float = 0.0,
    atrophy_sd: float = 0.0,
) -> Person:
    sex = "M" if rng.random() < 0.5 else "F"
    etiv = rng.normal(1.60e6 if sex == "M" else 1.42e6, 0.10e6)
    is_thickness = (anat["kind"] == "thickness").to_numpy()
    shared = np.where(is_thickness, rng.normal(0.0, shared_sd), rng.normal(0.0, shared_sd))
    return Person(
        participant_id=participant_id,
        sex=sex,
        site=site,
        acceleration=acceleration,
        idiosyncrasy=shared + (regional_factor() @ rng.normal(0.0, 1.0, len(anat)))
        * individual_sd(anat, idiosyncrasy_sd),
        etiv=float(np.clip(etiv, 1.0e6, 2.1e6)),
        amyloid_load=float(rng.normal()),
        focal_noise=float(rng.normal(0.0, focal_noise_sd)),
        atrophy_factor=float(np.exp(rng.normal(0.0, atrophy_sd) - atrophy_sd**2 / 2)),
    )


FOCAL_LOAD_SCALE = 2.5  # latent amyloid load (+ focal noise) at which the focal thinning reaches its depth


def focal_thinning(person: Person, depth: float) -> float:
    """Fraction of grey matter lost in the focal precuneus region: ``depth`` x (load + noise) / 2.5,
    clipped to [0, depth]: none below zero load."""
    return float(depth * np.clip((person.amyloid_load + person.focal_noise) / FOCAL_LOAD_SCALE, 0.0, 1.0))


def visit_times(rng: np.random.Generator, max_visits: int) -> np.ndarray:
    """Years since baseline of a subject's visits (ADNI-like spacing of one to two years)."""
    n = int(rng.integers(1, max_visits + 1))
    gaps = rng.uniform(0.8, 2.2, n - 1)
    return np.concatenate([[0.0], np.cumsum(gaps)])


def evaluate_trajectory(rng: np.random.Generator, baseline_dx: str, amyloid_load: float) -> tuple[float, float]:
    """Baseline severity and yearly progression for an evaluate-cohort subject.

    Amyloid-positive (high latent load) subjects progress faster: amyloid is
    both a task label and a driver of conversion, as in ADNI; so do MCI subjects
    further along at baseline.
    """
    fast = amyloid_load > 0.3
    if baseline_dx == "CN":
        d0 = rng.uniform(0.0, 0.19)
        rate = rng.uniform(0.0, 0.06 if fast else 0.02)
    elif baseline_dx == "MCI":
        # amyloid-positive MCI are further along (ADNI: more hippocampal atrophy), and later-stage
        # MCI progress faster (ADNI: conversion rises with baseline atrophy and amyloid)
        d0 = rng.uniform(0.3, 0.55) if fast else rng.uniform(MCI_THRESHOLD, 0.4)
        stage = d0 - MCI_THRESHOLD
        rate = rng.uniform(0.02, 0.10) + 0.5 * stage if fast else rng.uniform(0.0, 0.03) + 0.2 * stage
    else:
        d0 = rng.uniform(AD_THRESHOLD, 0.85)  # ADNI enrols mild AD
        rate = rng.uniform(0.02, 0.08)
    return d0, rate

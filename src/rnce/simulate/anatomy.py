"""Latent anatomy of the simulated world: who is scanned when, and what their brain looks like.

Each image has a brain age ``b = age + acceleration`` and a disease severity
``d`` in [0, 1] (CN ~0, MCI 0.2-0.6, AD >= 0.6). Every structure of
``data/simulated_anatomy.tsv`` changes relative to its base value by
``age_per_decade * (b - 45) / 10 + ad_effect * d``, times an idiosyncratic
per-subject factor; volumes also scale with head size. The FreeSurfer-format
stats report these values with measurement noise and site offsets; the images
are rendered from the same values (see :mod:`rnce.simulate.images`).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    values = anat["base"].to_numpy()[None, :] * (1.0 + change) * (1.0 + idiosyncrasy)
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


def draw_person(
    rng: np.random.Generator,
    participant_id: str,
    site: str,
    n_structures: int,
    acceleration: float,
    idiosyncrasy_sd: float,
) -> Person:
    sex = "M" if rng.random() < 0.5 else "F"
    etiv = rng.normal(1.60e6 if sex == "M" else 1.42e6, 0.10e6)
    return Person(
        participant_id=participant_id,
        sex=sex,
        site=site,
        acceleration=acceleration,
        idiosyncrasy=rng.normal(0.0, idiosyncrasy_sd, n_structures),
        etiv=float(np.clip(etiv, 1.0e6, 2.1e6)),
        amyloid_load=float(rng.normal()),
    )


def visit_times(rng: np.random.Generator, max_visits: int) -> np.ndarray:
    """Years since baseline of a subject's visits (ADNI-like spacing of one to two years)."""
    n = int(rng.integers(1, max_visits + 1))
    gaps = rng.uniform(0.8, 2.2, n - 1)
    return np.concatenate([[0.0], np.cumsum(gaps)])


def evaluate_trajectory(rng: np.random.Generator, baseline_dx: str, amyloid_load: float) -> tuple[float, float]:
    """Baseline severity and yearly progression for an evaluate-cohort subject.

    Amyloid-positive (high latent load) subjects progress faster: amyloid is
    both a task label and a driver of conversion, as in ADNI.
    """
    fast = amyloid_load > 0.3
    if baseline_dx == "CN":
        d0 = rng.uniform(0.0, 0.12)
        rate = rng.uniform(0.0, 0.06 if fast else 0.02)
    elif baseline_dx == "MCI":
        d0 = rng.uniform(MCI_THRESHOLD, 0.55)
        rate = rng.uniform(0.05, 0.18) if fast else rng.uniform(0.0, 0.05)
    else:
        d0 = rng.uniform(AD_THRESHOLD, 0.95)
        rate = rng.uniform(0.02, 0.08)
    return d0, rate

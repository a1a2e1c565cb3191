"""ComBat learn + apply at UK Biobank scale: rnce.harmonize against bare neuroHarmonize, same arrays, same run.

35,761 images x 104 features, 20 sites, covariates age and sex. rnce adds its
checks (NaN, small and unseen sites, constant features) and the covariate
frame around the same neuroHarmonize calls. Last line:
    combat: ratio <r> (goal <= 1.2)

Run from the repo root: python benchmarks/combat.py [--images N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def make_table(n: int, n_features: int = 104, n_sites: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = rng.integers(0, n_sites, n)
    age = rng.uniform(45, 82, n)
    sex = rng.choice(["M", "F"], n)
    loc = rng.normal(0, 0.3, (n_sites, n_features))
    scale = rng.uniform(0.8, 1.25, (n_sites, n_features))
    base = rng.uniform(2, 4, n_features)
    values = base + 0.02 * (age[:, None] - 60) * -1 + rng.normal(0, 0.2, (n, n_features)) * scale[site] + loc[site]
    table = pd.DataFrame(values, columns=[f"f{i:03d}" for i in range(n_features)])
    keys = pd.DataFrame({"participant_id": [f"s{i}" for i in range(n)], "session_id": "1", "cohort": "big",
                         "site": [f"site{s:02d}" for s in site], "age": age, "sex": sex, "diagnosis": "unknown"})
    return pd.concat([keys, table], axis=1)


def bare(table: pd.DataFrame) -> float:
    from neuroHarmonize import harmonizationApply, harmonizationLearn

    t0 = time.perf_counter()
    features = [c for c in table.columns if c.startswith("f")]
    covars = pd.DataFrame({"SITE": (table["cohort"] + ":" + table["site"]).to_numpy(), "age": table["age"],
                           "sex_M": (table["sex"] == "M").astype(float)})
    data = table[features].to_numpy(float)
    model, _ = harmonizationLearn(data, covars, seed=0)
    harmonizationApply(data, covars, model)
    return time.perf_counter() - t0


def ours(table: pd.DataFrame) -> float:
    from rnce import harmonize

    t0 = time.perf_counter()
    model, _ = harmonize.learn(table, ["age", "sex"])
    harmonize.apply(model, table)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=35761)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = make_table(args.images)
    bare_times, our_times = [], []
    for _ in range(args.repeats):  # interleaved, best of each
        bare_times.append(bare(table))
        our_times.append(ours(table))
    b, o = min(bare_times), min(our_times)
    print(f"bare neuroHarmonize learn+apply: {b:6.2f} s (best of {args.repeats})")
    print(f"rnce.harmonize learn+apply     : {o:6.2f} s (best of {args.repeats})")
    print(f"combat: ratio {o / b:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()

"""The full evaluation stage on an ADNI-sized simulated table against a plain scikit-learn loop, same run.

Simulates 2,431 subjects (baseline CN/MCI/AD, amyloid, conversion follow-up) and
six feature sets (fs: 104 columns, five SSL-like sets: 64 columns, each with
some diagnosis, age and amyloid signal), then runs the stage as the workflow
does: labels -> one bootstrap job per feature set (8 tasks x 1000 samples,
two processes as two Snakemake jobs on 2 cores) -> summary (every pairwise
permutation test, 10,000 permutations, and the figure).

Baseline: the same fits as a plain loop (per bootstrap sample: StandardScaler,
then scikit-learn's LogisticRegressionCV / RidgeCV with the stage's inner folds
and L2 grid, roc_auc_score / r2_score) and
a plain permutation loop (one random swap vector per permutation). Running it
in full would take hours, so it is timed on ``--baseline-fits`` samples of every
task x feature set and ``--baseline-perms`` permutations of every test, and
scaled to the full counts; the ideal two-core split of that loop (time / 2) is
the baseline. The sampled fits' scores are compared with the stage's.
Last line:
    evaluation: ratio <stage time / the loop's on 2 cores> (goal <= 0.05)

Run from the repo root: python benchmarks/evaluation.py [--subjects N] [--baseline-fits K]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "evaluation"
SETS = {"fs": 104, "rnce": 64, "simclr": 64, "barlow_twins": 64, "models_genesis": 64, "lssl": 64}
TASKS = ["age", "ad_vs_cn", "mci_vs_cn", "ad_vs_mci", "conversion", "amyloid"]
YEARS = [2, 3, 5]


def simulate(n: int, seed: int = 0) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    dx = rng.choice(["CN", "MCI", "AD"], size=n, p=[0.33, 0.45, 0.22])
    severity = np.select([dx == "CN", dx == "MCI"], [rng.uniform(0, 0.2, n), rng.uniform(0.2, 0.6, n)],
                         rng.uniform(0.6, 1, n))
    age = rng.uniform(55, 90, n)
    amyloid_load = rng.normal(size=n) + severity
    rate = np.where(amyloid_load > 0.5, 0.12, 0.03)
    years_to_ad = np.where(dx == "AD", 0.0, (0.6 - severity) / rate)
    followup = rng.uniform(0, 8, n)
    converted = (years_to_ad <= followup) | (dx == "AD")
    ids = [f"adni{i:05d}" for i in range(n)]
    records = [{"cohort": "adni", "participant_id": p, "session_id": "ses-01", "age": float(a), "diagnosis": d,
                "amyloid": float(al > 0.3) if rng.random() < 0.8 else np.nan,
                "years_to_ad": float(y) if c else np.nan, "followup_years": float(f)}
               for p, a, d, al, y, c, f in zip(ids, age, dx, amyloid_load, years_to_ad, converted, followup,
                                               strict=True)]
    latent = np.column_stack([severity, (age - 70) / 10, amyloid_load])
    tables = {}
    for k, (name, dims) in enumerate(SETS.items()):
        mixing = rng.normal(0, 1.0 / (1 + k), (3, dims))
        X = latent @ mixing + rng.normal(size=(n, dims))
        table = pd.DataFrame(X, columns=[f"dim_{j:03d}" for j in range(dims)])
        table.insert(0, "cohort", "adni")
        table.insert(0, "session_id", "ses-01")
        table.insert(0, "participant_id", ids)
        tables[name] = table
    return records, tables


def _probe(args: tuple) -> float:
    from rnce.evaluate.run import probe_feature_set

    start = time.perf_counter()
    probe_feature_set(*args)
    return time.perf_counter() - start


def stage(records: list[dict], n_boot: int, n_perm: int) -> dict[str, float]:
    from rnce.evaluate.run import write_labels, write_summary

    times = {}
    start = time.perf_counter()
    write_labels(records, [], None, TASKS, YEARS, 100, 5, str(OUT / "labels.tsv"), str(OUT / "tasks.tsv"))
    times["labels"] = time.perf_counter() - start
    jobs = [(str(OUT / "labels.tsv"), str(OUT / "tasks.tsv"), str(OUT / f"{name}.tsv"), name, n_boot, 100, 0, "auto",
             str(OUT / f"bootstrap_{name}.tsv")) for name in SETS]
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        job_seconds = list(pool.map(_probe, jobs))
    times["bootstrap"] = time.perf_counter() - start
    times["bootstrap_job_seconds"] = sum(job_seconds)
    start = time.perf_counter()
    write_summary(str(OUT / "tasks.tsv"), [j[-1] for j in jobs], list(SETS), n_perm, 0, str(OUT / "scores.tsv"),
                  str(OUT / "pvalues.tsv"), str(OUT / "figure2_probes.png"))
    times["summary"] = time.perf_counter() - start
    return times


def baseline(k_fits: int, k_perms: int, n_boot: int, n_perm: int) -> tuple[float, float]:
    """Scaled seconds of the plain loop, and the largest score difference from the stage on the sampled fits."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from rnce.evaluate.probes import holdout_indices
    from rnce.evaluate.tuning import DEFAULT_GRID, inner_folds

    warnings.filterwarnings("ignore", category=FutureWarning)
    grid = np.asarray(DEFAULT_GRID)

    labels = pd.read_csv(OUT / "labels.tsv", sep="\t")
    tasks = pd.read_csv(OUT / "tasks.tsv", sep="\t", keep_default_na=False)
    ran = tasks[tasks["status"] == "run"]
    seconds, worst = 0.0, 0.0
    for name in SETS:
        features = pd.read_csv(OUT / f"{name}.tsv", sep="\t").set_index("participant_id")
        ours = pd.read_csv(OUT / f"bootstrap_{name}.tsv", sep="\t")
        for row in ran.itertuples():
            rows = labels[labels["task"] == row.task]
            X = features.loc[rows["participant_id"]].drop(columns=["session_id", "cohort"]).to_numpy()
            y = rows["label"].to_numpy()
            hold = holdout_indices(y, row.kind, n_boot, 100, 0)[:k_fits]
            folds = inner_folds(y, hold, row.kind, 5, 0)
            start = time.perf_counter()
            scores = []
            for b, h in enumerate(hold):
                train = np.flatnonzero(folds[b] >= 0)
                cv = [(np.flatnonzero(folds[b][train] != f), np.flatnonzero(folds[b][train] == f))
                      for f in range(folds.max() + 1)]
                scaler = StandardScaler().fit(X[train])
                if row.kind == "classification":
                    model = LogisticRegressionCV(Cs=list(1 / grid), cv=cv, scoring="neg_log_loss", max_iter=1000)
                    model.fit(scaler.transform(X[train]), y[train])
                    scores.append(roc_auc_score(y[h], model.decision_function(scaler.transform(X[h]))))
                else:
                    model = RidgeCV(alphas=grid, cv=cv).fit(scaler.transform(X[train]), y[train])
                    scores.append(r2_score(y[h], model.predict(scaler.transform(X[h]))))
            seconds += (time.perf_counter() - start) / k_fits * n_boot
            mine = ours[ours["task"] == row.task].sort_values("bootstrap")["score"].to_numpy()[:k_fits]
            worst = max(worst, float(np.abs(mine - np.array(scores)).max()))
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.05, n_boot), rng.normal(0.79, 0.05, n_boot)
    start = time.perf_counter()
    observed = abs(np.mean(a - b))
    extreme = 0
    for _ in range(k_perms):
        swap = rng.random(n_boot) < 0.5
        extreme += abs(np.mean(np.where(swap, b, a) - np.where(swap, a, b))) >= observed
    n_tests = len(ran) * len(SETS) * (len(SETS) - 1) // 2
    seconds += (time.perf_counter() - start) / k_perms * n_perm * n_tests
    return seconds, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=2431)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--n-perm", type=int, default=10000)
    parser.add_argument("--baseline-fits", type=int, default=3)
    parser.add_argument("--baseline-perms", type=int, default=2000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    records, tables = simulate(args.subjects)
    for name, table in tables.items():
        table.to_csv(OUT / f"{name}.tsv", sep="\t", index=False)
    times = stage(records, args.n_boot, args.n_perm)
    total = times["labels"] + times["bootstrap"] + times["summary"]
    tasks = pd.read_csv(OUT / "tasks.tsv", sep="\t", keep_default_na=False)
    print(tasks[["task", "n", "n_positive", "status"]].to_string(index=False))
    print(f"stage: labels {times['labels']:.1f} s, bootstrap {times['bootstrap']:.1f} s "
          f"({times['bootstrap_job_seconds']:.1f} job-seconds in 2 processes), summary {times['summary']:.1f} s")
    loop, worst = baseline(args.baseline_fits, args.baseline_perms, args.n_boot, args.n_perm)
    print(f"plain scikit-learn loop, scaled from {args.baseline_fits} fits per task x feature set: {loop:.0f} s "
          f"on one core, {loop / 2:.0f} s split ideally over 2; largest score difference on the sampled fits "
          f"{worst:.1e} (scikit-learn's default tol)")
    print(f"stage: {total:.1f} s on 2 cores; the loop split ideally over 2: {loop / 2:.0f} s")
    print(f"evaluation: ratio {total / (loop / 2):.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()

"""How well the plan predicts a run it has not seen: calibrated on the demo, checked on the planted study.

Unit costs are fitted on the demo run's benchmark files only (config/config.yaml, results/), the planted
study (config/study.yaml, results_study/) is planned with them, and each stage's predicted job time (the
sum of its jobs' seconds) is set against the study's own benchmark files. The ratio of a stage is
max(predicted / actual, actual / predicted).

    python benchmarks/plan_accuracy.py              # reads both runs (make demo; make study)
    python benchmarks/plan_accuracy.py --run        # runs what is missing first (demo ~8 min, study ~1 h, 2 cores)

Last line: ``plan_accuracy: worst stage ratio <x> (goal <= 1.35)``; the line before it gives the total's
ratio (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from rnce.plan.costs import calibrate, complete, measured, package_table, read_benchmarks  # noqa: E402
from rnce.plan.report import STAGES, job_table, predict  # noqa: E402
from rnce.workflow_config import load_config  # noqa: E402

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
REGIONS = str(ROOT / "config" / "regions.tsv")


def ensure_run(configfile: Path, results: str, cores: int, run: bool) -> None:
    """Run ``all`` for ``configfile`` into ``results`` when its benchmarks are missing and ``run`` is set."""
    if (ROOT / results / "benchmarks").is_dir() and (ROOT / results / "evaluation" / "scores.tsv").exists():
        return
    if not run:
        sys.exit(f"plan_accuracy: {results}/ has no finished run of {configfile.name}; run it first (make demo, "
                 "make study) or pass --run")
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", str(configfile),
                    "--config", f"results={results}", "all"], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-results", default="results")
    parser.add_argument("--study-results", default="results_study")
    parser.add_argument("--run", action="store_true", help="run the demo and the study where they are missing")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    demo_config, study_config = ROOT / "config" / "config.yaml", ROOT / "config" / "study.yaml"
    ensure_run(demo_config, args.demo_results, args.cores, args.run)
    ensure_run(study_config, args.study_results, args.cores, args.run)

    demo = load_config(str(demo_config), SCHEMA, str(ROOT / args.demo_results))
    costs = complete(calibrate(measured(job_table(demo, REGIONS), ROOT / args.demo_results / "benchmarks"),
                               prior=package_table()), package_table())
    study = load_config(str(study_config), SCHEMA, str(ROOT / args.study_results))
    plan = predict(study, REGIONS, costs)
    actual = read_benchmarks(ROOT / args.study_results / "benchmarks", plan.jobs["key"].tolist())
    jobs = plan.jobs.merge(actual, on="key", how="left")
    missing = jobs[jobs["s"].isna()]
    if len(missing):
        print(f"{len(missing)} planned job(s) have no benchmark file in the study (left out), e.g. "
              f"{missing['key'].iloc[0]}")
    jobs = jobs.dropna(subset=["s"])
    rows = []
    for stage in [s for s in STAGES if s in set(jobs["stage"])]:
        part = jobs[jobs["stage"] == stage]
        predicted, actual = float(part["seconds"].sum()), float(part["s"].sum())
        rows.append({"stage": stage, "jobs": len(part), "predicted_s": predicted, "actual_s": actual,
                     "ratio": max(predicted / actual, actual / predicted)})
    table = pd.DataFrame(rows)
    total_p, total_a = float(jobs["seconds"].sum()), float(jobs["s"].sum())
    print(f"unit costs fitted on {args.demo_results}/benchmarks ({len(costs)} rules); "
          f"study planned from config/study.yaml")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(f"total job time: predicted {total_p / 60:,.1f} min, actual {total_a / 60:,.1f} min, "
          f"ratio {max(total_p / total_a, total_a / total_p):.2f} (goal <= 1.2)")
    long = table[table["actual_s"] >= 60]
    print(f"stages of a minute of job time or more: worst ratio {long['ratio'].max():.2f} "
          f"({', '.join(long['stage'])})")
    print(f"plan_accuracy: worst stage ratio {table['ratio'].max():.2f} (goal <= 1.35)")


if __name__ == "__main__":
    main()

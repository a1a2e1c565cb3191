"""Refit the package's unit costs (src/rnce/data/unit_costs.tsv) on a finished run of this machine.

    python scripts/calibrate_unit_costs.py    # the package's: the demo (results/) and the tiny world (results_tiny/)
    python scripts/calibrate_unit_costs.py --run my.yaml results_old --out my_costs.tsv

Runs of several sizes give each rule its fixed and per-unit seconds; a rule seen at one size takes its fixed
seconds from the current table.

Rules the run did not have (recon-all, the ANTs fallback, recon-all's stats parsing) keep their rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from rnce.io import write_text  # noqa: E402
from rnce.plan.costs import calibrate, complete, measured, package_table  # noqa: E402
from rnce.plan.report import job_table  # noqa: E402
from rnce.workflow_config import load_config  # noqa: E402

HEADER = ("# Unit costs per rule (rnce.plan.costs): seconds = s_fixed + s_per_unit * units, MB = mem_mb_fixed + "
          "mem_mb_per_unit * mem_units;\n# units per rule in rnce.plan.work.UNITS. Written by "
          "scripts/calibrate_unit_costs.py from the demo and tiny runs; stated rows say where their figure comes from.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs=2, action="append", metavar=("CONFIG", "RESULTS"),
                        help="a finished run: its config file and results folder (repeatable)")
    parser.add_argument("--machine", default=None, help="what the run ran on (default: host name and cores)")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the current table's fixed seconds for rules measured at one size")
    parser.add_argument("--out", default=str(ROOT / "src" / "rnce" / "data" / "unit_costs.tsv"))
    args = parser.parse_args()
    runs = args.run or [[str(ROOT / "config" / "config.yaml"), "results"],
                        [str(ROOT / "tests" / "configs" / "tiny.yaml"), "results_tiny"]]
    frames = []
    for configfile, results in runs:
        config = load_config(configfile, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), results)
        jobs = job_table(config, config.get("regions") or str(ROOT / "config" / "regions.tsv"))
        frames.append(measured(jobs, os.path.join(results, "benchmarks")))
    old = package_table()
    table = complete(calibrate(pd.concat(frames, ignore_index=True), args.machine,
                                prior=None if args.fresh else old), old)
    write_text(HEADER + table.to_csv(sep="\t", index=False, float_format="%.6g"), args.out)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()

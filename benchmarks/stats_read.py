"""FreeSurfer stats reading speed: rnce's reader against a pandas read_csv reader, same subjects, same run.

Writes N FreeSurfer-format subjects (aseg.stats, lh/rh.aparc.stats), then reads
them all on one core with rnce.features.freesurfer.read_subject and with a
straightforward pandas reader of the same three files. Last line:
    stats_read: <n> subjects/s (goal >= 500)

Run from the repo root: python benchmarks/stats_read.py [--subjects N]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "stats_read"


def write_subjects(n: int) -> list[Path]:
    from rnce.simulate.anatomy import anatomy_table
    from rnce.simulate.freesurfer import write_subject

    anat = anatomy_table()
    dk = anat[(anat["kind"] == "thickness") & (anat["hemi"] == "lh")]
    regions = [name[3:] for name in dk["name"]]
    volumes = dict(zip(anat.loc[anat["kind"] == "volume", "name"], anat.loc[anat["kind"] == "volume", "base"],
                       strict=True))
    rng = np.random.default_rng(0)
    dirs = []
    for i in range(n):
        folder = OUT / f"sub{i:05d}"
        if not (folder / "scripts" / "recon-all.done").exists():
            write_subject(folder, volumes, dk["base"].to_numpy() * rng.normal(1, 0.05, 34),
                          dk["base"].to_numpy() * rng.normal(1, 0.05, 34), regions,
                          dk["surface_area"].to_numpy(float), 1.5e6, rng, "fs7" if i % 2 else "fs6")
        dirs.append(folder)
    return dirs


def pandas_reader(folder: Path) -> pd.Series:
    """The obvious alternative: read_csv on the table part of each file."""
    values = {}
    for name in ("aseg.stats", "lh.aparc.stats", "rh.aparc.stats"):
        lines = (folder / "stats" / name).read_text().splitlines()
        header = next(line for line in lines if line.startswith("# ColHeaders")).split()[2:]
        body = "\n".join(line for line in lines if line and not line.startswith("#"))
        table = pd.read_csv(io.StringIO(body), sep=r"\s+", header=None, names=header)
        column = "Volume_mm3" if name == "aseg.stats" else "ThickAvg"
        prefix = "" if name == "aseg.stats" else name[:2] + "_"
        values.update({prefix + k: v for k, v in zip(table["StructName"], table[column], strict=True)})
    return pd.Series(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1000)
    args = parser.parse_args()
    from rnce.features.freesurfer import read_subject

    dirs = write_subjects(args.subjects)
    read_subject(dirs[0])
    t0 = time.perf_counter()
    for d in dirs:
        read_subject(d)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d in dirs:
        pandas_reader(d)
    baseline = time.perf_counter() - t0
    print(f"pandas read_csv reader: {len(dirs) / baseline:7.0f} subjects/s")
    print(f"rnce read_subject     : {len(dirs) / ours:7.0f} subjects/s (ratio to pandas {baseline / ours:.1f}x)")
    print(f"stats_read: {len(dirs) / ours:.0f} subjects/s (goal >= 500)")


if __name__ == "__main__":
    main()

"""The 18 boxes of ``config/regions.tsv`` (or the table the config names), read and checked."""

from __future__ import annotations

import os

import pandas as pd

COLUMNS = ["name", "hemisphere", "x_min", "x_max", "y_min", "y_max", "z_min", "z_max", "dk_regions",
           "aseg_structures"]


class RegionsError(ValueError):
    """A boxes table that breaks its contract; the message names the file, line and column."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def read_regions(path: str | os.PathLike) -> pd.DataFrame:
    """The boxes: name, hemisphere (lh/rh), MNI mm bounds, covered DK regions and aseg structures."""
    table = pd.read_csv(path, sep="\t", comment="#", keep_default_na=False)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise RegionsError(f"{path}: missing column(s) {missing}")
    # data lines follow the comment lines and the header
    with open(path) as fh:
        first = 1 + sum(1 for line in fh if line.startswith("#")) + 1
    for i, rec in enumerate(table.itertuples()):
        line = first + i
        if rec.hemisphere not in ("lh", "rh"):
            raise RegionsError(f"{path}, line {line}, column 'hemisphere': {rec.hemisphere!r} is not lh or rh")
        for axis in "xyz":
            lo, hi = getattr(rec, f"{axis}_min"), getattr(rec, f"{axis}_max")
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo < hi):
                raise RegionsError(f"{path}, line {line}, column '{axis}_min'/'{axis}_max': need numbers with "
                                   f"min < max, got {lo!r}, {hi!r}")
    if table["name"].duplicated().any():
        raise RegionsError(f"{path}, column 'name': duplicated box names {sorted(set(table['name'][table['name'].duplicated()]))}")
    return table
